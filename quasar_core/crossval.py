"""Honest numbers from cached features: every photo predicted by a head that never learned from it.

For each fold and each candidate regularisation, a head learns from the other folds' photos
(and their augmented views) and predicts the fold's photos as they are. The candidate with
the least out-of-fold log loss is chosen; its out-of-fold predictions are what accuracy,
the per-class table, the confusion matrix, the mistakes, the calibration and the doctor are
made from. VGG16 is not run here at all: a fold costs tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quasar_core.data.split import Folds, cross_validation_folds, holdout_folds
from quasar_core.head import STRENGTHS, fit_head, softmax
from quasar_core.progress import Progress, TrainingHooks, is_cancelled


@dataclass
class CrossValidation:
    folds: Folds
    strength: float  # the chosen candidate
    candidates: list[dict]  # per strength: {"strength", "accuracy", "log_loss", "train_accuracy"}
    logits: np.ndarray  # (n, classes) out-of-fold logits of the chosen candidate; NaN rows: never tested

    @property
    def tested(self) -> np.ndarray:
        return self.folds.tested

    def to_dict(self) -> dict:
        return {"strength": self.strength, "candidates": self.candidates, "folds": self.folds.to_dict()}


def _log_loss(logits, targets) -> float:
    p = softmax(logits).astype(np.float64)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(targets)), targets], 1e-12, None))))


def cross_validate(views: np.ndarray, targets, folds: Folds, *, n_classes: int, class_weights: bool = True,
                   strengths=STRENGTHS, hooks: TrainingHooks | None = None, cancel=None,
                   learn_subset=None) -> CrossValidation | None:
    """Out-of-fold logits for each strength; `views` is (v, n, d) with view 0 the photos themselves.

    `learn_subset(indices)` may narrow each fold's learning photos (Compare's 25 % and 50 %).
    Returns None when cancelled.
    """
    hooks = hooks or TrainingHooks()
    targets = np.asarray(targets, dtype=np.int64)
    views = np.asarray(views, dtype=np.float32)
    n = len(targets)
    if views.ndim != 3 or views.shape[1] != n:
        raise ValueError(f"views must have shape (views, {n}, features), got {views.shape!r}.")
    logits = {s: np.full((n, n_classes), np.nan, dtype=np.float32) for s in strengths}
    train_right = {s: [] for s in strengths}
    steps = folds.n_folds * len(strengths)
    for fold in range(folds.n_folds):
        train, test = folds.split(fold)
        if learn_subset is not None:
            train = learn_subset(train)
        x = views[:, train].reshape(-1, views.shape[-1])
        y = np.tile(targets[train], views.shape[0])
        for number, strength in enumerate(strengths):
            if is_cancelled(cancel):
                return None
            head = fit_head(x, y, n_classes=n_classes, strength=strength, class_weights=class_weights)
            logits[strength][test] = head.logits(views[0, test])
            train_right[strength].append(float((head.logits(views[0, train]).argmax(1) == targets[train]).mean()))
            hooks.progress(Progress("head", fold * len(strengths) + number + 1, steps))
    tested = folds.tested
    candidates = []
    for strength in strengths:
        chosen = logits[strength][tested]
        candidates.append({"strength": float(strength),
                           "accuracy": float((chosen.argmax(1) == targets[tested]).mean()),
                           "log_loss": _log_loss(chosen, targets[tested]),
                           "train_accuracy": float(np.mean(train_right[strength]))})
    best = min(candidates, key=lambda c: (c["log_loss"], -c["accuracy"]))
    for candidate in candidates:
        hooks.epoch_end({"phase": "head", **candidate, "chosen": candidate is best})
    return CrossValidation(folds, best["strength"], candidates, logits[best["strength"]])


# Cosine similarity of power-normalised pooled features above which two photos are copies of each
# other (re-encoded, resized, slightly cropped): planted copies of flowers at 224 px scored 0.94 and
# above, distinct photos 0.89 at the 99.99th percentile (see doctor.py). Features of tiny images or
# of random weights are alike for every photo; where a threshold would join a large share of the
# photos into one group, a stricter one is used, so the folds never degenerate.
COPY_SIMILARITIES = (0.95, 0.97, 0.99, 0.999)
LARGEST_GROUP_SHARE = 0.02
MAX_COPIES = 50  # more near-copies of one photo than this: the features cannot tell photos apart


def power_normalise(features) -> np.ndarray:
    """Signed square root, then unit length: cosine similarity on these tells copies apart best."""
    x = np.asarray(features, dtype=np.float32)
    z = np.sign(x) * np.sqrt(np.abs(x))
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def copy_groups(features) -> np.ndarray:
    """A group number per photo: near-copies share one (see COPY_SIMILARITIES)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn import config_context
    from sklearn.neighbors import NearestNeighbors

    n = len(features)
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    z = power_normalise(features)
    largest = max(2, int(LARGEST_GROUP_SHARE * n))
    # Each photo's k most similar others hold every copy at any threshold that passes: memory n x k.
    # (A radius graph of photos that all look alike, tiny or synthetic ones, held n x n: 1.8 GB at 12,000.)
    k = min(n - 1, largest, MAX_COPIES)
    with config_context(working_memory=64):  # MB per chunk of the distance matrix
        distances, neighbours = NearestNeighbors(n_neighbors=k, metric="cosine").fit(z).kneighbors()
    similar = 1.0 - distances
    rows = np.repeat(np.arange(n), k)
    for similarity in COPY_SIMILARITIES:
        close = similar >= similarity
        if close[:, -1].any():  # some photo has k "copies" or more: look-alikes, try a stricter threshold
            continue
        edges = close.ravel()
        graph = csr_matrix((np.ones(int(edges.sum()), np.int8), (rows[edges], neighbours.ravel()[edges])),
                           shape=(n, n))
        groups = connected_components(graph, directed=False)[1].astype(np.int64)
        if np.bincount(groups).max() <= largest:
            return groups
    return np.arange(n, dtype=np.int64)  # no threshold separates copies from look-alikes here


def folds_for(features, targets, config) -> Folds:
    """The folds a training (and Compare, on the same photos) is measured on: stratified k-fold cross-
    validation, or one held-out share above `config.max_cv_photos` photos or when fine-tuning; near-
    copies stay on one side."""
    targets = np.asarray(targets, dtype=np.int64)
    groups = copy_groups(features)  # a near-copy never tests the model that learned from its twin
    if len(targets) > config.max_cv_photos or config.fine_tunes:
        return holdout_folds(targets, fraction=config.holdout_fraction, seed=config.seed, groups=groups)
    return cross_validation_folds(targets, n_folds=min(config.folds, int(np.bincount(targets).min())),
                                  seed=config.seed, groups=groups)
