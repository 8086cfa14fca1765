"""The run folder format: the one module that names a run's files, writes them and reads them back.

A run folder holds what one training learned and how it went: config.json, labels.json,
status.json and history.json (rewritten as training goes, so an interrupted run still shows
how far it got), metrics.json (the out-of-fold evaluation), data_report.json, folds.json,
head.npz (the learned top layer), tuned.npz (fine-tuned VGG16 layers, when fine-tuned),
familiarity.npz ("none of these"), doctor.json, comparison.json and examples/ (small
pictures of the mistakes). The shared VGG16 base is not copied into it: a run is a few MB, and
the self-contained model.keras is assembled for download and export. A model opened from a
file keeps that file as model.keras instead of a head.

Every file is written to a temporary name and renamed into place: a reader never sees half
a file, and a write that fails (a full disk) never leaves a run that looks usable.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quasar_core.config import TrainConfig
from quasar_core.data.records import DataReport
from quasar_core.errors import DiskFullError, QuasarError
from quasar_core.evaluation import Evaluation


class FILES:
    CONFIG = "config.json"
    LABELS = "labels.json"
    STATUS = "status.json"
    HISTORY = "history.json"
    METRICS = "metrics.json"
    DATA_REPORT = "data_report.json"
    FOLDS = "folds.json"
    HEAD = "head.npz"
    TUNED = "tuned.npz"
    FAMILIARITY = "familiarity.npz"
    DOCTOR = "doctor.json"
    COMPARISON = "comparison.json"
    SELECTION = "selection.json"  # Best accuracy: the settings tried and how each scored
    MODEL = "model.keras"  # only in runs opened from a model file (and in exports)
    EXAMPLES = "examples"
    CHECKPOINT = "checkpoint"  # fine-tuning's per-epoch weights; removed once the run is saved


RUNS_ENV = "QUASAR_RUNS_DIR"
STATES = ("running", "done", "cancelled", "failed", "interrupted")
HEARTBEAT_SECONDS = 15.0  # a running job rewrites its status at least this often
STALE_SECONDS = 120.0  # no heartbeat for this long on another host: the job is gone


def default_runs_root() -> Path:
    return Path(os.environ.get(RUNS_ENV, "runs")).resolve()


def new_run_dir(root: str | Path | None = None) -> Path:
    """A fresh, unguessable run folder under `root`."""
    root = Path(root) if root is not None else default_runs_root()
    path = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder and rename: all or nothing."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(3)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise disk_error(err, path) from None


def disk_error(err: OSError, path: Path) -> OSError | DiskFullError:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"The disk is full: {Path(path).name} could not be saved. Delete old runs on the Past "
                             "runs page (or free space on the server's disk), then train again.")
    return err


def write_json(path: Path, data) -> None:
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"))


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getvalue())


def read_arrays(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError):
        return None


def process_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except PermissionError:
        return True  # it exists, under another user (a CLI training seen from the dashboard's server)
    except (OSError, ValueError, TypeError):
        return False
    return True


@dataclass
class Status:
    state: str = "running"
    started: float = 0.0
    finished: float | None = None
    message: str = ""
    phase: str = ""
    epochs_done: int = 0
    timings: dict = field(default_factory=dict)
    precision: str = ""
    precision_reason: str = ""
    pid: int | None = None
    host: str = ""
    heartbeat: float = 0.0
    source: str = ""  # what it learned from, in words ("ants_bees.zip")
    opened_from: str = ""  # a model opened from a file: the file's name

    @classmethod
    def from_dict(cls, data: dict) -> "Status":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @property
    def seconds(self) -> float:
        return max(0.0, (self.finished or self.started) - self.started) if self.started else 0.0

    def effective(self) -> "Status":
        """A "running" status whose process is gone reads as interrupted, with the reason."""
        if self.state != "running":
            return self
        same_host = self.host == socket.gethostname()
        gone = (same_host and self.pid is not None and not process_alive(self.pid)) or (
            not same_host and time.time() - self.heartbeat > STALE_SECONDS)
        if not gone:
            return self
        where = f" while {self.phase}" if self.phase else ""
        return Status(**{**self.to_dict(), "state": "interrupted",
                         "message": f"The training stopped{where}: the server or the program was stopped before "
                                    "it finished."})


@dataclass
class Run:
    """A run folder, read back (what it learned is read by learned.classifier_of)."""

    path: Path
    config: TrainConfig
    labels: list[str]
    status: Status
    history: list[dict] = field(default_factory=list)
    metrics: Evaluation | None = None
    report: DataReport | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def state(self) -> str:
        return self.status.state

    @property
    def opened_from_file(self) -> bool:
        return bool(self.status.opened_from)

    @property
    def has_model(self) -> bool:
        """Whether the run holds a usable model: a failed or half-written run never does."""
        if self.state not in ("done", "cancelled", "interrupted"):
            return False  # failed, or still being written
        return (self.path / (FILES.MODEL if self.opened_from_file else FILES.HEAD)).is_file()

    @property
    def recoverable(self) -> bool:
        """Interrupted during fine-tuning after at least one epoch: that epoch can be kept."""
        return self.state == "interrupted" and (self.path / FILES.CHECKPOINT / "checkpoint.json").is_file()

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        path = Path(path)
        config_data = read_json(path / FILES.CONFIG)
        if config_data is None:
            raise QuasarError(f"{str(path)!r} is not a Quasar run folder (it has no readable {FILES.CONFIG}).")
        metrics = read_json(path / FILES.METRICS)
        report = read_json(path / FILES.DATA_REPORT)
        return cls(
            path=path,
            config=TrainConfig.from_dict(config_data),
            labels=[str(x) for x in read_json(path / FILES.LABELS, [])],
            status=Status.from_dict(read_json(path / FILES.STATUS, {})).effective(),
            history=read_json(path / FILES.HISTORY, []),
            metrics=Evaluation.from_dict(metrics) if metrics else None,
            report=DataReport.from_dict(report) if report else None,
        )

    def read(self, name: str, default=None):
        """One of the run's JSON files (FILES.*), or `default`."""
        return read_json(self.path / name, default)

    def arrays(self, name: str) -> dict[str, np.ndarray] | None:
        return read_arrays(self.path / name)

    def example_path(self, prediction: dict) -> Path | None:
        rel = prediction.get("example")
        return self.path / rel if rel and (self.path / rel).is_file() else None

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


class RunWriter:
    """Writes one run folder as training goes; every write is atomic."""

    def __init__(self, path: str | Path, config: TrainConfig, labels: list[str]):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.status = Status(state="running", started=time.time(), message="Training", pid=os.getpid(),
                             host=socket.gethostname(), heartbeat=time.time())
        self.history: list[dict] = []
        self._last_beat = 0.0
        write_json(self.path / FILES.CONFIG, config.to_dict())
        write_json(self.path / FILES.LABELS, list(labels))
        self.write_status()

    def write_status(self, **changes) -> None:
        for key, value in changes.items():
            setattr(self.status, key, value)
        self.status.heartbeat = time.time()
        self._last_beat = self.status.heartbeat
        write_json(self.path / FILES.STATUS, self.status.to_dict())

    def beat(self, phase: str | None = None) -> None:
        """Keep the status fresh while training runs (so a dead process is told apart from a slow one)."""
        if phase is not None and phase != self.status.phase:
            self.write_status(phase=phase)
        elif time.time() - self._last_beat > HEARTBEAT_SECONDS:
            self.write_status()

    def add_history(self, row: dict) -> None:
        self.history.append(row)
        write_json(self.path / FILES.HISTORY, self.history)
        self.write_status(epochs_done=sum(1 for r in self.history if r.get("phase") == "fine-tune"))

    def write(self, name: str, data) -> None:
        write_json(self.path / name, data)

    def write_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        write_arrays(self.path / name, arrays)

    def write_example(self, number: int, jpeg: bytes) -> str:
        folder = self.path / FILES.EXAMPLES
        folder.mkdir(exist_ok=True)
        rel = f"{FILES.EXAMPLES}/{number:05d}.jpg"
        atomic_write(self.path / rel, jpeg)
        return rel

    def checkpoint_dir(self) -> Path:
        return self.path / FILES.CHECKPOINT

    def finish(self, state: str, message: str, **changes) -> None:
        shutil.rmtree(self.checkpoint_dir(), ignore_errors=True)  # the saved head and layers supersede it
        self.write_status(state=state, message=message, finished=time.time(), phase="", **changes)


def list_runs(root: str | Path | None = None) -> list[Run]:
    """Readable runs under `root`, newest first."""
    root = Path(root) if root is not None else default_runs_root()
    found = []
    if root.is_dir():
        for child in root.iterdir():
            if child.is_dir() and (child / FILES.CONFIG).is_file():
                try:
                    found.append(Run.open(child))
                except (QuasarError, ValueError, TypeError, KeyError):
                    continue  # a folder damaged by hand is not worth failing the list for
    return sorted(found, key=lambda run: (run.status.started or 0.0, run.name), reverse=True)


def delete_run(path: str | Path, root: str | Path | None = None) -> None:
    """Delete a run folder, refusing anything that is not a run directly under `root`."""
    root = (Path(root) if root is not None else default_runs_root()).resolve()
    path = Path(path).resolve()
    if path.parent != root or not (path / FILES.CONFIG).is_file():
        raise QuasarError(f"{str(path)!r} is not a run folder under {str(root)!r}; nothing was deleted.")
    shutil.rmtree(path)
