"""The progress seam: training talks to any UI through plain functions.

`TrainingHooks` holds the functions; `ProgressCallback` is the Keras callback that calls
them, in the manner of keras.callbacks.ProgbarLogger. A `threading.Event` is the cancel
flag: setting it stops training cleanly at the next batch and keeps what was learned.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from quasar_core.wording import percent

PHASE_LABELS = {
    "check": "Checking your photos",
    "features": "Reading your photos through VGG16",
    "head": "Testing the classifier on photos it has not learned from",
    "fine-tune": "Fine-tuning VGG16's top layers",
    "save": "Saving the model",
}
PHASE_ORDER = tuple(PHASE_LABELS)


@dataclass(frozen=True)
class Progress:
    """Where a job stands, as a UI or a progress bar needs it."""

    phase: str
    step: int  # batches done in this epoch (or in the phase, for phases without epochs)
    total_steps: int
    epoch: int = 0  # 1-based epoch within the phase; 0 for phases without epochs
    total_epochs: int = 0
    elapsed_seconds: float = 0.0  # since the phase began
    eta_seconds: float | None = None  # until the phase ends
    logs: dict = field(default_factory=dict)
    rate: float | None = None  # photos per second, for the feature pass

    @property
    def label(self) -> str:
        return PHASE_LABELS.get(self.phase, self.phase)

    @property
    def fraction(self) -> float:
        """How much of the phase is done, 0..1."""
        if self.total_epochs:
            done = (self.epoch - 1) + (self.step / self.total_steps if self.total_steps else 1.0)
            return min(1.0, max(0.0, done / self.total_epochs))
        return min(1.0, self.step / self.total_steps) if self.total_steps else 1.0


@dataclass
class TrainingHooks:
    """Plain functions called during training; any may be None."""

    on_progress: Callable[[Progress], None] | None = None  # per batch
    on_epoch_end: Callable[[dict], None] | None = None  # one history row per epoch
    on_message: Callable[[str], None] | None = None  # plain-language notes ("Early stopping: ...")

    def progress(self, progress: Progress) -> None:
        if self.on_progress:
            self.on_progress(progress)

    def epoch_end(self, row: dict) -> None:
        if self.on_epoch_end:
            self.on_epoch_end(row)

    def message(self, text: str) -> None:
        if self.on_message:
            self.on_message(text)


class PhaseTimer:
    """Elapsed time and a linear ETA for one phase of known length."""

    def __init__(self, total_units: int):
        self.total_units = max(1, int(total_units))
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def eta(self, units_done: int) -> float | None:
        if units_done <= 0:
            return None
        return self.elapsed() / units_done * max(0, self.total_units - units_done)


def is_cancelled(cancel: threading.Event | None) -> bool:
    return cancel is not None and cancel.is_set()


def make_progress_callback(phase: str, hooks: TrainingHooks, cancel: threading.Event | None, epoch_offset: int = 0,
                           label: str = ""):
    """A Keras callback reporting batches and epochs of `phase` to `hooks`, honouring `cancel`."""
    import keras

    class ProgressCallback(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.total_epochs = self.params.get("epochs") or 1
            self.total_steps = self.params.get("steps") or 1
            self.timer = PhaseTimer(self.total_epochs * self.total_steps)
            self.epoch_started = time.perf_counter()
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1
            self.epoch_started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            done = (self.epoch - 1) * self.total_steps + batch + 1
            hooks.progress(
                Progress(
                    phase=phase,
                    step=batch + 1,
                    total_steps=self.total_steps,
                    epoch=self.epoch,
                    total_epochs=self.total_epochs,
                    elapsed_seconds=self.timer.elapsed(),
                    eta_seconds=self.timer.eta(done),
                    logs={k: float(v) for k, v in (logs or {}).items()},
                )
            )
            if is_cancelled(cancel):
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            row = {
                "epoch": epoch_offset + epoch + 1,
                "phase": phase,
                "loss": _number(logs.get("loss")),
                "accuracy": _number(logs.get("accuracy")),
                "val_loss": _number(logs.get("val_loss")),
                "val_accuracy": _number(logs.get("val_accuracy")),
                "seconds": time.perf_counter() - self.epoch_started,
                "label": label,
            }
            hooks.epoch_end(row)

    return ProgressCallback()


def _number(value):
    return None if value is None else float(value)


class TqdmProgress:
    """The progress seam drawn as one tqdm bar per phase on stderr."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.bar = None
        self.phase = None

    def __call__(self, progress: Progress) -> None:
        from tqdm import tqdm  # imported when a bar is first drawn

        key = (progress.phase, progress.epoch, progress.total_steps)
        if key != self.phase:
            self.close()
            where = f" (epoch {progress.epoch}/{progress.total_epochs})" if progress.total_epochs else ""
            unit = "photo" if progress.phase in ("features", "check") else "step"
            self.bar = tqdm(total=progress.total_steps, desc=PHASE_LABELS.get(progress.phase, progress.phase) + where,
                            unit=unit, file=self.stream, leave=True, dynamic_ncols=True, mininterval=0.5)
            self.phase = key
        self.bar.update(progress.step - self.bar.n)

    def checked(self, done: int, total: int) -> None:
        self(Progress("check", done, total))

    def epoch(self, row: dict) -> None:
        if row.get("phase") == "fine-tune":
            val = f", hold-out accuracy {percent(row['val_accuracy'])}" if row.get("val_accuracy") is not None else ""
            self.message(f"fine-tuning epoch {row['epoch']}: loss {row['loss']:.3f}, accuracy "
                         f"{percent(row['accuracy'])}{val}")

    def message(self, text: str) -> None:
        self.close()
        print(text, file=self.stream)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.phase = None

    def hooks(self) -> TrainingHooks:
        return TrainingHooks(self, self.epoch, self.message)
