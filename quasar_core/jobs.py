"""Training jobs that run beside a UI: one thread each, admitted one (or N) at a time.

A web server is one process for every visitor. Each job trains in its own thread and run
folder; a process-wide queue admits QUASAR_MAX_CONCURRENT_JOBS jobs at once (default 1) so
memory stays bounded, and the others wait with a visible place in the queue. Jobs are
found again by their owner's workspace id, so a refreshed page reattaches to its job.

A finished job keeps only its state and messages: its results are in its run folder, so the
queue holds no model, no photos and no features (memory stays flat over many trainings), and
only the newest finished job of each owner and kind is kept at all. A queued job whose page
has stopped asking about it (the tab was closed) for ABANDONED_SECONDS is cancelled before it
starts, so it never blocks the people still waiting; a running job finishes into its run folder.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from quasar_core.photo_check import check_photos, starting_progress
from quasar_core.compare import FRACTIONS, compare_transfer
from quasar_core.config import TrainConfig
from quasar_core.errors import QuasarError
from quasar_core.progress import Progress, TrainingHooks
from quasar_core.runs.folder import FILES, write_json
from quasar_core.runs.pipeline import train_run

CONCURRENCY_ENV = "QUASAR_MAX_CONCURRENT_JOBS"
ABANDONED_SECONDS = 90.0


@dataclass
class JobSnapshot:
    """A consistent copy of a job's state for drawing one frame of the UI."""

    job_id: str
    state: str  # queued | running | done | cancelled | failed
    queue_position: int
    progress: Progress | None
    history: list[dict]
    messages: list[str]
    error: str | None
    run_dir: Path


class TrainingJob:
    def __init__(self, dataset, config: TrainConfig, run_dir: Path, *, owner: str, base_loader, cache=None,
                 candidates=None, doctor=None):
        self.job_id = secrets.token_hex(6)
        self.candidates = candidates  # the Best preset's settings to try
        self.doctor = doctor  # what the photo check found and the user changed, for the model card
        self.dataset = dataset
        self.config = config
        self.run_dir = Path(run_dir)
        self.owner = owner
        self.base_loader = base_loader  # called in the job's thread: returns the shared VGG16 base
        self.cache = cache  # the owner's feature cache
        self.cancel_event = threading.Event()
        self.last_seen = time.monotonic()
        self.abandoned = False
        self.state = "queued"
        self.error: str | None = None
        self.progress: Progress | None = None
        self.history: list[dict] = []
        self.messages: list[str] = []
        self.created = time.time()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "failed")

    def seen(self) -> None:
        """Someone is looking at this job (its page polled it)."""
        self.last_seen = time.monotonic()

    def snapshot(self, queue: "JobQueue") -> JobSnapshot:
        self.seen()
        with self._lock:
            return JobSnapshot(self.job_id, self.state, queue.position(self), self.progress, list(self.history),
                               list(self.messages), self.error, self.run_dir)

    # called from the job's thread
    def _on_progress(self, progress: Progress) -> None:
        with self._lock:
            self.progress = progress

    def _on_epoch(self, row: dict) -> None:
        with self._lock:
            self.history.append(row)

    def _on_message(self, text: str) -> None:
        with self._lock:
            self.messages.append(text)

    def _work(self, hooks: TrainingHooks) -> str:
        """The job's work, in its thread; returns the final state. Training here; subclasses differ."""
        run = train_run(self.dataset, self.config, self.run_dir, hooks=hooks, cancel=self.cancel_event,
                        base_loader=self.base_loader, cache=self.cache, candidates=self.candidates,
                        doctor=self.doctor)
        return run.state

    def _execute(self) -> None:
        hooks = TrainingHooks(self._on_progress, self._on_epoch, self._on_message)
        try:
            state = self._work(hooks)
        except QuasarError as exc:  # includes a full disk: the message says so
            self.error, state = str(exc), "failed"
        except Exception as exc:  # anything else: keep the server alive, log the details, say it plainly
            traceback.print_exc()
            self.error = (f"Something went wrong inside the training ({exc.__class__.__name__}); nothing you did "
                          "caused it. Your photos and settings are kept: press Start to try again.")
            state = "failed"
        finally:
            self.dataset = self.base_loader = self.cache = None  # nothing of the work stays in memory
        with self._lock:
            self.state = state


class ComparisonJob(TrainingJob):
    """Transfer vs a small CNN trained from scratch on the user's data; writes comparison.json into `run_dir`.

    `base_loader` is {"imagenet": loader} (a function returning the shared VGG16 base).
    """

    def __init__(self, dataset, config: TrainConfig, run_dir: Path, *, owner: str, base_loader, cache=None,
                 fractions=FRACTIONS):
        super().__init__(dataset, config, run_dir, owner=owner, base_loader=base_loader, cache=cache)
        self.fractions = tuple(fractions)

    def _work(self, hooks: TrainingHooks) -> str:
        summary = compare_transfer(self.dataset, self.config, fractions=self.fractions, base_loaders=self.base_loader,
                                   cache=self.cache, hooks=hooks, cancel=self.cancel_event)
        if summary["results"]:
            write_json(self.run_dir / FILES.COMPARISON, {**summary, "config": self.config.to_dict()})
        return "cancelled" if summary["cancelled"] else "done"


class CheckJob(TrainingJob):
    """The photo check on the owner's photos (photo_check.py); the result is written into the workspace."""

    def __init__(self, dataset, config: TrainConfig, workspace, *, owner: str, base_loader, cache=None):
        super().__init__(dataset, config, workspace.folder, owner=owner, base_loader=base_loader, cache=cache)
        self.workspace = workspace
        self.progress = starting_progress(len(dataset))  # "photo 0 of 245" from the first second, queued or not

    def _work(self, hooks: TrainingHooks) -> str:
        result = check_photos(self.dataset, self.config, cache=self.cache, base_loader=self.base_loader,
                              hooks=hooks, cancel=self.cancel_event)
        if result is None:
            return "cancelled"
        self.workspace.keep_check(result.to_dict())  # the page reads it from the workspace: nothing kept here
        return "done"


class UploadCheckJob(TrainingJob):
    """The upload check (every photo decoded and checked, data/assembly.py) beside the page, with progress.

    `load(on_progress)` returns the Dataset or raises; on_progress(done, total) becomes "photo N of M". The
    result (the Dataset, which holds references, not pixels) or the refusal (its message and report) stays on
    the job until the page has taken it (`taken`), so a reloaded page takes it too.
    """

    def __init__(self, load, *, owner: str, photos_folder: Path | None = None):
        super().__init__(None, TrainConfig(), photos_folder or Path("."), owner=owner, base_loader=None)
        self.load = load
        self.photos_folder = photos_folder
        self.result = None  # the checked Dataset
        self.report = None  # a refused upload's DataReport (what was skipped and why)
        self.taken = False
        self.progress = Progress("check", 0, 0)

    def _work(self, hooks: TrainingHooks) -> str:
        from quasar_core.data import DatasetRejected

        def on_progress(done: int, total: int) -> None:
            if self.cancel_event.is_set():
                raise _Stopped()
            hooks.on_progress(Progress("check", done, total))

        try:
            self.result = self.load(on_progress)
        except _Stopped:
            return "cancelled"
        except DatasetRejected as exc:
            self.error, self.report = str(exc), exc.report
            return "failed"
        except (QuasarError, ValueError) as exc:
            self.error = str(exc)
            return "failed"
        finally:
            self.load = None
        return "done"


class _Stopped(Exception):
    pass


class JobQueue:
    """Admits at most `max_running` jobs at once, in arrival order."""

    def __init__(self, max_running: int | None = None):
        if max_running is None:
            max_running = int(os.environ.get(CONCURRENCY_ENV, "1"))
        if max_running < 1:
            raise ValueError(f"max_running must be at least 1, got {max_running!r}.")
        self.max_running = max_running
        self._slots = threading.Semaphore(max_running)
        self._lock = threading.Lock()
        self._waiting: list[TrainingJob] = []
        self._jobs: dict[str, TrainingJob] = {}

    def submit(self, job: TrainingJob) -> TrainingJob:
        with self._lock:
            self._prune(job.owner, type(job))
            self._jobs[job.job_id] = job
            self._waiting.append(job)
        job._thread = threading.Thread(target=self._run, args=(job,), name=f"quasar-train-{job.job_id}",
                                       daemon=True)
        job._thread.start()
        return job

    def _prune(self, owner: str, kind: type) -> None:
        """Forget the owner's finished jobs of this kind: the new one replaces them (results are on disk)."""
        for job_id, job in list(self._jobs.items()):
            if job.owner == owner and type(job) is kind and job.finished:
                del self._jobs[job_id]

    def _run(self, job: TrainingJob) -> None:
        while not self._slots.acquire(timeout=0.2):
            if time.monotonic() - job.last_seen > ABANDONED_SECONDS:
                job.abandoned = True  # its page is gone: do not make the others wait for it
                job.cancel()
            if job.cancel_event.is_set():  # stopped while still waiting: never started
                with self._lock:
                    self._waiting.remove(job)
                job.state = "cancelled"
                job.dataset = job.base_loader = job.cache = None
                return
        try:
            with self._lock:
                self._waiting.remove(job)
                job.state = "running"
            job._execute()
        finally:
            self._slots.release()

    def position(self, job: TrainingJob) -> int:
        """1-based place in the waiting line; 0 when not waiting."""
        with self._lock:
            return self._waiting.index(job) + 1 if job in self._waiting else 0

    def get(self, job_id: str) -> TrainingJob | None:
        return self._jobs.get(job_id)

    def latest_for(self, owner: str, *, kind: type | None = None) -> TrainingJob | None:
        """The owner's newest job; with `kind`, the newest of exactly that class (TrainingJob, ComparisonJob)."""
        with self._lock:
            mine = [job for job in self._jobs.values()
                    if job.owner == owner and (kind is None or type(job) is kind)]
        return max(mine, key=lambda job: job.created) if mine else None

    def wait(self, job: TrainingJob, timeout: float | None = None) -> bool:
        if job._thread is not None:
            job._thread.join(timeout)
        return job.finished


_DEFAULT_QUEUE: JobQueue | None = None
_UPLOAD_QUEUE: JobQueue | None = None
_DEFAULT_LOCK = threading.Lock()
UPLOAD_CONCURRENCY = 2  # upload checks at once; they never wait behind a training (their own queue)


def upload_queue() -> JobQueue:
    """The process-wide queue of upload checks (decoding only: light, so not behind the trainings' line)."""
    global _UPLOAD_QUEUE
    with _DEFAULT_LOCK:
        if _UPLOAD_QUEUE is None:
            _UPLOAD_QUEUE = JobQueue(UPLOAD_CONCURRENCY)
        return _UPLOAD_QUEUE


def default_queue() -> JobQueue:
    """The process-wide queue (one per server, shared by every session)."""
    global _DEFAULT_QUEUE
    with _DEFAULT_LOCK:
        if _DEFAULT_QUEUE is None:
            _DEFAULT_QUEUE = JobQueue()
        return _DEFAULT_QUEUE
