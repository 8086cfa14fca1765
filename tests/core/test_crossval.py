"""cross_validate: every tested photo is predicted by a head that never learned from it, the candidate
with the least out-of-fold log loss is chosen, and folds_for keeps near-copies (near_copies.copy_groups) together.
Synthetic features only: no VGG16 here."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from quasar_core import crossval
from quasar_core.crossval import cross_validate
from quasar_core.data.split import Folds, cross_validation_folds, holdout_folds
from quasar_core.head import fit_head, softmax
from quasar_core.near_copies import FEATURE_SIMILARITY, LARGEST_GROUP, copy_groups
from quasar_core.progress import TrainingHooks
from tests.pictures import features_with_copies

STRENGTHS = (0.01, 0.1, 1.0)


def problem(n_per_class=10, classes=3, d=12, views=1, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, d))
    y = np.repeat(np.arange(classes), n_per_class)
    photos = centres[y] + rng.normal(0, 1.2, (len(y), d))
    augmented = [photos + rng.normal(0, 0.3, photos.shape) for _ in range(views - 1)]
    return np.stack([photos, *augmented]).astype(np.float32), y


@pytest.fixture
def fitted_heads(monkeypatch):
    """Records what every head learned from (rows of features) while still fitting it."""
    seen = []

    def recording(x, y, **kwargs):
        seen.append({"rows": len(x), "x": np.asarray(x), "y": np.asarray(y), **kwargs})
        return fit_head(x, y, **kwargs)

    monkeypatch.setattr(crossval, "fit_head", recording)
    return seen


def test_every_photo_gets_an_out_of_fold_prediction_from_the_chosen_candidate():
    views, y = problem()
    folds = cross_validation_folds(y, n_folds=5, seed=0)
    result = cross_validate(views, y, folds, n_classes=3, strengths=STRENGTHS)
    assert result.logits.shape == (30, 3) and not np.isnan(result.logits).any()
    np.testing.assert_array_equal(result.tested, np.arange(30))
    assert [c["strength"] for c in result.candidates] == list(STRENGTHS)
    best = min(result.candidates, key=lambda c: c["log_loss"])
    assert result.strength == best["strength"]
    # The logits are those of heads that learned from the other folds only, with the chosen strength.
    for fold in range(folds.n_folds):
        learn, test = folds.split(fold)
        head = fit_head(views[0, learn], y[learn], n_classes=3, strength=result.strength)
        np.testing.assert_allclose(result.logits[test], head.logits(views[0, test]), rtol=1e-4, atol=1e-4)
    chosen = next(c for c in result.candidates if c["strength"] == result.strength)
    assert chosen["accuracy"] == pytest.approx((result.logits.argmax(1) == y).mean())
    p = softmax(result.logits).astype(np.float64)
    assert chosen["log_loss"] == pytest.approx(-np.mean(np.log(p[np.arange(30), y])), rel=1e-5)
    assert all(0 <= c["train_accuracy"] <= 1 for c in result.candidates)
    assert result.to_dict() == {"strength": result.strength, "candidates": result.candidates,
                                "folds": folds.to_dict()}


def test_further_dealings_train_the_chosen_strength_and_the_probabilities_are_their_mean(fitted_heads):
    views, y = problem(n_per_class=12)
    folds = cross_validation_folds(y, n_folds=4, seed=2, repeats=3)
    reports = []
    result = cross_validate(views, y, folds, n_classes=3, strengths=STRENGTHS,
                            hooks=TrainingHooks(on_progress=reports.append))
    # the first dealing tries every strength, each further one only the chosen strength
    assert [h["strength"] for h in fitted_heads] == [s for _ in range(4) for s in STRENGTHS] + [result.strength] * 8
    assert [(p.step, p.total_steps) for p in reports] == [(i, 4 * (3 + 2)) for i in range(1, 21)]
    assert len(result.repeat_logits) == 2
    for logits, dealing in zip((result.logits, *result.repeat_logits), folds.partitions()):
        for fold in range(4):
            learn, test = dealing.split(fold)
            head = fit_head(views[0, learn], y[learn], n_classes=3, strength=result.strength)
            np.testing.assert_allclose(logits[test], head.logits(views[0, test]), rtol=1e-4, atol=1e-4)
    assert not np.allclose(result.logits, result.repeat_logits[0])  # other folds, other heads
    mean = np.mean([softmax(l / 2.0) for l in (result.logits, *result.repeat_logits)], axis=0)
    np.testing.assert_allclose(result.probabilities(2.0), mean, rtol=1e-6)
    np.testing.assert_array_equal(result.predicted(), mean.argmax(1))
    rows, targets = result.stacked_logits(y)
    np.testing.assert_array_equal(rows, np.concatenate([result.logits, *result.repeat_logits]))
    np.testing.assert_array_equal(targets, np.tile(y, 3))
    # a candidate's scores are those of the first dealing
    chosen = next(c for c in result.candidates if c["strength"] == result.strength)
    assert chosen["accuracy"] == pytest.approx((result.logits.argmax(1) == y).mean())


def test_a_holdout_tests_only_its_photos():
    views, y = problem()
    folds = holdout_folds(y, fraction=0.3, seed=1)
    result = cross_validate(views, y, folds, n_classes=3, strengths=STRENGTHS)
    tested = np.zeros(30, bool)
    tested[folds.tested] = True
    assert 0 < tested.sum() < 30
    assert not np.isnan(result.logits[tested]).any()
    assert np.isnan(result.logits[~tested]).all()  # never tested: no prediction at all
    np.testing.assert_array_equal(result.tested, folds.tested)


def test_heads_learn_from_every_view_and_are_tested_on_the_photos_themselves(fitted_heads):
    views, y = problem(views=3)
    folds = cross_validation_folds(y, n_folds=3, seed=0)
    result = cross_validate(views, y, folds, n_classes=3, strengths=(0.1,))
    assert [h["rows"] for h in fitted_heads] == [3 * len(folds.split(f)[0]) for f in range(3)]
    learn, test = folds.split(0)
    np.testing.assert_array_equal(fitted_heads[0]["x"], views[:, learn].reshape(-1, 12))
    np.testing.assert_array_equal(fitted_heads[0]["y"], np.tile(y[learn], 3))
    head = fit_head(views[:, learn].reshape(-1, 12), np.tile(y[learn], 3), n_classes=3, strength=0.1)
    np.testing.assert_allclose(result.logits[test], head.logits(views[0, test]), rtol=1e-4, atol=1e-4)


def test_learn_subset_narrows_what_each_fold_learns_from(fitted_heads):
    views, y = problem()
    folds = cross_validation_folds(y, n_folds=5, seed=0)
    asked = []

    def first_half(learn):
        asked.append(learn.copy())
        return learn[: len(learn) // 2]

    result = cross_validate(views, y, folds, n_classes=3, strengths=(0.1, 1.0), learn_subset=first_half,
                            class_weights=False)
    assert [a.tolist() for a in asked] == [folds.split(f)[0].tolist() for f in range(5)]
    assert [h["rows"] for h in fitted_heads] == [len(a) // 2 for a in asked for _ in (0.1, 1.0)]
    assert all(h["class_weights"] is False for h in fitted_heads)
    assert not np.isnan(result.logits).any()  # every photo is still tested


def test_progress_and_one_chosen_row_per_run():
    views, y = problem()
    folds = cross_validation_folds(y, n_folds=3, seed=0)
    reports, rows = [], []
    cross_validate(views, y, folds, n_classes=3, strengths=STRENGTHS,
                   hooks=TrainingHooks(on_progress=reports.append, on_epoch_end=rows.append))
    assert [(p.phase, p.step, p.total_steps) for p in reports] == [("head", i, 9) for i in range(1, 10)]
    assert [row["strength"] for row in rows] == list(STRENGTHS)
    assert sum(row["chosen"] for row in rows) == 1 and all(row["phase"] == "head" for row in rows)


def test_cancel_returns_none():
    views, y = problem()
    folds = cross_validation_folds(y, n_folds=3, seed=0)
    cancel = threading.Event()
    cancel.set()
    assert cross_validate(views, y, folds, n_classes=3, cancel=cancel) is None
    later = threading.Event()
    reports = []

    def on_progress(p):
        reports.append(p)
        later.set()

    assert cross_validate(views, y, folds, n_classes=3, cancel=later,
                          hooks=TrainingHooks(on_progress=on_progress)) is None
    assert len(reports) == 1  # stopped before the next fit


def test_views_must_match_the_photos():
    views, y = problem()
    folds = cross_validation_folds(y, n_folds=3, seed=0)
    with pytest.raises(ValueError, match=r"\(views, 30, features\)"):
        cross_validate(views[0], y, folds, n_classes=3)
    with pytest.raises(ValueError, match="shape"):
        cross_validate(views[:, :20], y, folds, n_classes=3)


def test_a_folds_object_from_elsewhere_is_used_as_it_is():
    views, y = problem()
    assignment = np.arange(30) % 2
    result = cross_validate(views, y, Folds(assignment, "cross-validation"), n_classes=3, strengths=(0.1,))
    learn, test = np.flatnonzero(assignment == 1), np.flatnonzero(assignment == 0)
    head = fit_head(views[0, learn], y[learn], n_classes=3, strength=0.1)
    np.testing.assert_allclose(result.logits[test], head.logits(views[0, test]), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- folds


def distinct_photos(n, d=64, seed=0):
    return np.abs(np.random.default_rng(seed).normal(0, 1, (n, d))).astype(np.float32)  # ReLU-like


def test_near_copies_share_a_fold_in_every_dealing():
    from quasar_core.config import TrainConfig

    features = features_with_copies(60)  # rows 60 and 61 copy row 0, row 62 copies row 3
    targets = np.concatenate([np.repeat(np.arange(3), 20), [1, 2, 0]])
    folds = crossval.folds_for(features, targets, TrainConfig())
    for dealing in folds.partitions():
        assert len({dealing.assignment[i] for i in (0, 60, 61)}) == 1 and dealing.assignment[3] == dealing.assignment[62]


def test_folds_follow_the_training_rule(monkeypatch):
    from quasar_core.config import TrainConfig

    features, targets = distinct_photos(60), np.repeat(np.arange(3), 20)
    assert crossval.folds_for(features, targets, TrainConfig()).describe() == \
        "10-fold cross-validation over 60 photos, repeated 3 times"
    assert crossval.folds_for(features, targets, TrainConfig(cv_repeats=1)).describe() == \
        "10-fold cross-validation over 60 photos"
    assert crossval.folds_for(features, targets, TrainConfig(max_cv_photos=59)).method == "holdout"
    assert crossval.folds_for(features, targets, TrainConfig(mode="fine-tune")).method == "holdout"
    assert crossval.folds_for(features, targets, TrainConfig(folds=3)).n_folds == 3
    few = np.concatenate([np.repeat([0, 1], 28), [2, 2, 2, 2]])  # a class of 4: 4 folds, said alike before training
    assert crossval.folds_for(features, few, TrainConfig()).n_folds == 4
    assert crossval.fold_plan(60, TrainConfig(), smallest_class=4) == (4, 3)
    monkeypatch.setattr(crossval, "MANY_PHOTOS", 59)  # more photos than that: at most 5 folds, dealt once
    assert crossval.folds_for(features, targets, TrainConfig()).describe() == "5-fold cross-validation over 60 photos"
    assert crossval.folds_for(features, targets, TrainConfig(folds=3)).describe() == "3-fold cross-validation over 60 photos"


def test_random_vgg16_features_of_the_shapes_can_still_be_folded(dataset, base):
    """From random weights every pair of photos is above 0.96 cosine: the folds must not collapse."""
    from quasar_core.features.networks import keras_network

    features = keras_network(base)(dataset.images(size=32))
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    assert (unit @ unit.T).min() > FEATURE_SIMILARITY - 0.05  # the look-alike case, for real
    groups = copy_groups(features)
    assert np.bincount(groups).max() <= LARGEST_GROUP  # alike to one another, not copies of one another
    folds = cross_validation_folds(dataset.targets(), n_folds=5, seed=0, groups=groups)
    assert folds.n_folds == 5 and len(folds.tested) == len(dataset)


def test_the_calibration_is_judged_on_photos_whose_answers_did_not_fit_it():
    """Each fold's photos are calibrated by a temperature fitted on the other folds' answers only."""
    from quasar_core.crossval import CrossValidation
    from quasar_core.data.split import cross_validation_folds, holdout_folds
    from quasar_core.head import fit_temperature, softmax

    rng = np.random.default_rng(0)
    targets = np.repeat([0, 1, 2], 20)
    logits = (np.eye(3)[targets] * 2 + rng.normal(0, 1.5, (60, 3))).astype(np.float32)
    folds = cross_validation_folds(targets, n_folds=5, seed=0)
    validation = CrossValidation(folds, 0.1, [], logits)
    calibrated = validation.cross_fitted_probabilities(targets)
    for fold in range(5):
        inside, outside = folds.assignment == fold, folds.assignment != fold
        temperature = fit_temperature(logits[outside], targets[outside])
        np.testing.assert_allclose(calibrated[inside], softmax(logits[inside] / temperature), rtol=1e-5)
    overconfident = logits.copy()
    overconfident[folds.assignment == 0] *= 5  # fold 0's own answers cannot fit the temperature that judges them
    changed = CrossValidation(folds, 0.1, [], overconfident).cross_fitted_probabilities(targets)
    assert changed[folds.assignment == 0].max(axis=1).mean() > calibrated[folds.assignment == 0].max(axis=1).mean()
    held = holdout_folds(targets, fraction=0.3, seed=0)  # one held-out share: each half judged by the other
    halves = CrossValidation(held, 0.1, [], logits).cross_fitted_probabilities(targets)
    assert np.isfinite(halves[held.tested]).all() and np.isnan(halves[held.assignment < 0]).all()
