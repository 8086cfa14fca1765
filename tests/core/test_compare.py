"""Transfer vs from scratch: two passes through VGG16 and no more, the same folds for every setting,
intervals on every accuracy, and a conclusion that says whether a difference is larger than the
uncertainty. Both kinds of start use the shared random base here (the maths, not ImageNet, is tested)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from quasar_core import compare
from quasar_core.compare import compare_transfer, conclusion
from quasar_core.features.extract import POOLED
from quasar_core.data.split import subsample
from quasar_core.evaluation import wilson_interval

REAL_PROVIDER = compare.network_provider
REAL_CROSS_VALIDATE = compare.cross_validate


@pytest.fixture(scope="module")
def compared(dataset, tiny_config, base_loader):
    calls, folds, messages = [], [], []

    def provider(**kwargs):
        network_for = REAL_PROVIDER(**kwargs)

        def counted(layer):
            network = network_for(layer)
            return lambda images: calls.append((kwargs["weights"], layer, len(images))) or network(images)

        return counted

    def recording(views, targets, given_folds, **kwargs):
        folds.append(given_folds)
        return REAL_CROSS_VALIDATE(views, targets, given_folds, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compare, "network_provider", provider)
        patch.setattr(compare, "cross_validate", recording)
        summary = compare_transfer(dataset, tiny_config.replace(folds=3), base_loaders={"imagenet": base_loader,
                                   "none": base_loader}, hooks=compare.TrainingHooks(on_message=messages.append))
    return {"summary": summary, "calls": calls, "folds": folds, "messages": messages}


def test_two_feature_passes_only(compared, dataset):
    photos = {}
    for weights, layer, n in compared["calls"]:
        assert layer == POOLED
        photos[weights] = photos.get(weights, 0) + n
    assert photos == {"none": 2 * len(dataset)}  # "imagenet" is the config's weights: random here, twice
    assert compared["messages"] == ["Reading the photos through VGG16 with ImageNet weights (1 of 2)",
                                    "Reading the photos through VGG16 with random weights (from scratch) (2 of 2)"]


def test_every_setting_is_tested_on_the_same_folds_and_photos(compared, dataset):
    folds = compared["folds"]
    assert len(folds) == 6 and all(f is folds[0] for f in folds)
    results = compared["summary"]["results"]
    assert [(r["weights"], r["fraction"]) for r in results] == [
        (kind, fraction) for kind in ("imagenet", "none") for fraction in (0.25, 0.5, 1.0)]
    assert {r["test_images"] for r in results} == {len(dataset)}
    assert compared["summary"]["method"] == folds[0].describe() == "3-fold cross-validation over 24 photos, repeated 3 times"
    assert compared["summary"]["cancelled"] is False


def test_shares_of_the_photos_and_intervals_on_every_accuracy(compared, dataset):
    results = compared["summary"]["results"]
    targets = dataset.targets()
    for r in results:
        learned = subsample(targets, np.arange(len(dataset)), r["fraction"], 0)
        assert r["train_images"] == len(learned)
        assert r["images_per_class"] == int(np.bincount(targets[learned]).min())
        right = round(r["accuracy"] * r["test_images"])
        assert r["accuracy_interval"] == pytest.approx(list(wilson_interval(right, r["test_images"])))
        low, high = r["accuracy_interval"]
        assert low <= r["accuracy"] <= high and r["train_seconds"] > 0
    per_class = [r["images_per_class"] for r in results[:3]]
    assert per_class == sorted(per_class) and per_class[0] < per_class[-1]
    # The same random base for both kinds: the same answers, so the conclusion finds no difference.
    assert [r["accuracy"] for r in results[:3]] == [r["accuracy"] for r in results[3:]]
    assert "training from scratch did as well" in compared["summary"]["conclusion"]


def test_a_stopped_comparison_returns_what_finished(dataset, tiny_config, base_loader):
    cancel = threading.Event()
    cancel.set()
    summary = compare_transfer(dataset, tiny_config, fractions=(1.0,), cancel=cancel,
                               base_loaders={"imagenet": base_loader, "none": base_loader})
    assert summary == {"results": [], "conclusion": conclusion([]), "cancelled": True, "method": ""}


def test_above_the_cross_validation_limit_it_measures_on_a_hold_out_as_the_training_does(dataset, tiny_config,
                                                                                           base_loader):
    """12,000 photos: 5-fold cross-validation made Compare 3.7x a training that used one hold-out."""
    summary = compare_transfer(dataset, tiny_config.replace(max_cv_photos=len(dataset) - 1), fractions=(1.0,),
                               base_loaders={"imagenet": base_loader, "none": base_loader})
    assert summary["method"].startswith("a held-out test of ") and summary["method"].endswith(f"{len(dataset)} photos")
    assert {r["test_images"] for r in summary["results"]} == {int(summary["method"].split()[4])}


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5])
def test_fractions_must_be_shares(dataset, tiny_config, fraction):
    with pytest.raises(ValueError, match="fractions"):
        compare_transfer(dataset, tiny_config, fractions=(fraction, 1.0))


def test_int8_never_runs_the_random_weights_pass(dataset, tiny_config, base_loader, monkeypatch):
    """int8 needs a weights file to quantise; from scratch (random weights) has none, so it runs in float32."""
    from quasar_core.features import int8

    monkeypatch.setattr(int8, "runtime_available", lambda: True)
    asked = []

    def provider(**kwargs):
        asked.append((kwargs["weights"], kwargs["precision"]))
        return REAL_PROVIDER(**{**kwargs, "precision": "float32"})

    monkeypatch.setattr(compare, "network_provider", provider)
    summary = compare_transfer(dataset, tiny_config.replace(precision="int8", folds=2), fractions=(1.0,),
                               base_loaders={"imagenet": base_loader, "none": base_loader})
    assert asked == [("none", "float32"), ("none", "float32")]
    assert len(summary["results"]) == 2 and not summary["cancelled"]


def row(weights, fraction, per_class, accuracy, interval):
    return {"weights": weights, "fraction": fraction, "images_per_class": per_class, "accuracy": accuracy,
            "accuracy_interval": list(interval), "train_seconds": 3}


def test_conclusion_when_the_intervals_do_not_overlap():
    results = [row("imagenet", 0.25, 10, 0.91, (0.85, 0.95)), row("imagenet", 1.0, 40, 0.96, (0.93, 0.98)),
               row("none", 0.25, 10, 0.40, (0.33, 0.48)), row("none", 1.0, 40, 0.55, (0.48, 0.62))]
    text = conclusion(results)
    assert text.startswith("With ImageNet weights, 10 photos per class gave about 91 % (85–95 %); from scratch, "
                           "all 40 per class gave about 55 % (48–62 %).")
    assert "starting from ImageNet is 41 points better, more than the uncertainty of either number" in text
    assert "the difference is real" in text


def test_conclusion_when_the_intervals_overlap():
    results = [row("imagenet", 0.5, 3, 0.70, (0.5, 0.85)), row("imagenet", 1.0, 6, 0.80, (0.6, 0.92)),
               row("none", 1.0, 6, 0.65, (0.45, 0.81))]
    text = conclusion(results)
    assert "scored 15 points higher, but the ranges overlap" in text and "may be chance" in text
    assert "real" not in text


def test_conclusion_when_scratch_does_as_well_or_nothing_finished():
    results = [row("imagenet", 1.0, 6, 0.80, (0.6, 0.92)), row("none", 1.0, 6, 0.85, (0.65, 0.95))]
    assert "training from scratch did as well" in conclusion(results)
    assert conclusion([]) == conclusion(results[:1]) == \
        "The comparison did not finish, so there is nothing to conclude yet."
