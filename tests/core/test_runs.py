"""Run folders: what train_run writes, reopening it without the session, listing and deleting."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
from PIL import Image

from quasar_core.config import TrainConfig
from quasar_core.errors import QuasarError, WeightsUnavailableError
from quasar_core.evaluation import Evaluation
from quasar_core.progress import TrainingHooks
from quasar_core.runs import (
    EXAMPLE_MAX_SIDE,
    MODEL_FILE,
    Run,
    delete_run,
    list_runs,
    new_run_dir,
    read_json,
    train_run,
    write_json,
)

RUN_FILES = ("model.keras", "labels.json", "config.json", "history.json", "metrics.json", "data_report.json",
             "split.json", "status.json")


@pytest.fixture(scope="module")
def observed(tmp_path_factory, dataset, split, tiny_config, base):
    """One run, watched from the hooks: what was on disk at the end of every epoch."""
    run_dir = tmp_path_factory.mktemp("observed") / "run"
    seen = {"history_lengths": [], "statuses": [], "rows": [], "evaluate": []}

    def on_epoch_end(row):
        seen["rows"].append(row)
        seen["history_lengths"].append(len(json.loads((run_dir / "history.json").read_text())))
        seen["statuses"].append(json.loads((run_dir / "status.json").read_text()))

    def on_progress(progress):
        if progress.phase == "evaluate":
            seen["evaluate"].append((progress.step, progress.total_steps))

    run = train_run(dataset, tiny_config, run_dir, base=base, split=split,
                    hooks=TrainingHooks(on_progress=on_progress, on_epoch_end=on_epoch_end))
    return run, seen


def cancelled_before_training(dataset, config, run_dir, base):
    cancel = threading.Event()
    cancel.set()
    return train_run(dataset, config, run_dir, base=base, cancel=cancel)


# --------------------------------------------------------------------------- what is written


def test_run_folder_has_every_file(observed, split):
    run, _ = observed
    for name in RUN_FILES:
        assert (run.path / name).is_file(), name
    examples = sorted((run.path / "examples").glob("*.png"))
    assert len(examples) == len(split.test)
    for path in examples:
        with Image.open(path) as image:
            assert max(image.size) <= EXAMPLE_MAX_SIDE


def test_files_hold_what_was_trained(observed, dataset, split, tiny_config):
    run, _ = observed
    path = run.path
    assert read_json(path / "labels.json") == dataset.labels
    assert TrainConfig.from_dict(read_json(path / "config.json")) == tiny_config
    assert read_json(path / "data_report.json") == dataset.report.to_dict()
    names = read_json(path / "split.json")
    for part in ("train", "val", "test"):
        assert names[part] == [dataset.samples[i].name for i in getattr(split, part)]
    assert set(names["train"]) | set(names["val"]) | set(names["test"]) == {s.name for s in dataset.samples}
    history = read_json(path / "history.json")
    assert [row["epoch"] for row in history] == list(range(1, tiny_config.epochs + 1))
    status = read_json(path / "status.json")
    assert status["state"] == "done"
    assert status["epochs_done"] == tiny_config.epochs
    assert status["message"] == f"Trained for {tiny_config.epochs} epochs."
    assert status["finished"] >= status["started"]
    assert set(status["timings"]) >= {"features", "head"}
    assert status["precision"] in ("float32", "bfloat16")


def test_metrics_are_the_held_out_evaluation(observed, dataset, split):
    run, seen = observed
    metrics = Evaluation.from_dict(read_json(run.path / "metrics.json"))
    assert metrics.n_images == len(split.test)
    assert [p["name"] for p in metrics.predictions] == [dataset.samples[i].name for i in split.test]
    for prediction in metrics.predictions:
        assert run.example_path(prediction) is not None
    assert run.metrics == metrics
    assert seen["evaluate"][-1] == (len(split.test), len(split.test))


def test_history_and_status_are_rewritten_every_epoch(observed, tiny_config):
    _, seen = observed
    assert seen["history_lengths"] == list(range(1, tiny_config.epochs + 1))
    assert [s["epochs_done"] for s in seen["statuses"]] == list(range(1, tiny_config.epochs + 1))
    assert all(s["state"] == "running" for s in seen["statuses"])
    assert [row["epoch"] for row in seen["rows"]] == list(range(1, tiny_config.epochs + 1))


# --------------------------------------------------------------------------- reopening


def test_reopened_run_predicts_the_same_numbers(observed, dataset):
    run, _ = observed
    reopened = Run.open(run.path)
    assert reopened._classifier is None  # nothing carried over from the session
    loaded = reopened.classifier()
    assert loaded is not run.classifier()
    assert loaded.labels_ == run.classifier().labels_ == dataset.labels
    images = dataset.images(size=run.config.image_size)
    expected = run.classifier().predict_proba(images)
    np.testing.assert_allclose(loaded.predict_proba(images), expected, rtol=1e-5, atol=1e-6)
    assert reopened.classifier() is loaded  # loaded once


def test_reopened_run_reproduces_its_metrics(observed, dataset, split):
    from quasar_core.runs import evaluate_classifier

    run, _ = observed
    again = evaluate_classifier(Run.open(run.path).classifier(), dataset, split.test)
    assert again.confusion_matrix == run.metrics.confusion_matrix
    assert again.accuracy == run.metrics.accuracy


def test_reopened_run_reads_everything(observed, tiny_config):
    run, _ = observed
    reopened = Run.open(run.path)
    assert reopened.name == run.path.name
    assert reopened.state == "done" and reopened.has_model
    assert reopened.config == tiny_config
    assert len(reopened.history) == tiny_config.epochs
    assert reopened.report["counts"] == {"circle": 8, "square": 8, "triangle": 8}
    assert set(reopened.split) == {"train", "val", "test"}


def test_saved_model_loads_in_safe_mode(observed):
    import keras

    run, _ = observed
    model = keras.saving.load_model(run.path / MODEL_FILE, safe_mode=True, compile=False)
    assert model.input_shape == (None, None, None, 3)
    assert model.output_shape == (None, 3)


def test_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(QuasarError, match="not a Quasar run folder"):
        Run.open(tmp_path)


# --------------------------------------------------------------------------- stopped and failed runs


def test_cancelled_before_training_has_no_model(dataset, tiny_config, base, runs_dir):
    run = cancelled_before_training(dataset, tiny_config, runs_dir / "stopped", base)
    assert run.state == "cancelled"
    assert not run.has_model
    assert not (run.path / MODEL_FILE).exists() and not (run.path / "metrics.json").exists()
    assert "before the first epoch" in run.status["message"]
    assert run.metrics is None and run.history == []
    with pytest.raises(QuasarError, match="no saved model"):
        Run.open(run.path).classifier()


def test_cancelled_during_training_keeps_the_model(dataset, tiny_config, base, runs_dir):
    cancel = threading.Event()

    def on_epoch_end(row):
        cancel.set()  # the user presses Stop during the first epoch

    run = train_run(dataset, tiny_config.replace(epochs=20), runs_dir / "stopped-later", base=base, cancel=cancel,
                    hooks=TrainingHooks(on_epoch_end=on_epoch_end))
    assert run.state == "cancelled"
    assert run.has_model and run.metrics is not None
    done = run.status["epochs_done"]
    assert 1 <= done < 20
    assert run.status["message"] == f"Stopped by you after {done} epochs; the model learned so far is kept."
    assert Run.open(run.path).classifier().predict(np.zeros((1, 32, 32, 3), np.uint8))[0] in run.labels


def test_failed_run_records_the_error_and_raises(dataset, runs_dir, tmp_path):
    config = TrainConfig(weights=str(tmp_path / "missing.weights.h5"), image_size=32, epochs=1)
    with pytest.raises(WeightsUnavailableError):
        train_run(dataset, config, runs_dir / "failed")
    run = Run.open(runs_dir / "failed")
    assert run.state == "failed"
    assert "missing.weights.h5" in run.status["message"]
    assert not run.has_model


# --------------------------------------------------------------------------- listing and deleting


def test_list_runs_newest_first(dataset, tiny_config, base, runs_dir):
    made = [cancelled_before_training(dataset, tiny_config, new_run_dir(runs_dir), base) for _ in range(3)]
    (runs_dir / "not-a-run").mkdir()
    (runs_dir / "damaged").mkdir()
    (runs_dir / "damaged" / "config.json").write_text("{not json")
    (runs_dir / "stray.txt").write_text("hello")
    listed = list_runs(runs_dir)
    assert [run.path for run in listed] == [run.path for run in reversed(made)]
    assert [run.path for run in list_runs()] == [run.path for run in listed]  # QUASAR_RUNS_DIR is the default


def test_runs_started_in_the_same_second_are_listed_by_start_time(runs_dir):
    """Folder names tell the second, then a random token: the token must not decide the order."""
    for name, started in (("20240101-120000-ffff", 100.0), ("20240101-120000-0000", 200.0),
                          ("20240101-115959-aaaa", 50.0)):
        make_run_like(runs_dir / name)
        write_json(runs_dir / name / "status.json", {"state": "done", "started": started})
    assert [run.name for run in list_runs(runs_dir)] == [
        "20240101-120000-0000", "20240101-120000-ffff", "20240101-115959-aaaa"]


def test_list_runs_of_a_missing_root_is_empty(tmp_path):
    assert list_runs(tmp_path / "nowhere") == []


def test_new_run_dirs_are_distinct_folders_under_the_root(runs_dir):
    made = {new_run_dir(runs_dir) for _ in range(5)}
    assert len(made) == 5
    assert all(path.is_dir() and path.parent == runs_dir for path in made)


def make_run_like(folder):
    folder.mkdir(parents=True)
    write_json(folder / "config.json", TrainConfig(weights="none").to_dict())
    return folder


def test_delete_run_removes_a_run_under_the_root(runs_dir):
    run = make_run_like(runs_dir / "20240101-000000-abcd")
    delete_run(run, runs_dir)
    assert not run.exists()


def test_delete_run_refuses_paths_outside_the_root(runs_dir, tmp_path):
    outside = make_run_like(tmp_path / "elsewhere" / "run")
    nested = make_run_like(runs_dir / "a" / "b")
    dotted = runs_dir / ".." / "elsewhere" / "run"
    link = runs_dir / "link"
    os.symlink(outside, link)
    not_a_run = runs_dir / "plain"
    not_a_run.mkdir()
    for path in (outside, nested, dotted, link, not_a_run, runs_dir, tmp_path):
        with pytest.raises(QuasarError, match="nothing was deleted"):
            delete_run(path, runs_dir)
    assert (outside / "config.json").is_file() and (nested / "config.json").is_file() and not_a_run.is_dir()


def test_delete_run_uses_the_configured_root_by_default(runs_dir, tmp_path):
    run = make_run_like(runs_dir / "mine")
    outside = make_run_like(tmp_path / "other-root" / "theirs")
    with pytest.raises(QuasarError):
        delete_run(outside)
    delete_run(run)
    assert not run.exists() and outside.exists()


def test_write_json_is_atomic_and_read_json_has_a_default(tmp_path):
    target = tmp_path / "status.json"
    write_json(target, {"state": "running", "name": "café"})
    write_json(target, {"state": "done"})
    assert read_json(target) == {"state": "done"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary files left
    assert read_json(tmp_path / "missing.json", {"x": 1}) == {"x": 1}
    (tmp_path / "broken.json").write_text("{")
    assert read_json(tmp_path / "broken.json") is None
