"""Run folders: everything one training produced, on disk, reopenable without the session.

A run folder holds model.keras (raw RGB in, probabilities out), labels.json, config.json,
history.json and status.json (both rewritten every epoch, so an interrupted run still
shows how far it got), metrics.json (held-out evaluation), data_report.json, split.json and
examples/ (the held-out images as small PNGs, for galleries and reports).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .distribute import is_chief
from .errors import QuasarError
from .evaluation import Evaluation, evaluate_predictions
from .progress import PhaseTimer, Progress, TrainingHooks

RUNS_ENV = "QUASAR_RUNS_DIR"
MODEL_FILE = "model.keras"
CHECKPOINT_DIR = "checkpoint"  # per-epoch weights while training; removed once model.keras is saved
EXAMPLE_MAX_SIDE = 160


def default_runs_root() -> Path:
    return Path(os.environ.get(RUNS_ENV, "runs")).resolve()


def new_run_dir(root: str | Path | None = None) -> Path:
    """A fresh, unguessable run folder under `root`."""
    root = Path(root) if root is not None else default_runs_root()
    path = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def write_json(path: Path, data) -> None:
    """Write atomically, so a reader never sees half a file (runs are read while they train)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(3)}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


@dataclass
class Run:
    """A run folder, read back. The model itself loads on first use."""

    path: Path
    config: TrainConfig
    labels: list[str]
    history: list[dict] = field(default_factory=list)
    status: dict = field(default_factory=dict)
    metrics: Evaluation | None = None
    report: dict | None = None
    split: dict | None = None
    _classifier: object = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def state(self) -> str:
        return self.status.get("state", "unknown")

    @property
    def has_model(self) -> bool:
        return (self.path / MODEL_FILE).is_file()

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        path = Path(path)
        config_data = read_json(path / "config.json")
        if config_data is None:
            raise QuasarError(f"{str(path)!r} is not a Quasar run folder (it has no readable config.json).")
        metrics = read_json(path / "metrics.json")
        return cls(
            path=path,
            config=TrainConfig.from_dict(config_data),
            labels=read_json(path / "labels.json", []),
            history=read_json(path / "history.json", []),
            status=read_json(path / "status.json", {}),
            metrics=Evaluation.from_dict(metrics) if metrics else None,
            report=read_json(path / "data_report.json"),
            split=read_json(path / "split.json"),
        )

    def classifier(self):
        """A fitted TransferClassifier around the run's saved model."""
        if self._classifier is None:
            from .training import TransferClassifier

            if not self.has_model:
                raise QuasarError(
                    f"Run {self.name!r} has no saved model (it was stopped before the first epoch ended "
                    "or failed). Train again."
                )
            classifier = TransferClassifier(self.config)
            classifier.model_ = load_run_model(self.path / MODEL_FILE)
            classifier.labels_ = list(self.labels)
            classifier.history_ = list(self.history)
            self._classifier = classifier
        return self._classifier

    def example_path(self, prediction: dict) -> Path | None:
        rel = prediction.get("example")
        return self.path / rel if rel and (self.path / rel).is_file() else None


def load_run_model(path: Path):
    """Load a run's model. Run folders can come from anywhere (the CLI takes any path), so the
    file is checked for code-carrying objects first and loaded with safe_mode=True."""
    from .model_files import load_checked_model

    return load_checked_model(path)


def list_runs(root: str | Path | None = None) -> list[Run]:
    """Readable runs under `root`, newest first."""
    root = Path(root) if root is not None else default_runs_root()
    runs = []
    if root.is_dir():
        for child in root.iterdir():
            if child.is_dir() and (child / "config.json").is_file():
                try:
                    runs.append(Run.open(child))
                except (QuasarError, ValueError, TypeError):
                    continue  # a folder damaged by hand is not worth failing the list for
    # Folder names only tell the second (then a random token): order by the recorded start time.
    return sorted(runs, key=lambda run: (_started(run), run.name), reverse=True)


def _started(run: Run) -> float:
    value = run.status.get("started") if isinstance(run.status, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def delete_run(path: str | Path, root: str | Path | None = None) -> None:
    """Delete a run folder, refusing anything that is not a run directly under `root`."""
    root = (Path(root) if root is not None else default_runs_root()).resolve()
    path = Path(path).resolve()
    if path.parent != root or not (path / "config.json").is_file():
        raise QuasarError(f"{str(path)!r} is not a run folder under {str(root)!r}; nothing was deleted.")
    shutil.rmtree(path)


def train_run(
    dataset,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    hooks: TrainingHooks | None = None,
    cancel: threading.Event | None = None,
    base=None,
    split=None,
) -> Run:
    """Split, train, evaluate on held-out images and write the run folder. Returns the Run."""
    from .data import split_dataset
    from .training import TransferClassifier

    hooks = hooks or TrainingHooks()
    run_dir = Path(run_dir)
    if config.strategy == "multi-worker" and not is_chief():
        # Every worker trains (the steps are collective); only the chief's run folder is kept.
        run_dir = Path(tempfile.mkdtemp(prefix="quasar-worker-run-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    split = split or split_dataset(
        dataset, val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=config.seed
    )
    status = {"state": "running", "started": time.time(), "message": "Training"}
    write_json(run_dir / "config.json", config.to_dict())
    write_json(run_dir / "labels.json", list(dataset.labels))
    write_json(run_dir / "data_report.json", dataset.report.to_dict())
    write_json(run_dir / "split.json", _split_names(dataset, split))
    write_json(run_dir / "status.json", status)
    history: list[dict] = []

    def checkpoint(row):  # every epoch: the curves so far survive a crash or a closed tab
        history.append(row)
        write_json(run_dir / "history.json", history)
        write_json(run_dir / "status.json", {**status, "epochs_done": len(history)})
        hooks.epoch_end(row)

    classifier = TransferClassifier(config, base=base)
    try:
        classifier.fit(
            dataset, split, hooks=TrainingHooks(hooks.on_progress, checkpoint, hooks.on_message), cancel=cancel,
            checkpoint_dir=run_dir / CHECKPOINT_DIR,
        )
        if classifier.model_ is None:
            status.update(state="cancelled", finished=time.time(),
                          message="Stopped before the first epoch: nothing was learned yet.")
            write_json(run_dir / "status.json", status)
            return Run.open(run_dir)
        held_out = split.test if len(split.test) else split.val
        evaluation = evaluate_classifier(classifier, dataset, held_out, hooks=hooks)
        _save_examples(dataset, held_out, evaluation, run_dir)
        write_json(run_dir / "metrics.json", evaluation.to_dict())
        classifier.model_.save(run_dir / MODEL_FILE)
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)  # the saved model supersedes it
    except BaseException as exc:
        status.update(state="failed", finished=time.time(), message=str(exc) or exc.__class__.__name__)
        write_json(run_dir / "status.json", status)
        raise
    stopped = classifier.cancelled_
    status.update(
        state="cancelled" if stopped else "done",
        finished=time.time(),
        epochs_done=len(history),
        timings=classifier.timings_,
        precision=classifier.precision_,
        message=(f"Stopped by you after {len(history)} epochs; the model learned so far is kept."
                 if stopped else f"Trained for {len(history)} epochs."),
    )
    write_json(run_dir / "status.json", status)
    run = Run.open(run_dir)
    run._classifier = classifier
    return run


def recoverable(run: Run) -> bool:
    """A run whose training was cut off (the server stopped) after at least one epoch was saved."""
    return not run.has_model and (run.path / CHECKPOINT_DIR / "checkpoint.json").is_file()


def recover_run(run_dir: str | Path, *, base=None) -> Run:
    """Rebuild an interrupted run's model from its last saved epoch, so nothing learned is lost.

    The run has no held-out evaluation afterwards (the photos are not kept); its curves are.
    """
    from .backbone import load_vgg16
    from .training import recover_model

    run = Run.open(run_dir)
    if run.has_model:
        return run
    if not recoverable(run):
        raise QuasarError(f"Run {run.name!r} has no saved epoch to recover; train again.")
    base = base if base is not None else load_vgg16(run.config.weights)
    model = recover_model(base, run.config, len(run.labels), run.path / CHECKPOINT_DIR)
    model.save(run.path / MODEL_FILE)
    shutil.rmtree(run.path / CHECKPOINT_DIR, ignore_errors=True)
    status = {**run.status, "state": "interrupted",
              "message": f"Training was cut off after {len(run.history)} epochs; the model from the last "
                         "finished epoch was recovered. It has no held-out evaluation: evaluate it with the CLI."}
    write_json(run.path / "status.json", status)
    return Run.open(run.path)


def evaluate_classifier(classifier, dataset, indices, *, hooks: TrainingHooks | None = None) -> Evaluation:
    """Predict labelled images with the full saved-form model and score the predictions.

    Scores are in the classifier's own class order; every sample's class must be one of them.
    """
    hooks = hooks or TrainingHooks()
    indices = np.asarray(indices, dtype=np.int64)
    size = classifier.config.image_size
    step = 16
    timer = PhaseTimer(len(indices))
    parts = []
    for start in range(0, len(indices), step):
        chunk = indices[start : start + step]
        parts.append(classifier.predict_proba(dataset.images(chunk, size=size)))
        done = start + len(chunk)
        hooks.progress(Progress("evaluate", done, len(indices), elapsed_seconds=timer.elapsed(),
                                eta_seconds=timer.eta(done)))
    probabilities = np.concatenate(parts)
    samples = [dataset.samples[i] for i in indices]
    y_true = [classifier.labels_.index(sample.label) for sample in samples]
    return evaluate_predictions(y_true, probabilities, classifier.labels_, [sample.name for sample in samples])


def _split_names(dataset, split) -> dict:
    return {part: [dataset.samples[i].name for i in getattr(split, part)] for part in ("train", "val", "test")}


def _save_examples(dataset, indices, evaluation: Evaluation, run_dir: Path) -> None:
    """Small PNGs of the held-out images, so galleries and reports work after the data is gone."""
    from PIL import Image

    folder = run_dir / "examples"
    folder.mkdir(exist_ok=True)
    for number, (index, prediction) in enumerate(zip(indices, evaluation.predictions)):
        image = Image.fromarray(dataset.samples[index].pixels)
        image.thumbnail((EXAMPLE_MAX_SIDE, EXAMPLE_MAX_SIDE))
        rel = f"examples/{number:05d}.png"
        image.save(run_dir / rel)
        prediction["example"] = rel
