"""Starting, following and stopping this session's training job, and planning it beforehand.

Training runs in a thread of the process-wide jobs.default_queue(); the session keeps only
the job's id (ui.state), so the Train page can poll it and a refreshed page can find it
again. Nothing here imports TensorFlow at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from quasar_core import backbone, jobs, planning, runs
from quasar_core.data import split_dataset
from quasar_core.errors import QuasarError, ResourceLimitError
from quasar_core.progress import Progress
from ui import resources, state, workspace

BFLOAT16_SPEEDUP = 2.0
TRADE_OFF_SIZES = (64, 96, 128, 160, 224)  # image sizes compared on the Configure page
ACTIVE_STATES = ("queued", "running")


def current_job() -> jobs.TrainingJob | None:
    """This session's latest job, if the queue still has it and it belongs to this workspace."""
    job_id = state.job_id()
    job = jobs.default_queue().get(job_id) if job_id else None
    return job if job is not None and job.owner == workspace.current_id() else None


def is_active(job: jobs.TrainingJob | None) -> bool:
    return job is not None and job.state in ACTIVE_STATES


def start(dataset, config) -> jobs.TrainingJob:
    """Check memory, load the shared VGG16 base here in the script thread, and queue the job.

    Raises QuasarError subclasses with a plain message (too little memory, no weights).
    """
    planning.check_memory(config, len(dataset))
    base = resources.shared_base(config.weights)  # loaded once per server, reused by every job
    run_dir = runs.new_run_dir(workspace.current_runs_root())
    job = jobs.TrainingJob(dataset, config, run_dir, owner=workspace.current_id(), base_loader=lambda: base)
    jobs.default_queue().submit(job)
    state.set_job_id(job.job_id)
    state.set_adopted_job_id(None)
    state.set_reattached_job(False)
    state.dismiss_reopen_offer()  # the new run will be the one to look at
    return job


def snapshot(job: jobs.TrainingJob) -> jobs.JobSnapshot:
    return job.snapshot(jobs.default_queue())


def run_seconds(run: runs.Run) -> float:
    """Wall-clock time a finished run took, from its status file."""
    status = run.status
    return max(0.0, float(status.get("finished", 0.0)) - float(status.get("started", 0.0)))


def adopt_result(job: jobs.TrainingJob) -> runs.Run | None:
    """Once a job has ended, make its run the current run (once) and return it (None if none)."""
    run = job.run
    if run is None:
        try:
            run = runs.Run.open(job.run_dir)
        except (QuasarError, ValueError, TypeError):
            run = None
            _remove_if_empty(job.run_dir)  # stopped while still waiting: nothing was written
    if state.adopted_job_id() != job.job_id:
        state.set_adopted_job_id(job.job_id)
        if run is not None and run.has_model:
            state.set_current_run(run)
    return run


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()  # only succeeds on an empty folder
    except OSError:
        pass


# --- words for the progress bar -----------------------------------------------------------------
PHASE_ORDER = ("features", "head", "fine-tune-features", "fine-tune", "evaluate")


def progress_text(progress: Progress, *, fine_tunes: bool) -> str:
    """"Step 2 of 3 · Training the classifier · epoch 3 of 8, batch 5 of 7 · about 12 s left"."""
    phases = [p for p in PHASE_ORDER if fine_tunes or not p.startswith("fine-tune")]
    # "fine-tune-features" is not reported separately by the core: it is part of "features".
    phases = [p for p in phases if p != "fine-tune-features"]
    parts = []
    if progress.phase in phases:
        parts.append(f"Step {phases.index(progress.phase) + 1} of {len(phases)}")
    parts.append(progress.label)
    if progress.total_epochs:
        parts.append(f"epoch {progress.epoch} of {progress.total_epochs}, "
                     f"batch {progress.step} of {progress.total_steps}")
    else:
        parts.append(f"image {progress.step} of {progress.total_steps}")
    if progress.eta_seconds is not None:
        parts.append(f"about {planning.format_duration(progress.eta_seconds)} left in this step")
    return " · ".join(parts)


# --- before training -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    time: planning.TimeEstimate
    sizes: list[dict]  # planning.suggest_sizes_table rows
    precision: str  # what "auto" resolves to on this machine
    n_train: int
    n_val: int
    n_test: int


def plan(dataset, config) -> Plan:
    """Time for these settings on this machine, and for other image sizes (measures VGG16 once)."""
    split = split_dataset(dataset, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                          seed=config.seed)
    rate = resources.forward_rate(resources.shared_base(config.weights))
    precision = backbone.resolve_precision(config.precision)
    speedup = BFLOAT16_SPEEDUP if precision == "bfloat16" else 1.0
    counts = (len(split.train), len(split.val), len(split.test))
    time_estimate = planning.estimate_training_time(config, *counts, images_per_second_at_224=rate,
                                                    precision_speedup=speedup)
    # The chosen size is always a row, so the table always shows where the user stands.
    sizes = planning.suggest_sizes_table(config, *counts, images_per_second_at_224=rate, precision_speedup=speedup,
                                         sizes=sorted({*TRADE_OFF_SIZES, config.image_size}))
    return Plan(time_estimate, sizes, precision, *counts)


def memory_check(dataset, config) -> tuple[int | None, str | None]:
    """(bytes needed, None) when training fits in memory, else (None, what to do instead)."""
    try:
        return planning.check_memory(config, len(dataset)), None
    except ResourceLimitError as exc:
        return None, str(exc)
