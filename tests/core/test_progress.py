"""The progress seam: Progress records, hooks, the phase timer, the Keras callback and the tqdm bars."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from quasar_core import progress as progress_module
from quasar_core.progress import (
    PHASE_LABELS,
    PHASE_ORDER,
    PhaseTimer,
    Progress,
    TqdmProgress,
    TrainingHooks,
    is_cancelled,
    make_progress_callback,
)


def test_label_is_plain_language_and_unknown_phases_pass_through():
    assert Progress("features", 1, 2).label == PHASE_LABELS["features"] == "Reading your photos through VGG16"
    assert Progress("head", 1, 2).label == "Testing the classifier on photos it has not learned from"
    assert Progress("fine-tune", 1, 2).label == "Fine-tuning VGG16's top layers"
    assert Progress("something-new", 1, 2).label == "something-new"
    assert PHASE_ORDER == ("check", "features", "head", "fine-tune", "save")


@pytest.mark.parametrize(
    ("progress", "fraction"),
    [
        (Progress("features", 0, 10), 0.0),
        (Progress("features", 5, 10), 0.5),
        (Progress("features", 10, 10), 1.0),
        (Progress("features", 12, 10), 1.0),  # never above 1
        (Progress("features", 0, 0), 1.0),  # nothing to do is done
        (Progress("fine-tune", 2, 4, epoch=1, total_epochs=4), 0.125),
        (Progress("fine-tune", 4, 4, epoch=2, total_epochs=4), 0.5),
        (Progress("fine-tune", 4, 4, epoch=4, total_epochs=4), 1.0),
        (Progress("fine-tune", 0, 0, epoch=3, total_epochs=4), 0.75),
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
    callback = make_progress_callback("fine-tune", TrainingHooks(reports.append, rows.append), None, epoch_offset=10,
                                      label="kept model")
    fit_tiny_model(callback)
    assert len(reports) == 3 * 4
    assert [(p.epoch, p.step) for p in reports[:5]] == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1)]
    assert all(p.phase == "fine-tune" and p.total_steps == 4 and p.total_epochs == 3 for p in reports)
    assert [round(p.fraction, 4) for p in reports[3::4]] == [round(1 / 3, 4), round(2 / 3, 4), 1.0]
    assert reports[0].eta_seconds is not None and reports[-1].eta_seconds == pytest.approx(0.0)
    assert {"loss", "accuracy"} <= set(reports[0].logs)
    assert all(isinstance(v, float) for v in reports[0].logs.values())
    assert [row["epoch"] for row in rows] == [11, 12, 13]  # numbered after earlier phases
    for row in rows:
        assert row["phase"] == "fine-tune" and row["label"] == "kept model"
        assert isinstance(row["loss"], float) and 0 <= row["accuracy"] <= 1
        assert isinstance(row["val_loss"], float) and 0 <= row["val_accuracy"] <= 1
        assert row["seconds"] >= 0


def test_callback_without_validation_leaves_validation_empty():
    rows = []
    fit_tiny_model(make_progress_callback("fine-tune", TrainingHooks(on_epoch_end=rows.append), None),
                   epochs=1, validation=False)
    assert rows[0]["val_loss"] is None and rows[0]["val_accuracy"] is None and rows[0]["label"] == ""


def test_cancel_stops_after_the_current_batch():
    cancel = threading.Event()
    reports, rows = [], []

    def on_progress(p):
        reports.append(p)
        if p.step == 2:
            cancel.set()

    fit_tiny_model(make_progress_callback("fine-tune", TrainingHooks(on_progress, rows.append), cancel), epochs=5)
    assert len(reports) == 2  # not the remaining 2 batches of epoch 1, nor epochs 2-5
    assert len(rows) <= 1


# --------------------------------------------------------------------------- the command line's bars


def test_tqdm_bars_one_per_phase_and_epoch():
    import io

    stream = io.StringIO()
    bars = TqdmProgress(stream)
    for step in (4, 8, 10):
        bars(Progress("features", step, 10))
    first = bars.bar
    assert first.n == 10 and first.total == 10 and first.unit == "photo"
    bars(Progress("fine-tune", 1, 3, epoch=1, total_epochs=2))
    assert bars.bar is not first and bars.bar.unit == "step"
    second = bars.bar
    bars(Progress("fine-tune", 3, 3, epoch=1, total_epochs=2))
    assert bars.bar is second and second.n == 3
    bars(Progress("fine-tune", 1, 3, epoch=2, total_epochs=2))
    assert bars.bar is not second  # a new epoch: a new bar
    bars.checked(3, 7)
    assert bars.bar.desc.startswith(PHASE_LABELS["check"])
    text = stream.getvalue()
    assert PHASE_LABELS["features"] in text and "(epoch 1/2)" in text and "(epoch 2/2)" in text
    bars.close()
    assert bars.bar is None


def test_tqdm_messages_and_fine_tuning_epochs_in_words():
    import io

    stream = io.StringIO()
    bars = TqdmProgress(stream)
    hooks = bars.hooks()
    hooks.progress(Progress("features", 1, 2))
    hooks.message("Trying setting 1 of 2: 64 px.")
    assert bars.bar is None  # a message closes the bar first
    hooks.epoch_end({"phase": "head", "strength": 0.1})  # heads say nothing
    hooks.epoch_end({"phase": "fine-tune", "epoch": 2, "loss": 0.25, "accuracy": 0.9, "val_accuracy": 0.875})
    hooks.epoch_end({"phase": "fine-tune", "epoch": 3, "loss": 0.2, "accuracy": 0.95, "val_accuracy": None})
    lines = stream.getvalue().splitlines()
    assert "Trying setting 1 of 2: 64 px." in lines
    assert "fine-tuning epoch 2: loss 0.250, accuracy 90.0 %, hold-out accuracy 87.5 %" in lines
    assert "fine-tuning epoch 3: loss 0.200, accuracy 95.0 %" in lines
    assert not any("strength" in line for line in lines)
