"""Transfer vs from scratch: one pass through VGG16, the same folds for every transfer setting, intervals on
every accuracy, a small CNN trained from random weights (every layer) and tested on the first folds' photos beside
the transfer model's answers on exactly those photos, and a conclusion that says whether a difference is larger
than the uncertainty. The transfer side uses the shared random base here (the maths, not ImageNet, is tested); the
CNN trains for 2 epochs at 32 px."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from quasar_core import compare
from quasar_core.compare import ScratchBudget, compare_transfer, conclusion, scratch_network, scratch_split
from quasar_core.data.split import cross_validation_folds
from quasar_core.features.extract import POOLED
from quasar_core.data.split import subsample
from quasar_core.evaluation import wilson_interval

REAL_PROVIDER = compare.network_provider
REAL_CROSS_VALIDATE = compare.cross_validate
TINY = ScratchBudget(epochs=2)


@pytest.fixture(scope="module")
def compared(dataset, tiny_config, base_loader):
    calls, folds, messages, trained = [], [], [], []

    def provider(**kwargs):
        network_for = REAL_PROVIDER(**kwargs)

        def counted(layer):
            network = network_for(layer)
            return lambda images: calls.append((kwargs["weights"], layer, len(images))) or network(images)

        return counted

    def recording(views, targets, given_folds, **kwargs):
        folds.append(given_folds)
        return REAL_CROSS_VALIDATE(views, targets, given_folds, **kwargs)

    real_train = compare.train_from_scratch

    def training(dataset, learn, test, *args, **kwargs):
        trained.append((learn, test))
        return real_train(dataset, learn, test, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compare, "network_provider", provider)
        patch.setattr(compare, "cross_validate", recording)
        patch.setattr(compare, "train_from_scratch", training)
        summary = compare_transfer(dataset, tiny_config.replace(folds=3), base_loaders={"imagenet": base_loader},
                                   hooks=compare.TrainingHooks(on_message=messages.append), scratch=TINY)
    return {"summary": summary, "calls": calls, "folds": folds, "messages": messages, "trained": trained}


def test_one_feature_pass_then_a_network_from_scratch(compared, dataset):
    photos = {}
    for weights, layer, n in compared["calls"]:
        assert layer == POOLED
        photos[weights] = photos.get(weights, 0) + n
    assert photos == {"none": len(dataset)}  # "imagenet" is the config's weights: random here, once
    assert compared["messages"] == ["Reading the photos through VGG16 with ImageNet weights (1 of 2)",
                                    "Training a small network from scratch on your photos (2 of 2)"]


def test_every_transfer_setting_is_tested_on_the_same_folds_and_photos(compared, dataset):
    folds = compared["folds"]
    assert len(folds) == 3 and all(f is folds[0] for f in folds)
    results = compared["summary"]["results"]
    assert [(r["weights"], r["fraction"]) for r in results] == [
        ("imagenet", 0.25), ("imagenet", 0.5), ("imagenet", 1.0), ("scratch", 1.0)]
    assert {r["test_images"] for r in results[:3]} == {len(dataset)}
    assert compared["summary"]["method"] == (
        f"{folds[0].describe()}; the small CNN trained from scratch once, on the other {results[3]['train_images']} "
        f"photos, and tested on {results[3]['test_images']} photos of the first folds")
    assert folds[0].describe() == "3-fold cross-validation over 24 photos, repeated 3 times"
    assert compared["summary"]["cancelled"] is False


def test_shares_of_the_photos_and_intervals_on_every_accuracy(compared, dataset):
    results = compared["summary"]["results"][:3]
    targets = dataset.targets()
    for r in results:
        learned = subsample(targets, np.arange(len(dataset)), r["fraction"], 0)
        assert r["train_images"] == len(learned)
        assert r["images_per_class"] == int(np.bincount(targets[learned]).min())
        right = round(r["accuracy"] * r["test_images"])
        assert r["accuracy_interval"] == pytest.approx(list(wilson_interval(right, r["test_images"])))
        low, high = r["accuracy_interval"]
        assert low <= r["accuracy"] <= high and r["train_seconds"] > 0
    per_class = [r["images_per_class"] for r in results]
    assert per_class == sorted(per_class) and per_class[0] < per_class[-1]


def test_the_network_from_scratch_is_tested_on_the_first_folds_beside_transfer(compared, dataset):
    """It learns from the photos outside the first fold group and is scored on that group's photos, where the
    transfer model (every photo) is scored too: the two are compared on the same photos."""
    [(learn, test)] = compared["trained"]
    folds = compared["folds"][0]
    np.testing.assert_array_equal(test, np.flatnonzero(folds.assignment == 0))  # 3 folds: round(3 x 0.2) = 1 fold
    np.testing.assert_array_equal(np.sort(np.concatenate([learn, test])), np.arange(len(dataset)))
    row = compared["summary"]["results"][3]
    targets = dataset.targets()
    assert row["test_images"] == len(test) and row["train_images"] == len(learn)
    assert row["images_per_class"] == int(np.bincount(targets[learn]).min())
    assert row["image_size"] == 32 and row["epochs"] == 2
    right = round(row["accuracy"] * len(test))
    assert row["accuracy_interval"] == pytest.approx(list(wilson_interval(right, len(test))))
    against = round(row["against"] * len(test))
    assert row["against_interval"] == pytest.approx(list(wilson_interval(against, len(test))))
    assert row["transfer_only"] - row["scratch_only"] == against - right  # photo by photo, the same photos
    assert row["train_seconds"] > 0
    assert "small CNN trained from scratch" in compared["summary"]["conclusion"]


def test_the_first_fold_group_is_a_fifth_of_ten_folds_and_keeps_copies_together():
    targets = np.repeat([0, 1], 50)
    groups = np.arange(100)
    groups[[1, 2, 3]] = 1  # three copies of one photo
    folds = cross_validation_folds(targets, n_folds=10, seed=0, groups=groups, repeats=3)
    from quasar_core.config import TrainConfig

    learn, test = scratch_split(folds, TrainConfig())
    assert set(folds.assignment[test]) == {0, 1} and 15 <= len(test) <= 25
    assert len(set(np.isin([1, 2, 3], test))) == 1  # the copies are all tested or all learned from
    assert len(learn) + len(test) == 100


def test_the_network_from_scratch_trains_every_layer(dataset, tiny_config):
    """Not a frozen network under a trained head: every layer starts random and every weight moves."""
    start = {w.path: w.numpy() for w in scratch_network(len(dataset.labels), 32, seed=0).weights}
    again = {w.path: w.numpy() for w in scratch_network(len(dataset.labels), 32, seed=0).weights}
    assert all(np.array_equal(start[path], again[path]) for path in start)  # a seeded start: the one compared with
    learn, test = np.arange(0, len(dataset), 2), np.arange(1, len(dataset), 2)
    found = compare.train_from_scratch(dataset, learn, test, tiny_config, TINY, keep_model=True)
    model = found["model"]
    assert all(layer.trainable for layer in model.layers)
    convolutions = [layer for layer in model.layers if layer.name.startswith("conv")]
    assert len(convolutions) == 4 and [layer.filters for layer in convolutions] == [32, 64, 128, 256]
    # only batch normalisation's running statistics are not trained by the gradient; every other weight is
    assert {w.path.split("/")[-1] for w in model.non_trainable_weights} == {"moving_mean", "moving_variance"}
    assert len(model.trainable_weights) == 4 + 2 * 4 + 2  # convolutions, BN scales and offsets, the dense layer
    first = model.get_layer("conv1").kernel
    assert not np.allclose(first.numpy(), start[first.path])  # the first convolution learned
    for weight in model.trainable_weights:
        assert not np.allclose(weight.numpy(), start[weight.path]), weight.path
    assert found["right"].shape == (len(test),) and found["side"] == 32 and found["epochs"] == 2


def test_a_stopped_comparison_returns_what_finished(dataset, tiny_config, base_loader):
    cancel = threading.Event()
    cancel.set()
    summary = compare_transfer(dataset, tiny_config, fractions=(1.0,), cancel=cancel,
                               base_loaders={"imagenet": base_loader}, scratch=TINY)
    assert summary == {"results": [], "conclusion": conclusion([]), "cancelled": True, "method": ""}


def test_above_the_cross_validation_limit_it_measures_on_a_hold_out_as_the_training_does(dataset, tiny_config,
                                                                                           base_loader):
    """12,000 photos: 5-fold cross-validation made Compare 3.7x a training that used one hold-out."""
    summary = compare_transfer(dataset, tiny_config.replace(max_cv_photos=len(dataset) - 1), fractions=(1.0,),
                               base_loaders={"imagenet": base_loader}, scratch=ScratchBudget(epochs=1))
    assert summary["method"].startswith("a held-out test of ")
    held_out = int(summary["method"].split()[4])
    transfer, scratch = summary["results"]
    assert transfer["test_images"] == scratch["test_images"] == held_out  # the hold-out's photos, for both


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5])
def test_fractions_must_be_shares(dataset, tiny_config, fraction):
    with pytest.raises(ValueError, match="fractions"):
        compare_transfer(dataset, tiny_config, fractions=(fraction, 1.0))


def test_int8_never_runs_random_weights(dataset, tiny_config, base_loader, monkeypatch):
    """int8 needs a weights file to quantise; random weights (a model that itself started from them) have none,
    so their pass runs in float32."""
    from quasar_core.features import int8

    monkeypatch.setattr(int8, "runtime_available", lambda: True)
    asked = []

    def provider(**kwargs):
        asked.append((kwargs["weights"], kwargs["precision"]))
        return REAL_PROVIDER(**{**kwargs, "precision": "float32"})

    monkeypatch.setattr(compare, "network_provider", provider)
    summary = compare_transfer(dataset, tiny_config.replace(precision="int8", folds=2), fractions=(1.0,),
                               base_loaders={"imagenet": base_loader}, scratch=ScratchBudget(epochs=1))
    assert asked == [("none", "float32")]
    assert len(summary["results"]) == 2 and not summary["cancelled"]


def row(weights, fraction, per_class, accuracy, interval, **extra):
    return {"weights": weights, "fraction": fraction, "images_per_class": per_class, "accuracy": accuracy,
            "accuracy_interval": list(interval), "train_seconds": 3, **extra}


def scratch(accuracy, interval, against, against_interval, only, test=60):
    return row("scratch", 1.0, 48, accuracy, interval, test_images=test, train_images=240, image_size=96, epochs=30,
               against=against, against_interval=list(against_interval), transfer_only=only[0], scratch_only=only[1])


def test_conclusion_when_the_difference_is_more_than_chance():
    results = [row("imagenet", 0.25, 10, 0.91, (0.85, 0.95)), row("imagenet", 1.0, 60, 0.96, (0.93, 0.98)),
               scratch(0.55, (0.42, 0.67), 0.95, (0.86, 0.98), (25, 1))]
    text = conclusion(results)
    assert text.startswith("With ImageNet weights, 10 photos per class gave about 91 % (85–95 %). A small CNN "
                           "trained from scratch (4 blocks of convolution, batch normalisation, ReLU and max pooling "
                           "(32, 64, 128, 256 filters); every layer learned from your photos, 30 epochs at 96 px), "
                           "learning from 48 photos per class, got about 55 % (42–67 %) of the 60 photos it never "
                           "saw, where transfer got 95 %.")
    assert text.endswith("On the same photos, starting from ImageNet is 40 points better (25 photos right only "
                         "with ImageNet, 1 only from scratch), more than chance on this many photos: the difference "
                         "is real.")


def test_a_paired_difference_can_be_real_where_the_intervals_overlap():
    """40 flowers: 55 % (40-69 %) from scratch, 82 % (68-91 %) with transfer on the same photos. The intervals
    overlap, but 11 photos right only with ImageNet against none the other way is no chance."""
    results = [row("imagenet", 1.0, 40, 0.81, (0.75, 0.86)), scratch(0.55, (0.40, 0.69), 0.825, (0.68, 0.91), (11, 0),
                                                                    test=40)]
    assert "the difference is real" in conclusion(results)


def test_conclusion_when_the_difference_may_be_chance():
    results = [row("imagenet", 0.5, 3, 0.70, (0.5, 0.85)), row("imagenet", 1.0, 6, 0.80, (0.6, 0.92)),
               scratch(0.65, (0.45, 0.81), 0.8, (0.6, 0.92), (3, 1), test=12)]
    text = conclusion(results)
    assert ("scored 15 points higher (3 photos right only with ImageNet, 1 only from scratch), but on this many "
            "photos the difference may be chance") in text
    assert "real" not in text


def test_conclusion_when_scratch_does_as_well_or_nothing_finished():
    results = [row("imagenet", 1.0, 6, 0.80, (0.6, 0.92)), scratch(0.85, (0.65, 0.95), 0.8, (0.6, 0.92), (1, 4))]
    assert "training from scratch did as well" in conclusion(results)
    assert conclusion([]) == conclusion(results[:1]) == \
        "The comparison did not finish, so there is nothing to conclude yet."


def test_comparisons_saved_before_the_small_cnn_keep_their_own_name():
    """A saved "none" result was VGG16 frozen at random weights: never called "from scratch"."""
    results = [row("imagenet", 0.25, 10, 0.91, (0.85, 0.95)), row("imagenet", 1.0, 40, 0.96, (0.93, 0.98)),
               row("none", 1.0, 40, 0.55, (0.48, 0.62))]
    text = conclusion(results)
    assert "VGG16's architecture without its ImageNet knowledge" in text and "scratch" not in text
    assert "is 41 points better, more than the uncertainty of either number: the difference is real" in text
    assert compare.WEIGHTS_WORDS["none"] == "VGG16's architecture without its ImageNet knowledge"
