"""train_run, recover_run and evaluate_run (quasar_core.runs.pipeline): what a training leaves on disk, and
what it leaves when it is stopped, fails, meets a full disk or is cut off while fine-tuning.

Every training: random weights at 32 px on the 24 shapes (a few seconds; the two fine-tunings ~20 s each).
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quasar_core.errors import DiskFullError, QuasarError, WeightsUnavailableError
from quasar_core.evaluation import Evaluation
from quasar_core.features.cache import FeatureCache
from quasar_core.progress import TrainingHooks
from quasar_core.runs import folder
from quasar_core.runs.folder import FILES, Run, read_arrays, read_json, write_json
from quasar_core.runs.learned import classifier_of
from quasar_core.runs.pipeline import (EXAMPLE_MAX_SIDE, REFERENCES_PER_CLASS, comparison_of, evaluate_run,
                                       recover_run, train_run)
from tests.core.runs.support import dead_pid, small_config

FINISHED_FILES = {FILES.CONFIG, FILES.LABELS, FILES.STATUS, FILES.HISTORY, FILES.METRICS, FILES.DATA_REPORT,
                  FILES.FOLDS, FILES.HEAD, FILES.FAMILIARITY, FILES.EXAMPLES}
MAX_RUN_BYTES = 10 * 1024**2  # a run stores its head, not VGG16's 58 MB


def temporary_files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def observed(tmp_path_factory, dataset, base_loader):
    """One run (no feature cache: every phase runs), watched from the hooks: what was on disk at every row."""
    run_dir = tmp_path_factory.mktemp("observed") / "run"
    seen = {"history_lengths": [], "statuses": [], "rows": [], "phases": []}

    def on_epoch_end(row):
        seen["rows"].append(row)
        seen["history_lengths"].append(len(read_json(run_dir / FILES.HISTORY)))
        seen["statuses"].append(read_json(run_dir / FILES.STATUS))

    def on_progress(progress):
        if not seen["phases"] or seen["phases"][-1] != progress.phase:
            seen["phases"].append(progress.phase)

    run = train_run(dataset, small_config(), run_dir, base_loader=base_loader,
                    hooks=TrainingHooks(on_progress=on_progress, on_epoch_end=on_epoch_end))
    return run, seen


# --------------------------------------------------------------------------- a finished run


def test_the_run_folder_holds_exactly_the_expected_files_and_is_small(observed):
    run, _ = observed
    assert {p.name for p in run.path.iterdir()} == FINISHED_FILES  # no tuned.npz, no model.keras, no checkpoint
    assert temporary_files(run.path) == []
    assert run.size_bytes() < MAX_RUN_BYTES
    reopened = Run.open(run.path)
    assert reopened.state == "done" and reopened.has_model and not reopened.opened_from_file


def test_the_files_hold_what_was_trained(observed, dataset):
    run, _ = observed
    assert read_json(run.path / FILES.LABELS) == dataset.labels == run.labels
    assert run.config == small_config()
    assert read_json(run.path / FILES.DATA_REPORT) == dataset.report.to_dict()
    assert run.report.counts == {"circle": 8, "square": 8, "triangle": 8}
    folds = read_json(run.path / FILES.FOLDS)
    assert folds["names"] == [s.name for s in dataset.samples]
    assert folds["folds"]["method"] == "cross-validation"
    # 24 photos, 8 a class: 8 folds (no more folds than photos of the smallest class), dealt 3 times
    for assignment in (folds["folds"]["assignment"], *folds["folds"]["repeats"]):
        assert sorted(set(assignment)) == list(range(8))  # every photo tested once in each dealing
    assert len(folds["folds"]["repeats"]) == 2
    assert len(folds["candidates"]) >= 2 and folds["strength"] in [c["strength"] for c in folds["candidates"]]
    status = run.status
    assert status.state == "done" and status.message == "Trained: the classifier learned from every photo."
    assert status.finished >= status.started > 0 and status.phase == ""
    assert set(status.timings) >= {"features", "head"}
    assert status.precision in ("float32", "bfloat16", "int8") and status.precision_reason
    assert status.source == "uploads"


def test_metrics_are_the_out_of_fold_evaluation_with_its_interval_and_method(observed, dataset):
    run, _ = observed
    metrics = run.metrics
    assert metrics == Evaluation.from_dict(read_json(run.path / FILES.METRICS))
    assert metrics.n_images == len(dataset)  # every photo, predicted by a fold's model that never saw it
    assert sorted(p["name"] for p in metrics.predictions) == sorted(s.name for s in dataset.samples)
    assert all(0 <= p["fold"] < 8 for p in metrics.predictions)
    assert metrics.method == "8-fold cross-validation over 24 photos, repeated 3 times"
    low, high = metrics.accuracy_interval
    assert 0 <= low <= metrics.accuracy <= high <= 1 and high - low > 0.05  # 24 photos: a wide interval
    assert metrics.reliability and metrics.calibration_error is not None


def test_examples_exist_for_the_mistakes_and_some_right_answers(observed):
    run, _ = observed
    with_examples = [p for p in run.metrics.predictions if "example" in p]
    mistakes = run.metrics.mistakes()
    assert all("example" in p for p in mistakes)
    for label in run.labels:
        right = [p for p in with_examples if p["true"] == label and p["predicted"] == label]
        assert len(right) == min(REFERENCES_PER_CLASS, sum(1 for p in run.metrics.predictions
                                                           if p["true"] == label == p["predicted"]))
    files = sorted((run.path / FILES.EXAMPLES).iterdir())
    assert len(files) == len(with_examples) > 0
    for prediction in with_examples:
        path = run.example_path(prediction)
        assert path is not None and path in files
        with Image.open(path) as image:
            assert image.format == "JPEG" and max(image.size) <= EXAMPLE_MAX_SIDE


def test_history_and_status_are_on_disk_at_every_row(observed):
    run, seen = observed
    rows = seen["rows"]
    assert seen["history_lengths"] == list(range(1, len(rows) + 1))
    assert all(status["state"] == "running" for status in seen["statuses"])
    heads = [row for row in rows if row["phase"] == "head"]  # one row per regularisation tried
    assert [row["phase"] for row in rows] == ["head"] * len(heads) + ["learning"] * (len(rows) - len(heads))
    assert [row["share"] for row in rows[len(heads):]] == [0.25, 0.5, 0.75, 1.0]
    assert sum(row["chosen"] for row in heads) == 1
    assert run.history == rows
    assert seen["phases"][0] == "features" and seen["phases"][-1] == "save" and "head" in seen["phases"]


def test_the_best_preset_keeps_the_winner_and_says_what_was_tried(dataset, base_loader, feature_cache, tmp_path):
    candidates = [small_config(), small_config(augment=True)]
    run = train_run(dataset, candidates[0], tmp_path / "best", base_loader=base_loader, cache=feature_cache,
                    candidates=candidates)
    table = read_json(run.path / FILES.SELECTION)
    assert len(table) == 2 and sum(row["chosen"] for row in table) == 1
    assert {row["setting"] for row in table} == {"32 px", "32 px, 1 augmented copy of each photo"}
    winner = next(row for row in table if row["chosen"])
    assert (run.config.augment is True) == ("augmented" in winner["setting"])
    assert run.state == "done" and run.has_model


def test_comparison_of_a_run(tiny_run, tmp_path):
    from tests.core.runs.support import copy_run

    assert comparison_of(tiny_run) is None
    run = copy_run(tiny_run, tmp_path / "run")
    write_json(run.path / FILES.COMPARISON, {"results": []})
    assert comparison_of(run) is None  # nothing was compared
    write_json(run.path / FILES.COMPARISON, {"results": [{"weights": "imagenet"}], "conclusion": "x"})
    assert comparison_of(run)["conclusion"] == "x"


# --------------------------------------------------------------------------- stopped and failed runs


def test_cancelled_before_the_head_leaves_no_usable_run(dataset, base_loader, tmp_path):
    cancel = threading.Event()
    cancel.set()
    run = train_run(dataset, small_config(), tmp_path / "stopped", base_loader=base_loader, cancel=cancel)
    assert run.state == "cancelled" and not run.has_model
    assert run.status.message.startswith("Stopped before the first model was learned: nothing was kept.")
    assert not (run.path / FILES.HEAD).exists() and not (run.path / FILES.METRICS).exists()
    assert run.metrics is None and run.history == []
    with pytest.raises(QuasarError, match="no usable model"):
        classifier_of(Run.open(run.path))


def test_cancelled_while_the_folds_are_tested_leaves_no_usable_run(dataset, base_loader, feature_cache, tmp_path):
    cancel = threading.Event()

    def on_progress(progress):
        if progress.phase == "head":
            cancel.set()  # the user presses Stop while the folds are being tested

    run = train_run(dataset, small_config(), tmp_path / "stopped", base_loader=base_loader, cache=feature_cache,
                    cancel=cancel, hooks=TrainingHooks(on_progress=on_progress))
    assert run.state == "cancelled" and not run.has_model and not (run.path / FILES.HEAD).exists()


def test_cancelled_while_fine_tuning_keeps_the_model_learned_so_far(dataset, base_loader, feature_cache, tmp_path):
    cancel = threading.Event()

    def on_progress(progress):
        if progress.phase == "fine-tune":
            cancel.set()

    config = small_config(mode="fine-tune", fine_tune_epochs=3, batch_size=8)
    run = train_run(dataset, config, tmp_path / "stopped", base_loader=base_loader, cache=feature_cache,
                    cancel=cancel, hooks=TrainingHooks(on_progress=on_progress))
    assert run.state == "cancelled" and run.has_model and run.metrics is not None
    assert run.status.message == "Stopped by you; the model learned so far is kept."
    assert not (run.path / FILES.CHECKPOINT).exists()
    assert classifier_of(run, base_loader=base_loader).predict([np.zeros((32, 32, 3), np.uint8)])[0] in run.labels


def test_a_failed_run_records_the_error_and_raises(dataset, tmp_path):
    config = small_config(weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(WeightsUnavailableError):
        train_run(dataset, config, tmp_path / "failed")
    run = Run.open(tmp_path / "failed")
    assert run.state == "failed" and "missing.weights.h5" in run.status.message
    assert not run.has_model and run.status.finished is not None


# --------------------------------------------------------------------------- a full disk


class FullFor:
    """Stands in for `open` inside folder.py: writing any file whose name `matches` fails with ENOSPC, after a few
    bytes reached the temporary file (as on a real disk that fills up mid-write)."""

    def __init__(self, matches):
        self.matches = matches
        self.failed = []

    def __call__(self, path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        target = Path(path).name.lstrip(".").rsplit(".", 2)[0]  # ".head.npz.ab12cd.tmp" -> "head.npz"
        if "w" not in mode or not self.matches(target):
            return handle
        self.failed.append(target)

        class Full:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                handle.close()

            def write(self, data):
                handle.write(data[:10])
                raise OSError(errno.ENOSPC, "No space left on device")

            def __getattr__(self, name):
                return getattr(handle, name)

        return Full()


def assert_failed_for_a_full_disk(run_dir: Path, raised: BaseException):
    assert isinstance(raised, DiskFullError), repr(raised)  # never a raw OSError
    run = Run.open(run_dir)
    assert run.state == "failed"
    assert run.status.message.startswith("The disk is full") and "Delete old runs" in run.status.message
    assert not (run_dir / FILES.HEAD).exists() and not (run_dir / FILES.TUNED).exists()
    assert not run.has_model
    assert temporary_files(run_dir) == []
    with pytest.raises(QuasarError, match="no usable model"):
        classifier_of(run)


@pytest.mark.parametrize("unwritable", [FILES.HEAD, FILES.METRICS, FILES.FAMILIARITY, "00000.jpg"])
def test_a_full_disk_fails_the_run_and_says_so(dataset, base_loader, feature_cache, tmp_path, monkeypatch,
                                              unwritable):
    full = FullFor(lambda name: name == unwritable)
    monkeypatch.setattr(folder, "open", full, raising=False)
    with pytest.raises(Exception) as raised:
        train_run(dataset, small_config(), tmp_path / "run", base_loader=base_loader, cache=feature_cache)
    monkeypatch.undo()
    assert full.failed and set(full.failed) == {unwritable}
    assert f"{unwritable} could not be saved" in str(raised.value)
    assert_failed_for_a_full_disk(tmp_path / "run", raised.value)


def test_a_disk_that_stays_full_still_raises_only_disk_full(dataset, base_loader, feature_cache, tmp_path,
                                                            monkeypatch):
    """From the head on nothing can be written, not even the failed status: the caller still gets DiskFullError
    (naming the file that did not fit), and nothing in the folder looks usable."""
    full = FullFor(lambda name: name == FILES.HEAD or bool(full.failed))
    monkeypatch.setattr(folder, "open", full, raising=False)
    with pytest.raises(Exception) as raised:
        train_run(dataset, small_config(), tmp_path / "run", base_loader=base_loader, cache=feature_cache)
    monkeypatch.undo()
    assert isinstance(raised.value, DiskFullError), repr(raised.value)
    assert f"{FILES.HEAD} could not be saved" in str(raised.value)
    assert FILES.STATUS in full.failed  # the failed status could not be written either
    run = Run.open(tmp_path / "run")
    assert run.state == "running" and not run.has_model  # as left; once this process is gone it reads interrupted
    assert not (run.path / FILES.HEAD).exists() and temporary_files(run.path) == []
    write_json(run.path / FILES.STATUS, {**run.status.to_dict(), "pid": dead_pid()})
    assert Run.open(run.path).state == "interrupted" and not Run.open(run.path).has_model


def test_a_full_disk_outside_the_run_folder_is_a_disk_full_error_too(dataset, base_loader, tmp_path):
    class FullCache(FeatureCache):
        def put(self, digest, spec, array):
            raise OSError(errno.ENOSPC, "No space left on device", str(self.root / "x.tmp"))

    with pytest.raises(Exception) as raised:
        train_run(dataset, small_config(), tmp_path / "run", base_loader=base_loader,
                  cache=FullCache(tmp_path / "features"))
    assert "could not be saved" in str(raised.value)
    assert_failed_for_a_full_disk(tmp_path / "run", raised.value)


def test_other_write_errors_are_not_called_a_full_disk(dataset, base_loader, tmp_path):
    class BrokenCache(FeatureCache):
        def put(self, digest, spec, array):
            raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError):
        train_run(dataset, small_config(), tmp_path / "run", base_loader=base_loader,
                  cache=BrokenCache(tmp_path / "features"))
    run = Run.open(tmp_path / "run")
    assert run.state == "failed" and "Permission denied" in run.status.message and not run.has_model


def _mount_tmpfs(path: Path, size_bytes: int) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    return done.returncode == 0


def test_a_real_full_disk(dataset, base_loader, feature_cache, tiny_run, tmp_path):
    """A tmpfs just too small for the finished run (its last file, familiarity.npz, does not fit)."""
    page = os.sysconf("SC_PAGE_SIZE")
    pages = sum(math.ceil(p.stat().st_size / page) for p in tiny_run.path.rglob("*") if p.is_file())
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, (pages - 2) * page):
        pytest.skip("cannot mount a tmpfs here (needs root and permission to mount); the patched-writer tests "
                    "above cover the same code")
    try:
        with pytest.raises(Exception) as raised:
            train_run(dataset, small_config(), disk / "run", base_loader=base_loader, cache=feature_cache)
        assert f"{FILES.FAMILIARITY} could not be saved" in str(raised.value)
        assert_failed_for_a_full_disk(disk / "run", raised.value)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# --------------------------------------------------------------------------- recovering a cut-off fine-tuning


@pytest.fixture(scope="module")
def cut_off(tmp_path_factory, dataset, base_loader):
    """A fine-tuning "killed" once its kept model's epoch was checkpointed, before the run was saved.

    The folder is copied at that moment (what a kill -9 or a power cut leaves), with the pid of a dead process;
    the original goes on and finishes, so the recovered model can be compared with the finished one.
    """
    root = tmp_path_factory.mktemp("cut-off")
    snapshot = root / "killed"

    def on_progress(progress):
        if progress.phase == "save" and not snapshot.exists():
            shutil.copytree(root / "finished", snapshot)
            status = read_json(snapshot / FILES.STATUS)
            write_json(snapshot / FILES.STATUS, {**status, "pid": dead_pid()})

    config = small_config(mode="fine-tune", fine_tune_epochs=1, batch_size=8, fine_tune_learning_rate=1e-3)
    finished = train_run(dataset, config, root / "finished", base_loader=base_loader,
                         hooks=TrainingHooks(on_progress=on_progress))
    return finished, snapshot


def test_a_finished_fine_tuning_keeps_its_layers_and_no_checkpoint(cut_off):
    finished, _ = cut_off
    assert finished.state == "done" and finished.has_model and not finished.recoverable
    assert (finished.path / FILES.TUNED).is_file() and not (finished.path / FILES.CHECKPOINT).exists()
    assert finished.status.message == "Trained: fine-tuned for 1 epoch."  # the hold-out estimate's epoch not counted
    assert finished.metrics.method.endswith(", fine-tuned on the others")
    assert finished.size_bytes() < 40 * 1024**2  # block 5's fine-tuned weights (28 MB), still no VGG16
    with pytest.raises(QuasarError, match="no saved epoch"):
        recover_run(finished.path, base_loader=lambda: pytest.fail("nothing to load"))


def test_an_interrupted_fine_tuning_reads_as_interrupted_and_recoverable(cut_off):
    _, snapshot = cut_off
    run = Run.open(snapshot)
    assert run.state == "interrupted" and run.recoverable
    assert run.status.message.lower().startswith("the training stopped while fine-tuning vgg16's top layers")
    assert run.has_model  # the head saved before fine-tuning is usable as it is
    assert (snapshot / FILES.CHECKPOINT / "checkpoint.json").is_file() and not (snapshot / FILES.TUNED).exists()


def test_recover_run_keeps_the_last_finished_epoch(cut_off, base_loader, dataset, tmp_path):
    finished, snapshot = cut_off
    copy = tmp_path / "killed"
    shutil.copytree(snapshot, copy)
    recovered = recover_run(copy, base_loader=base_loader)
    assert recovered.state == "interrupted" and recovered.has_model and not recovered.recoverable
    assert recovered.status.message.startswith("Training was cut off after 1 fine-tuning epoch; the model from the "
                                               "last finished epoch was recovered.")
    assert not (copy / FILES.CHECKPOINT).exists()
    # The recovered layers and head are the finished run's (its last epoch is the one checkpointed).
    tuned, expected = read_arrays(copy / FILES.TUNED), read_arrays(finished.path / FILES.TUNED)
    assert sorted(tuned) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(tuned[key], expected[key], atol=1e-6)
    head, kept = read_arrays(copy / FILES.HEAD), read_arrays(finished.path / FILES.HEAD)
    for key in ("mean", "scale", "kernel", "bias"):
        np.testing.assert_allclose(head[key], kept[key], atol=1e-6)
    images = [dataset.pixels(i) for i in range(0, len(dataset), 4)]
    answers = classifier_of(recovered, base_loader=base_loader).predict_proba(images).argmax(1)
    assert np.array_equal(answers, classifier_of(finished, base_loader=base_loader).predict_proba(images).argmax(1))


# --------------------------------------------------------------------------- evaluating a run


def test_evaluate_run_scores_the_known_classes(tiny_run, base_loader, shapes):
    from quasar_core.data import Limits, load_uploads

    items = [(f"{label}_{n}.png", shapes.png(shapes.image(label, n)), label)
             for label in ("circle", "square") for n in range(40, 45)]
    items += [(f"hex_{n}.png", shapes.png(shapes.image("triangle", n)), "hexagon") for n in range(5)]
    photos = load_uploads(items, limits=Limits(), source="new-photos.zip")
    seen = []
    evaluation = evaluate_run(tiny_run, photos, base_loader=base_loader, hooks=TrainingHooks(on_progress=seen.append))
    assert evaluation.labels == tiny_run.labels
    assert evaluation.n_images == 10  # the 5 hexagons are not a class this model knows
    assert evaluation.method == "10 photos of new-photos.zip"
    assert evaluation.per_class["triangle"]["support"] == 0
    assert seen and seen[-1].phase == "features" and seen[-1].step == seen[-1].total_steps == 10


def test_evaluate_run_refuses_photos_of_only_unknown_classes(tiny_run, base_loader, shapes):
    from quasar_core.data import Limits, load_uploads

    items = [(f"{n}.png", shapes.png(shapes.image(label, n)), name)
             for label, name in (("circle", "moon"), ("square", "box")) for n in range(5)]
    with pytest.raises(QuasarError, match="None of the classes"):
        evaluate_run(tiny_run, load_uploads(items, limits=Limits()), base_loader=base_loader)


def test_after_the_photo_check_the_number_says_so_and_gives_the_other_end():
    """Photos the check flagged and the user moved or left out make the cross-validated number read high:
    it says so, and gives the accuracy with every changed photo counted as a mistake."""
    from quasar_core.evaluation import evaluate_predictions
    from quasar_core.runs.pipeline import with_check_changes

    probabilities = np.array([[0.9, 0.1]] * 8 + [[0.2, 0.8]] * 2)
    evaluation = evaluate_predictions(np.zeros(10, int), probabilities, ["a", "b"], [f"p{i}.png" for i in range(10)])
    assert evaluation.accuracy == 0.8 and evaluation.check_note() == ""
    unchanged = with_check_changes(evaluation, {"found": {}, "changes": [{"file": "x.png", "action": "keep"}]})
    assert unchanged.check_changes is None and "photo check" not in unchanged.summary()
    doctor = {"changes": [{"file": "p0.png", "action": "move", "to": "a", "words": "moved to a"},
                          {"file": "gone1.png", "action": "remove", "words": "left out"},
                          {"file": "gone2.png", "action": "remove", "words": "left out"}]}
    noted = with_check_changes(evaluation, doctor)
    assert noted.check_changes == 3
    assert noted.accuracy_counting_changes == pytest.approx(7 / 12)  # p0 no longer counts as right; 2 more photos
    assert "Measured after 3 photos flagged by the photo check were moved or left out: it may read high" in \
        noted.summary()
    assert "it would be 58 %" in noted.check_note()
    assert type(noted).from_dict(noted.to_dict()).check_note() == noted.check_note()
