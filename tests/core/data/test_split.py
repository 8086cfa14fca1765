"""Tests for quasar_core.data.split: which photos test which model.

Stratified k-fold cross-validation (StratifiedGroupKFold) or one held-out share; photos in
one group (near-copies) always share a fold; ``subsample`` for learning curves.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quasar_core.data import Folds, cross_validation_folds, holdout_folds
from quasar_core.data.split import subsample


def targets_of(class_sizes: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(class_sizes)), class_sizes).astype(np.int64)


def check_disjoint_and_complete(folds: Folds, n: int) -> None:
    assert folds.assignment.dtype == np.int64 and folds.assignment.shape == (n,)
    for fold in range(folds.n_folds):
        train, test = folds.split(fold)
        for part in (train, test):
            assert np.all(np.diff(part) > 0)  # sorted, no repeats
        assert test.size > 0
        assert sorted(np.concatenate([train, test]).tolist()) == list(range(n))  # complete and disjoint


# --------------------------------------------------------------------------- cross-validation


@settings(max_examples=60, deadline=None)
@given(
    class_sizes=st.lists(st.integers(5, 60), min_size=2, max_size=6),
    n_folds=st.integers(2, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_cross_validation_folds_are_stratified_seeded_disjoint_and_complete(class_sizes, n_folds, seed):
    assume(n_folds <= min(class_sizes))
    targets = targets_of(class_sizes)
    folds = cross_validation_folds(targets, n_folds=n_folds, seed=seed)
    assert folds.method == "cross-validation" and folds.n_folds == n_folds
    assert np.all(folds.assignment >= 0)  # every photo is tested once
    assert np.array_equal(folds.tested, np.arange(len(targets)))
    check_disjoint_and_complete(folds, len(targets))
    # Stratified: each fold holds each class's share, within one photo.
    for fold in range(n_folds):
        in_fold = targets[folds.assignment == fold]
        for label, n in enumerate(class_sizes):
            assert abs(int(np.sum(in_fold == label)) - n / n_folds) <= 1, (fold, label)
    assert cross_validation_folds(targets, n_folds=n_folds, seed=seed) == folds


@settings(max_examples=40, deadline=None)
@given(class_sizes=st.lists(st.integers(1, 6), min_size=1, max_size=5), seed=st.integers(0, 1000))
def test_folds_with_tiny_classes_still_learn_from_every_class(class_sizes, seed):
    targets = targets_of(class_sizes)
    holdout = holdout_folds(targets, fraction=0.3, seed=seed)
    assert set(holdout.assignment.tolist()) <= {-1, 0}
    learned, tested = holdout.split(0)
    assert sorted(np.concatenate([learned, tested]).tolist()) == list(range(len(targets)))
    assert set(targets[learned].tolist()) == set(range(len(class_sizes)))
    for label, n in enumerate(class_sizes):
        if n >= 2:
            assert np.sum(targets[tested] == label) >= 1
    # Cross-validation with as many folds as the smallest class allows (as training asks for).
    n_folds = min(5, min(class_sizes))
    if n_folds >= 2:
        folds = cross_validation_folds(targets, n_folds=n_folds, seed=seed)
        check_disjoint_and_complete(folds, len(targets))
        for fold in range(n_folds):
            learned, _ = folds.split(fold)
            assert set(targets[learned].tolist()) == set(range(len(class_sizes)))


@settings(max_examples=40, deadline=None)
@given(
    class_sizes=st.lists(st.integers(3, 30), min_size=2, max_size=4),
    group_count=st.integers(5, 40),
    seed=st.integers(0, 10_000),
)
def test_groups_never_straddle_folds(class_sizes, group_count, seed):
    targets = targets_of(class_sizes)
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, group_count, len(targets))
    assume(len(np.unique(groups)) >= 3)
    for folds in (cross_validation_folds(targets, n_folds=3, seed=seed, groups=groups),
                  holdout_folds(targets, fraction=0.25, seed=seed, groups=groups)):
        for group in np.unique(groups):
            assert len(set(folds.assignment[groups == group].tolist())) == 1, (folds.method, group)
        assert sorted(np.concatenate(folds.split(0)).tolist()) == list(range(len(targets)))


def test_near_copies_share_a_fold_in_a_small_dataset():
    targets = targets_of([6, 6])
    groups = np.array([0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8])  # three copies of one cat, two of one dog
    for seed in range(10):
        folds = cross_validation_folds(targets, n_folds=3, seed=seed, groups=groups)
        assert len(set(folds.assignment[:3].tolist())) == 1
        assert folds.assignment[10] == folds.assignment[11]


# --------------------------------------------------------------------------- hold-out


@settings(max_examples=60, deadline=None)
@given(
    class_sizes=st.lists(st.integers(2, 60), min_size=2, max_size=6),
    fraction=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_holdout_tests_every_class_and_keeps_one_to_learn_from(class_sizes, fraction, seed):
    targets = targets_of(class_sizes)
    folds = holdout_folds(targets, fraction=fraction, seed=seed)
    assert folds.method == "holdout" and folds.n_folds == 1
    check_disjoint_and_complete(folds, len(targets))
    learned, tested = folds.split(0)
    assert np.array_equal(tested, folds.tested)
    for label, n in enumerate(class_sizes):
        n_tested = int(np.sum(targets[tested] == label))
        assert 1 <= n_tested <= n - 1  # at least one test photo, at least one to learn from
        assert abs(n_tested - n * fraction) <= 1  # stratified: the class's share, moved by at most the minimums
    assert holdout_folds(targets, fraction=fraction, seed=seed) == folds


def test_holdout_of_a_class_with_one_photo_learns_from_it():
    folds = holdout_folds(targets_of([1, 10]), fraction=0.5, seed=0)
    assert folds.assignment[0] == -1
    assert np.sum(folds.assignment[1:] == 0) == 5


# --------------------------------------------------------------------------- defaults, seeds, round trip


def test_folds_defaults_seeds_and_round_trip():
    targets = targets_of([40, 40, 40])
    folds = cross_validation_folds(targets)
    assert folds.n_folds == 10 and folds.repeats == ()
    for fold in range(10):
        assert np.bincount(targets[folds.assignment == fold]).tolist() == [4, 4, 4]
    assert folds.describe() == "10-fold cross-validation over 120 photos"
    assert cross_validation_folds(targets, n_folds=5).describe() == "5-fold cross-validation over 120 photos"
    assert cross_validation_folds(targets, seed=1) != folds
    holdout = holdout_folds(targets)
    assert np.bincount(targets[holdout.tested]).tolist() == [8, 8, 8]
    assert holdout.describe() == "a held-out test of 24 of 120 photos"
    assert holdout_folds(targets, seed=1) != holdout
    assert holdout != folds
    repeated = cross_validation_folds(targets, repeats=3)
    for original in (folds, holdout, repeated):
        restored = Folds.from_dict(json.loads(json.dumps(original.to_dict())))
        assert restored == original
        with pytest.raises(ValueError):
            original.assignment[0] = 5  # read-only, like the frozen dataclass around it
    with pytest.raises(ValueError, match="'bootstrap'"):
        Folds(np.zeros(3), "bootstrap")
    assert Folds.from_dict({"method": "holdout", "assignment": [0, -1, -1]}).repeats == ()  # runs saved before repeats


def test_repeated_folds_deal_the_photos_again_each_time_stratified_with_copies_together():
    targets = targets_of([30, 20, 25])
    groups = np.arange(len(targets))
    groups[[0, 1, 2]] = 0  # three near-copies of one photo
    groups[[30, 31]] = 30
    folds = cross_validation_folds(targets, n_folds=5, seed=3, groups=groups, repeats=3)
    assert len(folds.repeats) == 2 and folds.describe() == "5-fold cross-validation over 75 photos, repeated 3 times"
    partitions = folds.partitions()
    assert [p.repeats for p in partitions] == [folds.repeats, (), ()]
    assert partitions[1] == cross_validation_folds(targets, n_folds=5, seed=4, groups=groups)  # seed + 1
    for partition in partitions:
        check_disjoint_and_complete(partition, len(targets))
        assert len(set(partition.assignment[[0, 1, 2]])) == 1 and len(set(partition.assignment[[30, 31]])) == 1
        for fold in range(5):
            counts = np.bincount(targets[partition.assignment == fold], minlength=3)
            assert np.all(np.abs(counts - np.array([6, 4, 5])) <= 1)
    assert not np.array_equal(partitions[0].assignment, partitions[1].assignment)
    assert not np.array_equal(partitions[1].assignment, partitions[2].assignment)
    assert folds != cross_validation_folds(targets, n_folds=5, seed=3, groups=groups, repeats=2)
    assert folds == cross_validation_folds(targets, n_folds=5, seed=3, groups=groups, repeats=3)
    with pytest.raises(ValueError, match="repeats=0"):
        cross_validation_folds(targets, repeats=0)
    with pytest.raises(ValueError, match="hold-out"):
        Folds(np.array([0, -1]), "holdout", (np.array([0, -1]),))
    with pytest.raises(ValueError, match="all 2 photos"):
        Folds(np.array([0, 1]), "cross-validation", (np.array([0, 1, 1]),))


@pytest.mark.parametrize("make, kwargs, quoted", [
    (cross_validation_folds, {"n_folds": 1}, "n_folds=1"),
    (cross_validation_folds, {"n_folds": "5"}, "n_folds='5'"),
    (cross_validation_folds, {"n_folds": True}, "n_folds=True"),
    (cross_validation_folds, {"n_folds": 2.5}, "n_folds=2.5"),
    (cross_validation_folds, {"seed": "zero"}, "seed='zero'"),
    (cross_validation_folds, {"seed": -1}, "seed=-1"),
    (holdout_folds, {"fraction": -0.1}, "fraction=-0.1"),
    (holdout_folds, {"fraction": 0}, "fraction=0"),
    (holdout_folds, {"fraction": 1.0}, "fraction=1.0"),
    (holdout_folds, {"fraction": "0.2"}, "fraction='0.2'"),
    (holdout_folds, {"fraction": math.nan}, "fraction=nan"),
    (holdout_folds, {"seed": "zero"}, "seed='zero'"),
    (holdout_folds, {"seed": -1}, "seed=-1"),
])
def test_fold_functions_reject_bad_arguments_quoting_them(make, kwargs, quoted):
    with pytest.raises(ValueError) as info:
        make(targets_of([10, 10]), **kwargs)
    assert quoted in str(info.value)


def test_more_folds_than_distinct_photos_is_refused_saying_so():
    with pytest.raises(ValueError, match="5 folds need at least 5 distinct photos; got 3"):
        cross_validation_folds(targets_of([4, 4]), n_folds=5, groups=[0, 0, 0, 1, 1, 2, 2, 2])


# --------------------------------------------------------------------------- subsample


def test_subsample_is_stratified_seeded_and_keeps_every_class():
    targets = targets_of([40, 20, 2])
    pool = np.arange(0, len(targets), dtype=np.int64)
    chosen = subsample(targets, pool, 0.25, seed=3)
    assert np.all(np.diff(chosen) > 0) and set(chosen.tolist()) <= set(pool.tolist())
    assert np.bincount(targets[chosen], minlength=3).tolist() == [10, 5, 1]  # at least one of the smallest
    assert np.array_equal(subsample(targets, pool, 0.25, seed=3), chosen)
    assert not np.array_equal(subsample(targets, pool, 0.25, seed=4), chosen)
    assert np.array_equal(subsample(targets, pool, 1.0, seed=0), pool)
    # Only from the indices given (one fold's learning photos).
    learned = np.flatnonzero(cross_validation_folds(targets_of([40, 20, 2]), n_folds=2).assignment != 0)
    assert set(subsample(targets, learned, 0.5, seed=0).tolist()) <= set(learned.tolist())
    assert subsample(targets, pool[:0], 0.5, seed=0).size == 0
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match=f"got {bad!r}"):
            subsample(targets, pool, bad, seed=0)
