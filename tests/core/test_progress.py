"""The progress seam: Progress records, hooks, the phase timer and the Keras callback."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from quasar_core import progress as progress_module
from quasar_core.progress import (
    PHASE_LABELS,
    PhaseTimer,
    Progress,
    TrainingHooks,
    is_cancelled,
    make_progress_callback,
)


def test_label_is_plain_language_and_unknown_phases_pass_through():
    assert Progress("features", 1, 2).label == PHASE_LABELS["features"] == "Reading your images through VGG16"
    assert Progress("head", 1, 2).label == "Training the classifier"
    assert Progress("something-new", 1, 2).label == "something-new"


@pytest.mark.parametrize(
    ("progress", "fraction"),
    [
        (Progress("features", 0, 10), 0.0),
        (Progress("features", 5, 10), 0.5),
        (Progress("features", 10, 10), 1.0),
        (Progress("features", 12, 10), 1.0),  # never above 1
        (Progress("features", 0, 0), 1.0),  # nothing to do is done
        (Progress("head", 2, 4, epoch=1, total_epochs=4), 0.125),
        (Progress("head", 4, 4, epoch=2, total_epochs=4), 0.5),
        (Progress("head", 4, 4, epoch=4, total_epochs=4), 1.0),
        (Progress("head", 0, 0, epoch=3, total_epochs=4), 0.75),
    ],
)
def test_fraction(progress, fraction):
    assert progress.fraction == pytest.approx(fraction)


def test_hooks_may_be_missing():
    hooks = TrainingHooks()
    hooks.progress(Progress("head", 1, 1))
    hooks.epoch_end({"epoch": 1})
    hooks.message("hello")


def test_hooks_forward_to_the_functions():
    seen = []
    hooks = TrainingHooks(seen.append, seen.append, seen.append)
    p = Progress("head", 1, 1)
    hooks.progress(p)
    hooks.epoch_end({"epoch": 1})
    hooks.message("note")
    assert seen == [p, {"epoch": 1}, "note"]


def test_is_cancelled():
    assert not is_cancelled(None)
    event = threading.Event()
    assert not is_cancelled(event)
    event.set()
    assert is_cancelled(event)


def test_phase_timer_eta_is_linear(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: now[0])
    timer = PhaseTimer(10)
    assert timer.eta(0) is None  # nothing done: no basis for a guess
    now[0] = 104.0
    assert timer.elapsed() == pytest.approx(4.0)
    assert timer.eta(2) == pytest.approx(16.0)  # 2 s a unit, 8 units left
    assert timer.eta(10) == pytest.approx(0.0)
    assert timer.eta(12) == pytest.approx(0.0)  # never negative
    assert PhaseTimer(0).total_units == 1


def fit_tiny_model(callback, *, epochs=3, n=20, batch_size=5, validation=True):
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((n, 4)).astype("float32")
    y = (x[:, 0] > 0.5).astype("int64")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[callback],
              validation_data=(x, y) if validation else None)


def test_callback_reports_every_batch_and_every_epoch():
    reports, rows = [], []
    callback = make_progress_callback("head", TrainingHooks(reports.append, rows.append), None, epoch_offset=10)
    fit_tiny_model(callback)
    assert len(reports) == 3 * 4
    assert [(p.epoch, p.step) for p in reports[:5]] == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1)]
    assert all(p.phase == "head" and p.total_steps == 4 and p.total_epochs == 3 for p in reports)
    assert [round(p.fraction, 4) for p in reports[3::4]] == [round(1 / 3, 4), round(2 / 3, 4), 1.0]
    assert reports[0].eta_seconds is not None and reports[-1].eta_seconds == pytest.approx(0.0)
    assert {"loss", "accuracy"} <= set(reports[0].logs)
    assert all(isinstance(v, float) for v in reports[0].logs.values())
    assert [row["epoch"] for row in rows] == [11, 12, 13]  # numbered after earlier phases
    for row in rows:
        assert row["phase"] == "head"
        assert isinstance(row["loss"], float) and 0 <= row["accuracy"] <= 1
        assert isinstance(row["val_loss"], float) and 0 <= row["val_accuracy"] <= 1
        assert row["seconds"] >= 0


def test_callback_without_validation_leaves_validation_empty():
    rows = []
    fit_tiny_model(make_progress_callback("head", TrainingHooks(on_epoch_end=rows.append), None),
                   epochs=1, validation=False)
    assert rows[0]["val_loss"] is None and rows[0]["val_accuracy"] is None


def test_cancel_stops_after_the_current_batch():
    cancel = threading.Event()
    reports, rows = [], []

    def on_progress(p):
        reports.append(p)
        if p.step == 2:
            cancel.set()

    fit_tiny_model(make_progress_callback("head", TrainingHooks(on_progress, rows.append), cancel), epochs=5)
    assert len(reports) == 2  # not the remaining 2 batches of epoch 1, nor epochs 2-5
    assert len(rows) <= 1
