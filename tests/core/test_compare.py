"""Transfer vs from scratch: same split, same settings, per fraction; the conclusion follows the numbers."""

import threading

import numpy as np
import pytest

from quasar_core.compare import compare_transfer, conclusion, subsample_train
from quasar_core.progress import TrainingHooks


def test_subsample_is_stratified_seeded_and_keeps_a_picture_per_class(dataset, split):
    half = subsample_train(dataset, split.train, 0.5, seed=0)
    assert set(half) <= set(split.train)
    assert np.array_equal(half, subsample_train(dataset, split.train, 0.5, seed=0))
    counts = np.bincount(dataset.targets(half), minlength=len(dataset.labels))
    full = np.bincount(dataset.targets(split.train), minlength=len(dataset.labels))
    assert list(counts) == [max(1, round(n * 0.5)) for n in full]
    assert all(np.bincount(dataset.targets(subsample_train(dataset, split.train, 0.01, 0))) == 1)
    with pytest.raises(ValueError, match="fraction"):
        subsample_train(dataset, split.train, 0.0, seed=0)


def test_compare_trains_each_kind_at_each_fraction_on_the_same_test_images(dataset, split, base, tiny_config):
    messages = []
    summary = compare_transfer(dataset, tiny_config.replace(epochs=2), fractions=(0.5, 1.0), split=split,
                               bases={"imagenet": base, "none": base}, hooks=TrainingHooks(on_message=messages.append))
    results = summary["results"]
    assert [(r["weights"], r["fraction"]) for r in results] == [
        ("imagenet", 0.5), ("imagenet", 1.0), ("none", 0.5), ("none", 1.0)]
    assert {r["test_images"] for r in results} == {len(split.test)}
    assert all(0 <= r["accuracy"] <= 1 and r["train_seconds"] > 0 for r in results)
    assert results[0]["images_per_class"] < results[1]["images_per_class"]
    assert len(messages) == 4 and "Training 1 of 4" in messages[0]
    assert summary["cancelled"] is False and summary["conclusion"].startswith("With ImageNet weights")


def test_a_stopped_comparison_returns_what_finished(dataset, split, base, tiny_config):
    cancel = threading.Event()
    cancel.set()
    summary = compare_transfer(dataset, tiny_config, fractions=(1.0,), split=split,
                               bases={"imagenet": base, "none": base}, cancel=cancel)
    assert summary == {"results": [], "conclusion": conclusion([]), "cancelled": True}


def test_conclusion_reads_the_numbers():
    results = [
        {"weights": "imagenet", "fraction": 0.25, "images_per_class": 10, "accuracy": 0.91, "train_seconds": 3},
        {"weights": "imagenet", "fraction": 1.0, "images_per_class": 40, "accuracy": 0.96, "train_seconds": 9},
        {"weights": "none", "fraction": 0.25, "images_per_class": 10, "accuracy": 0.40, "train_seconds": 3},
        {"weights": "none", "fraction": 1.0, "images_per_class": 40, "accuracy": 0.55, "train_seconds": 10},
    ]
    text = conclusion(results)
    assert text.startswith("With ImageNet weights, 10 images per class gave 91%; from scratch, 40 per class gave 55%.")
    assert "reached 96% against 55% at best" in text
    results[3]["accuracy"] = 0.97
    assert "training from scratch did as well" in conclusion(results)
