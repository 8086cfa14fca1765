"""One training from photos to a saved run folder; recovering an interrupted run; evaluating a run.

``train_run``: the classifier learns (features cached, folds, the kept head, fine-tuning),
the out-of-fold predictions become the evaluation — no second trip through VGG16 — and the
run folder is written file by file, atomically. A failed write (a full disk) marks the run
failed with a message saying so; it never looks usable.
"""

from __future__ import annotations

import errno
import io
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from quasar_core.backbone import load_vgg16
from quasar_core.config import TrainConfig
from quasar_core.data.images import fit_within
from quasar_core.distribute import is_chief
from quasar_core.errors import DatasetError, DiskFullError, QuasarError
from quasar_core.evaluation import Evaluation, evaluate_predictions, with_label_doubts
from quasar_core.features.cache import FeatureCache
from quasar_core.head import Head
from quasar_core.progress import Progress, TrainingHooks
from quasar_core.runs.folder import (FILES, Run, RunWriter, Status, disk_error, read_arrays, read_json, write_arrays,
                                     write_json)
from quasar_core.runs.learned import flatten_tuned, save_head, save_learned
from quasar_core.selection import fit_best
from quasar_core.training import TransferClassifier
from quasar_core.tuning import recover_tuned
from quasar_core.wording import plural

EXAMPLE_MAX_SIDE = 160
MAX_MISTAKE_EXAMPLES = 120
REFERENCES_PER_CLASS = 3  # correctly named photos kept too: exports are checked on them


def train_run(dataset, config: TrainConfig, run_dir: str | Path, *, hooks: TrainingHooks | None = None,
              cancel: threading.Event | None = None, base_loader=None, cache: FeatureCache | None = None,
              candidates: list[TrainConfig] | None = None, doctor: dict | None = None) -> Run:
    """Train on every photo of `dataset`, evaluate out of fold, and write the run folder. Returns the Run.

    With several `candidates` (the Best preset), each is tried and the winner kept (selection.py).
    `doctor` (what the photo check found and what the user changed, see workspace.check_summary) is kept
    with the run for its model card.
    """
    hooks = hooks or TrainingHooks()
    run_dir = Path(run_dir)
    if config.strategy == "multi-worker" and not is_chief():
        # Every worker trains (the steps are collective); only the chief's run folder is kept.
        run_dir = Path(tempfile.mkdtemp(prefix="quasar-worker-run-"))
    writer = RunWriter(run_dir, config, dataset.labels)
    writer.write_status(source=Path(dataset.report.source).name or dataset.report.source)
    writer.write(FILES.DATA_REPORT, dataset.report.to_dict())
    if doctor:
        writer.write(FILES.DOCTOR, doctor)

    def progress(update: Progress) -> None:
        writer.beat(update.label[:1].lower() + update.label[1:])  # "…while fine-tuning VGG16's top layers"
        hooks.progress(update)

    def epoch(row: dict) -> None:
        writer.add_history(row)
        hooks.epoch_end(row)

    inner = TrainingHooks(progress, epoch, hooks.on_message)
    try:
        if candidates and len(candidates) > 1:
            classifier, table = fit_best(dataset, candidates, cache=cache, base_loader=base_loader, hooks=inner,
                                         cancel=cancel, checkpoint_dir=writer.checkpoint_dir(),
                                         on_head=lambda c: save_head(writer, c))
            writer.write(FILES.SELECTION, table)
            if classifier is not None:
                writer.write(FILES.CONFIG, classifier.config.to_dict())  # the winner's settings
        else:
            classifier = TransferClassifier(config, cache=cache, base_loader=base_loader)
            classifier.fit(dataset, hooks=inner, cancel=cancel, checkpoint_dir=writer.checkpoint_dir(),
                           on_head=lambda c: save_head(writer, c))
        if classifier is None or classifier.head_ is None:
            writer.finish("cancelled", "Stopped before the first model was learned: nothing was kept. The photos "
                                       "read so far are remembered, so the next training starts faster.")
            return Run.open(writer.path)
        hooks.progress(Progress("save", 0, 1))
        evaluation = with_label_doubts(with_check_changes(out_of_fold_evaluation(classifier, dataset), doctor))
        _save_examples(writer, dataset, classifier, evaluation)
        writer.write(FILES.METRICS, evaluation.to_dict())
        writer.write(FILES.FOLDS, {**classifier.validation_.to_dict(), "names": [s.name for s in dataset.samples]})
        save_learned(writer, classifier)
    except DiskFullError as exc:
        _fail(writer, str(exc))
        raise
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            _fail(writer, str(exc) or exc.__class__.__name__)
            raise
        full = disk_error(exc, writer.path)  # a write outside the run folder's own (the feature cache, a checkpoint)
        _fail(writer, str(full))
        raise full from None
    except BaseException as exc:
        _fail(writer, str(exc) or exc.__class__.__name__)
        raise
    stopped = classifier.cancelled_
    epochs = _kept_epochs(classifier.history_)
    trained = f"fine-tuned for {plural(epochs, 'epoch')}" if epochs else "the classifier learned from every photo"
    writer.finish("cancelled" if stopped else "done",
                  "Stopped by you; the model learned so far is kept." if stopped else f"Trained: {trained}.",
                  timings=classifier.timings_, precision=classifier.precision_.precision,
                  precision_reason=classifier.precision_.reason)
    return Run.open(writer.path)


def _fail(writer: RunWriter, message: str) -> None:
    for name in (FILES.HEAD, FILES.TUNED):  # a run that failed must never look usable
        (writer.path / name).unlink(missing_ok=True)
    try:
        writer.finish("failed", message)
    except (OSError, DiskFullError):
        pass  # the disk is full even for the status: the job reports the failure; a restart shows it interrupted


def _kept_epochs(history: list[dict]) -> int:
    """Fine-tuning epochs of the kept model (the hold-out estimate's own epochs are not the model's)."""
    return sum(1 for row in history if row.get("phase") == "fine-tune" and row.get("label") != "hold-out")


def out_of_fold_evaluation(classifier: TransferClassifier, dataset) -> Evaluation:
    """The evaluation from the folds' predictions: every tested photo, predicted by a model that never saw it."""
    validation = classifier.validation_
    tested = validation.tested
    # calibrated out of sample: the reliability shown is judged on photos whose answers did not fit it
    probabilities = validation.cross_fitted_probabilities(classifier.targets_)[tested]
    method = validation.folds.describe() + validation.note
    if classifier.tuned_:
        method += ", fine-tuned on the others"
    return evaluate_predictions(
        classifier.targets_[tested], probabilities, classifier.labels_, [dataset.samples[i].name for i in tested],
        method=method, extra=[{"index": int(i), "fold": int(validation.folds.assignment[i])} for i in tested])


def with_check_changes(evaluation: Evaluation, doctor: dict | None) -> Evaluation:
    """The evaluation with what the photo check changed beside it: photos left out or moved make the next
    number read high (the check flags photos the models get wrong), so the other end is given too — every
    changed photo counted as a mistake."""
    changes = [c for c in (doctor or {}).get("changes", []) if c.get("action") in ("remove", "move")]
    if not changes:
        return evaluation
    moved = {c["file"] for c in changes if c["action"] == "move"}
    left_out = len(changes) - len(moved)
    right = [p for p in evaluation.predictions if p["true"] == p["predicted"] and p["name"] not in moved]
    evaluation.check_changes = len(changes)
    evaluation.accuracy_counting_changes = len(right) / (len(evaluation.predictions) + left_out)
    return evaluation


def _save_examples(writer: RunWriter, dataset, classifier, evaluation: Evaluation) -> None:
    """Small pictures of the mistakes (and a few right answers), so galleries and reports work without the photos."""
    from PIL import Image

    kept_right = {}
    chosen = [p for p in evaluation.mistakes()[:MAX_MISTAKE_EXAMPLES]]
    for prediction in evaluation.predictions:
        if prediction["true"] == prediction["predicted"] and kept_right.get(prediction["true"], 0) < REFERENCES_PER_CLASS:
            kept_right[prediction["true"]] = kept_right.get(prediction["true"], 0) + 1
            chosen.append(prediction)
    for number, prediction in enumerate(chosen):
        try:
            pixels = fit_within(dataset.pixels(prediction["index"]), EXAMPLE_MAX_SIDE)
        except DatasetError:
            continue  # the photo can no longer be read: the gallery shows its name only
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=88)
        prediction["example"] = writer.write_example(number, buffer.getvalue())


def recover_run(run_dir: str | Path, *, base_loader=None) -> Run:
    """An interrupted fine-tuning's last finished epoch made into the run's model, so nothing learned is lost."""
    run = Run.open(run_dir)
    if not run.recoverable:
        raise QuasarError(f"Run {run.name!r} has no saved epoch to recover; train again.")
    head = Head.from_arrays(read_arrays(run.path / FILES.HEAD))
    base = base_loader() if base_loader is not None else load_vgg16(run.config.weights, seed=run.config.seed)
    recovered = recover_tuned(base, head, run.path / FILES.CHECKPOINT)
    if recovered is None:
        raise QuasarError(f"Run {run.name!r} has no readable saved epoch to recover; train again.")
    head, tuned = recovered
    write_arrays(run.path / FILES.HEAD, head.to_arrays())
    write_arrays(run.path / FILES.TUNED, flatten_tuned(tuned))
    epochs = _kept_epochs(run.history)
    status = Status(**{**run.status.to_dict(), "state": "interrupted",
                       "message": f"Training was cut off after {plural(epochs, 'fine-tuning epoch')}; the model "
                                  "from the last finished epoch was recovered."
                                  + (" Its accuracy was measured before fine-tuning." if run.metrics else
                                     " It was cut off before its accuracy was measured: evaluate it with "
                                     "`quasar evaluate` on photos it has not seen.")})
    write_json(run.path / FILES.STATUS, status.to_dict())
    shutil.rmtree(run.path / FILES.CHECKPOINT, ignore_errors=True)
    return Run.open(run.path)


def evaluate_run(run: Run, dataset, *, hooks: TrainingHooks | None = None, base_loader=None,
                 cache: FeatureCache | None = None) -> Evaluation:
    """Score a run on labelled photos it may never have seen (the classes it knows only).

    The photos go through the batched feature pass, streamed, in the precision the training ran (int8
    where it did), and the head's arrays answer (runs.serving): as the run learned, and memory does not
    grow with the number of photos."""
    from quasar_core.runs.serving import served_model

    keep = [i for i, s in enumerate(dataset.samples) if s.label in run.labels]
    if not keep:
        raise QuasarError(f"None of the classes in {dataset.report.source!r} are classes this model knows "
                          f"({', '.join(run.labels)}).")
    probabilities, _ = served_model(run, base_loader=base_loader, cache=cache).answer(dataset, keep, hooks=hooks)
    y_true = [run.labels.index(dataset.samples[i].label) for i in keep]
    return evaluate_predictions(y_true, probabilities, run.labels, [dataset.samples[i].name for i in keep],
                                method=f"{len(keep)} photos of {Path(dataset.report.source).name}")


def comparison_of(run: Run) -> dict | None:
    summary = read_json(run.path / FILES.COMPARISON)
    return summary if isinstance(summary, dict) and summary.get("results") else None
