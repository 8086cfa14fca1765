"""Which unlabelled photos to ask a person about next: known active-learning strategies on cached features.

Every strategy takes the current model's probabilities for the unlabelled photos and their features'
"view" (square root, then unit length: the space where cosine distance says how alike two photos look to
VGG16) and returns the positions of the photos to label next, each with the reason it was picked:

- ``uncertain``: among the photos whose two most likely classes are closest (the smallest *margin*), the
  photos a label teaches the model most about where one class ends and the next begins;
- ``diverse``: picked to spread the batch over what the photos show, so twenty answers are not twenty
  near-copies of one confusion.

Strategies (bench/bench_label_assist.py measures them against random picks on real photos):

``margin-kmeans`` (the default; Zhdanov 2019, "diverse mini-batch active learning"): the
``pool_factor`` x count most uncertain photos are clustered by k-means (scikit-learn) into `count`
groups, weighted by how uncertain each is, and the photo nearest each group's centre is asked.
``margin``: the `count` smallest margins. ``entropy``: the `count` largest entropies.
``kcenter``: greedy k-centre (Sener & Savarese 2018, "core-set"): the photo farthest from everything
labelled or already picked, again and again. ``margin-kcenter``: k-centre among the most uncertain.
``random``: a seeded random batch (the baseline).
"""

from __future__ import annotations

import numpy as np

STRATEGIES = ("margin-kmeans", "margin", "entropy", "kcenter", "margin-kcenter", "random")
DEFAULT_STRATEGY = "margin-kmeans"
DEFAULT_POOL_FACTOR = 5
_CHUNK = 2048


def feature_view(features) -> np.ndarray:
    """(n, d) float32: square-rooted, unit-length features (cosine distance = 1 - dot product)."""
    x = np.sqrt(np.maximum(np.asarray(features, dtype=np.float32), 0))
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))


class LazyView:
    """feature_view of (n, d) features, worked out for the rows asked (view[rows]) instead of held whole: the
    strategies and the look-alike search need a block at a time, so memory does not grow with a second copy
    of thousands of photos' features."""

    def __init__(self, features):
        self.features = np.asarray(features, dtype=np.float32)
        self.shape, self.ndim = self.features.shape, 2

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, rows) -> np.ndarray:
        return feature_view(self.features[rows])


def margins(probabilities) -> np.ndarray:
    """(n,) the most likely class's probability minus the second's: small = the model hesitates."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape[1] < 2:
        return np.ones(len(p))
    top = np.partition(p, -2, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]


def entropies(probabilities) -> np.ndarray:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def _nearest_distance(view: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """(n,) cosine distance from each row of `view` to its nearest row of `reference` (inf without one)."""
    if reference is None or not len(reference):
        return np.full(len(view), np.inf, dtype=np.float32)
    out = np.empty(len(view), dtype=np.float32)
    for start in range(0, len(view), _CHUNK):
        out[start:start + _CHUNK] = 1 - (np.asarray(view[start:start + _CHUNK], np.float32) @ reference.T).max(axis=1)
    return out


def _k_center(view: np.ndarray, candidates: np.ndarray, count: int, labelled_view: np.ndarray | None) -> list[int]:
    points = np.asarray(view[candidates], dtype=np.float32)
    distance = _nearest_distance(points, labelled_view)
    chosen: list[int] = []
    for _ in range(min(count, len(candidates))):
        # Without anything labelled the first pick is the most uncertain (candidates come in that order).
        pick = int(np.argmax(distance)) if np.isfinite(distance).any() else 0
        chosen.append(int(candidates[pick]))
        distance = np.minimum(distance, 1 - points @ points[pick])
        distance[pick] = -np.inf
    return chosen


def _k_means(view: np.ndarray, candidates: np.ndarray, count: int, weights: np.ndarray, seed: int) -> list[int]:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    if len(candidates) <= count:
        return [int(i) for i in candidates]
    points = np.asarray(view[candidates], dtype=np.float32)
    with threadpool_limits(1):  # tiny problem: BLAS threads would only spin against each other
        model = KMeans(n_clusters=count, n_init=1, random_state=seed).fit(points, sample_weight=weights)
    chosen = []
    for cluster in range(count):
        members = np.flatnonzero(model.labels_ == cluster)
        if not len(members):
            continue
        nearest = members[np.argmax(points[members] @ model.cluster_centers_[cluster])]
        chosen.append(int(candidates[nearest]))
    return chosen


def select(probabilities, view, count: int, *, strategy: str = DEFAULT_STRATEGY, eligible=None,
           labelled_view=None, pool_factor: int = DEFAULT_POOL_FACTOR, seed: int = 0) -> tuple[list[int], list[str]]:
    """(positions, reasons): the `count` photos to label next among the `eligible` ones (a boolean mask; all
    by default), most useful first, each "uncertain" (its margin is among the `count` smallest) or "diverse"."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}.")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a whole number of at least 1; got {count!r}.")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    view = view if isinstance(view, LazyView) else np.asarray(view)
    if probabilities.ndim != 2 or view.ndim != 2 or len(view) != len(probabilities):
        raise ValueError(f"probabilities {probabilities.shape} and view {view.shape} must have one row per photo.")
    eligible = np.ones(len(view), bool) if eligible is None else np.asarray(eligible, bool)
    positions = np.flatnonzero(eligible)
    if not len(positions):
        return [], []
    margin = margins(probabilities)
    by_margin = positions[np.argsort(margin[positions], kind="stable")]
    rng = np.random.default_rng(seed)
    wide = by_margin[: max(count, int(pool_factor) * count)]
    if strategy == "random":
        chosen = [int(i) for i in rng.permutation(positions)[:count]]
    elif strategy == "margin":
        chosen = [int(i) for i in by_margin[:count]]
    elif strategy == "entropy":
        entropy = entropies(probabilities)
        chosen = [int(i) for i in positions[np.argsort(-entropy[positions], kind="stable")][:count]]
    elif strategy == "kcenter":
        chosen = _k_center(view, by_margin, count, labelled_view)
    elif strategy == "margin-kcenter":
        chosen = _k_center(view, wide, count, labelled_view)
    else:  # margin-kmeans
        chosen = _k_means(view, wide, min(count, len(wide)), 1.0 - margin[wide] + 1e-3, seed)
        chosen = sorted(chosen, key=lambda i: margin[i])
    uncertain = set(int(i) for i in by_margin[:count])
    return chosen, ["uncertain" if i in uncertain else "diverse" for i in chosen]
