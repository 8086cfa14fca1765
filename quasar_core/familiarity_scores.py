"""The familiarity score's arithmetic: input checks, each block's normalisation, the kNN and Mahalanobis scores.

Shared by familiarity.FamiliarityModel (new photos against the training photos) and ``class_scores`` (the
photo check's outliers: each photo against each class, out-of-fold). The float32 operations are those of
familiarity.SCORING_SNIPPET, so the exported apps' numbers agree exactly with the engine's.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

BLOCK_WIDTH = 512  # pooled values per VGG16 block (block4_pool, block5_pool): each block is a part of its own
CHUNK = 512  # rows scored at a time: bounds memory at CHUNK x bank floats


# ---------------------------------------------------------------------------------------------
# checks
def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)



def as_features(features, *, n_features=None, min_rows=0) -> np.ndarray:
    """A float32 (n, d) array of finite values (one 1-D row is taken as one photo when d is known)."""
    try:
        x = np.asarray(features, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        kind = type(features).__name__
        raise ValueError(f"features must be a numeric (photos, values) array; got {kind} ({exc}).") from None
    if x.ndim == 1 and n_features is not None and x.shape[0] == n_features:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D (photos, values) array; got shape {x.shape}.")
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"features have {x.shape[1]} values per photo, but this model was fitted on {n_features}.")
    if x.shape[0] < min_rows or x.shape[1] < 1:
        raise ValueError(f"features need at least {min_rows} photos and 1 value per photo; got shape {x.shape}.")
    if not np.isfinite(x).all():
        row, col = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"features must be finite numbers; photo {row} holds {float(x[row, col])!r} at value {col}.")
    return x


def as_labels(labels, n) -> np.ndarray:
    if labels is None:
        return np.zeros(n, dtype=np.int64)
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must be a 1-D array of {n} class ids, one per photo; got shape {y.shape}.")
    if y.dtype.kind not in "iu":
        integral = y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all()
        if not integral:
            bad = next((v for v in y.tolist() if not (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      and float(v).is_integer())), y.tolist()[0] if n else None)
            raise ValueError(f"labels must be whole-number class ids (0, 1, ...); got {bad!r}.")
    return y.astype(np.int64)


def stratified(y: np.ndarray, size: int, rng) -> np.ndarray:
    """Sorted indices of `size` photos, each class in proportion to its count (at least one each where possible)."""
    if size >= len(y):
        return np.arange(len(y))
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * size / len(y)
    quota = np.minimum(counts, np.maximum(1, np.floor(exact))).astype(int)
    for c in np.argsort(-(exact - np.floor(exact)), kind="stable"):  # largest remainders get the places left
        if quota.sum() >= size:
            break
        quota[c] += int(quota[c] < counts[c])
    while quota.sum() > size:  # more classes than places: take from the largest
        quota[np.argmax(quota)] -= 1
    picks = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picks))


# ---------------------------------------------------------------------------------------------
# the scores (the same float32 operations as familiarity.SCORING_SNIPPET, so the numbers agree exactly)
def _unit(q: np.ndarray) -> np.ndarray:
    return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), np.float32(1e-12))


def by_parts(q: np.ndarray, parts: int) -> np.ndarray:
    """Each part (a VGG16 block's pooled values) to unit length on its own; side by side, unit length overall."""
    q = np.concatenate([_unit(p) for p in np.split(q, parts, axis=1)], axis=1)
    return q / np.float32(np.sqrt(parts)) if parts > 1 else q


def knn_view(x: np.ndarray, parts: int) -> np.ndarray:
    """Square root then unit length, block by block. VGG16's pooled features are >= 0 and a few channels
    dominate them; the square root (a Hellinger-style power normalisation) evens those out."""
    return by_parts(np.sqrt(np.maximum(x, 0)), parts)


def kmean(d: np.ndarray, k: int) -> np.ndarray:
    return np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1)


def mahalanobis_parts(xn: np.ndarray, y: np.ndarray):
    """(center, projection, class_centres), float32: score = min_c |(xn - center) @ projection - centre_c|^2,
    with the class means and the shared within-class covariance (Ledoit-Wolf shrinkage) of unit-length features."""
    from sklearn.covariance import ledoit_wolf  # here, not at import: every page imports this module (~4 s)

    x64 = xn.astype(np.float64)
    center = x64.mean(axis=0)
    classes = np.unique(y)
    means = np.stack([x64[y == c].mean(axis=0) for c in classes])
    within = x64 - means[np.searchsorted(classes, y)]
    with warnings.catch_warnings():  # one photo per fold ("only one sample") is fine: shrinkage copes
        warnings.simplefilter("ignore", UserWarning)
        cov, _ = ledoit_wolf(within, assume_centered=True)
    ev, vec = np.linalg.eigh(cov)
    floor = max(float(ev.max()) * 1e-9, 1e-12)
    projection = vec / np.sqrt(np.maximum(ev, floor))
    return (center.astype(np.float32), projection.astype(np.float32),
            ((means - center) @ projection).astype(np.float32))


def mahalanobis(xn, center, projection, centres) -> np.ndarray:
    z = (xn - center) @ projection
    return ((z[:, None, :] - centres[None]) ** 2).sum(axis=-1).min(axis=1)


def parts_of(n_features: int, block_width: int = BLOCK_WIDTH) -> int:
    """How many blocks' parts features of this width hold: 1,024 pooled values -> 2 (block4, block5); else 1."""
    return n_features // block_width if n_features % block_width == 0 and n_features > block_width else 1


def class_scores(features, labels, *, k: int = 5, block_width: int = BLOCK_WIDTH) -> np.ndarray:
    """(n,) each photo's strangeness to the nearest class, out-of-fold: the kNN score (mean cosine distance to
    the k nearest; each block square-rooted and unit-length on its own) against each class's photos alone,
    the photo itself left out, and the smallest over the classes. The photo check's outliers: a photo of
    something else stays far from every class even when a few photos like it were filed in other classes
    (they are not all its neighbours), and a photo merely filed in the wrong class is near its true one."""
    if not is_int(k) or k < 1:
        raise ValueError(f"k (how many nearest photos) must be a whole number >= 1; got {k!r}.")
    x = as_features(features, min_rows=2)
    y = as_labels(labels, len(x))
    view = knn_view(x, parts_of(x.shape[1], block_width))
    out = np.full(len(x), np.inf, dtype=np.float32)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        bank = view[members]
        for s in range(0, len(x), CHUNK):
            rows = np.arange(s, min(len(x), s + CHUNK))
            d = 1 - view[rows] @ bank.T
            own = np.flatnonzero(y[rows] == c)
            d[own, np.searchsorted(members, rows[own])] = np.inf  # not its own neighbour
            kc = min(k, len(members) - (len(own) > 0))
            if kc >= 1:
                out[rows] = np.minimum(out[rows], np.where(np.isinf(d).all(axis=1), np.inf, kmean(d, kc)))
    return np.where(np.isfinite(out), out, np.float32(2.0))  # alone with no class to compare: as far as can be
