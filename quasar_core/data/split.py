"""Which photos test which model: stratified k-fold cross-validation, or one held-out share.

Every photo gets a fold number; fold ``k``'s model learns from the photos of the other folds
and is tested on fold ``k``'s, so every photo is predicted once by a model that never saw it.
A hold-out split is the same with one fold (the test photos) and the rest marked -1 (always
learned from). Photos in one group (copies of each other) always share a fold, so a copy
never tests the model that learned from its twin. Cross-validation may be repeated: the
photos dealt into new folds (``repeats``), each photo then predicted once per dealing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("cross-validation", "holdout")


@dataclass(frozen=True, eq=False)
class Folds:
    assignment: np.ndarray  # (n,) fold number per photo; -1 = learned from by every model, never tested
    method: str
    repeats: tuple = ()  # further dealings of the same photos into folds, each an (n,) assignment

    def __post_init__(self):
        assignment = _frozen(self.assignment)
        object.__setattr__(self, "assignment", assignment)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}.")
        repeats = tuple(_frozen(r) for r in self.repeats)
        if any(r.shape != assignment.shape for r in repeats):
            raise ValueError(f"every repeat must give all {len(assignment)} photos a fold.")
        if repeats and self.method != "cross-validation":
            raise ValueError("only cross-validation can be repeated; a hold-out keeps its one test share.")
        object.__setattr__(self, "repeats", repeats)

    def __eq__(self, other):
        if not isinstance(other, Folds) or self.method != other.method or len(self.repeats) != len(other.repeats):
            return False
        return all(np.array_equal(a, b) for a, b in zip((self.assignment, *self.repeats),
                                                        (other.assignment, *other.repeats)))

    def partitions(self) -> list["Folds"]:
        """Each dealing of the photos as Folds of its own, this one first."""
        return [self] + [Folds(r, self.method) for r in self.repeats]

    @property
    def n_folds(self) -> int:
        return int(self.assignment.max()) + 1 if len(self.assignment) else 0

    @property
    def tested(self) -> np.ndarray:
        """Indices of the photos that get an out-of-fold prediction."""
        return np.flatnonzero(self.assignment >= 0)

    def split(self, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices learned from, indices tested) for one fold."""
        return np.flatnonzero(self.assignment != fold), np.flatnonzero(self.assignment == fold)

    def describe(self) -> str:
        """"10-fold cross-validation over 245 photos, repeated 3 times" / "a held-out test of 49 of 245 photos"."""
        n = len(self.assignment)
        if self.method == "cross-validation":
            again = f", repeated {len(self.repeats) + 1} times" if self.repeats else ""
            return f"{self.n_folds}-fold cross-validation over {n} photos{again}"
        return f"a held-out test of {len(self.tested)} of {n} photos"

    def to_dict(self) -> dict:
        return {"method": self.method, "assignment": self.assignment.tolist(),
                "repeats": [r.tolist() for r in self.repeats]}

    @classmethod
    def from_dict(cls, d: dict) -> "Folds":
        return cls(np.asarray(d["assignment"], dtype=np.int64), str(d["method"]),
                   tuple(np.asarray(r, dtype=np.int64) for r in d.get("repeats", ())))


def _frozen(assignment) -> np.ndarray:
    assignment = np.asarray(assignment, dtype=np.int64).reshape(-1).copy()
    assignment.setflags(write=False)
    return assignment


def _check(targets, seed) -> np.ndarray:
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a whole number of at least 0. Received: seed={seed!r}")
    return targets


def _groups(groups, n: int) -> np.ndarray:
    return np.arange(n) if groups is None else np.asarray(groups).reshape(-1)


def cross_validation_folds(targets, *, n_folds: int = 10, seed: int = 0, groups=None, repeats: int = 1) -> Folds:
    """Stratified, seeded k folds (scikit-learn's StratifiedGroupKFold); groups never straddle folds.

    `repeats` > 1 deals the photos again (seeds `seed` + 1, + 2, ...): the mean over dealings is a
    steadier estimate than one dealing's, whose luck of the draw moves it by points on 200 photos.

    Classes with fewer photos than folds are spread as far as they go (scikit-learn warns, the
    folds stay valid: such a class is simply absent from some test folds).
    """
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    targets = _check(targets, seed)
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"`n_folds` must be a whole number of at least 2. Received: n_folds={n_folds!r}")
    groups = _groups(groups, len(targets))
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"`repeats` must be a whole number of at least 1. Received: repeats={repeats!r}")
    if len(np.unique(groups)) < n_folds:
        raise ValueError(f"{n_folds} folds need at least {n_folds} distinct photos; got {len(np.unique(groups))}.")
    dealings = []
    for dealing in range(int(repeats)):
        assignment = np.full(len(targets), -1, dtype=np.int64)
        splitter = StratifiedGroupKFold(n_splits=int(n_folds), shuffle=True, random_state=int(seed) + dealing)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
            for fold, (_, test) in enumerate(splitter.split(np.zeros(len(targets)), targets, groups)):
                assignment[test] = fold
        dealings.append(assignment)
    return Folds(dealings[0], "cross-validation", tuple(dealings[1:]))


def holdout_folds(targets, *, fraction: float = 0.2, seed: int = 0, groups=None) -> Folds:
    """One stratified test share (at least one photo of each class with 2 or more), groups kept whole."""
    targets = _check(targets, seed)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be above 0 and below 1. Received: fraction={fraction!r}")
    groups = _groups(groups, len(targets))
    rng = np.random.default_rng(int(seed))
    assignment = np.full(len(targets), -1, dtype=np.int64)
    labels, class_of = np.unique(targets, return_inverse=True)
    _, group_of = np.unique(groups, return_inverse=True)
    # A group may hold photos of several classes (near-copies labelled differently): it is tested whole.
    photos_of_group = np.split(np.argsort(group_of, kind="stable"), np.cumsum(np.bincount(group_of))[:-1])
    learned = np.bincount(class_of, minlength=len(labels))  # photos of each class still learned from
    for label in range(len(labels)):
        members = np.flatnonzero(class_of == label)
        member_groups = rng.permutation(np.unique(group_of[members]))
        if len(member_groups) < 2:
            continue  # a single photo (or group) must be learned from
        wanted = min(len(member_groups) - 1, max(1, int(round(len(members) * fraction))))
        taken = len(members) - learned[label]  # already tested with a group of another class
        for group in member_groups:
            if taken >= wanted:
                break
            chosen = photos_of_group[group]
            removed = np.bincount(class_of[chosen], minlength=len(labels))
            if assignment[chosen[0]] == 0 or np.any((removed > 0) & (learned - removed < 1)):
                continue  # already tested, or a class would be left with nothing to learn from
            assignment[chosen] = 0
            learned -= removed
            taken += removed[label]
    return Folds(assignment, "holdout")


def subsample(targets, indices, fraction: float, seed: int) -> np.ndarray:
    """A stratified `fraction` of `indices` (at least one photo per class), seeded: for learning curves."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be above 0 and at most 1, got {fraction!r}.")
    indices = np.asarray(indices, dtype=np.int64)
    targets = np.asarray(targets)[indices]
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(targets):
        members = indices[targets == label]
        keep = max(1, int(round(len(members) * fraction)))
        chosen.append(rng.permutation(members)[:keep])
    return np.sort(np.concatenate(chosen)) if chosen else indices[:0]
