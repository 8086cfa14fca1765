"""Near-copies the byte and pixel digests miss (re-encoded, resized, slightly cropped), for the photo check.

Two kinds of evidence, either one enough (the thresholds' measurements: bench/README.md, "Why the
engine is built as it is"):

* **VGG16's features**: power-normalised cosine >= FEATURE_SIMILARITY and 1 - cosine at most
  1 / FEATURE_GAP of 1 - the median of either photo's ten best matches (far more alike than its
  look-alikes). Finds copies of real photos even when colours or framing were edited; on small
  grayscale photos (28 px clothes) a copy can score below two different plain garments.
* **The pixels, aligned**: grey thumbnails of each photo's centre crops (CROPS) compared pair
  by pair at the best-matching crops, so a copy cropped a few percent still lines up with its
  original. A pair counts when it is this alike (>= PIXEL_SIMILARITY) *and* 1 - similarity is
  at most 1 / PIXEL_GAP of 1 - the median of either photo's ten best matches.

The look-alike level is the median of a photo's ten best matches, so a photo copied more than
four times raises its own level and its copies are not reported (the digest still drops exact
ones). Pairs are looked for among each photo's nearest neighbours by features and by thumbnails
(n x 20 pairs, not n x n) and merged into groups, most similar first, only while every two photos of
a group are copies by one of the two tests (complete linkage: look-alikes must not chain).

The same groups keep near-copies in one fold (``copy_groups``, for crossval.folds_for, with the pixels'
evidence for small photos: ``fold_thumbnails``): a copy must never test the model that learned from its
twin. Because each pair is judged against the photos' own look-alikes, features that make every photo
alike (tiny images, random weights) do not fuse the photos into one group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quasar_core.data.images import resize_square
from quasar_core.errors import DatasetError
from quasar_core.features.cache import FeatureCache, FeatureSpec

FEATURE_SIMILARITY = 0.925
FEATURE_GAP = 3.0
PIXEL_SIMILARITY = 0.97
PIXEL_GAP = 9.0
CROPS = (0.0, 0.04, 0.08)  # share cut from each side before the thumbnail is made
THUMBNAIL_SIDE = 24
NEIGHBOURS = 10
# A photo copied more than four times raises its own look-alike level past its copies (see above), so a
# larger group is photos that all look alike to within rounding (tiny images, random weights): not copies.
LARGEST_GROUP = 5


@dataclass(frozen=True)
class NearDuplicate:
    files: tuple[str, ...]
    similarity: float  # the lowest similarity between any two of them (features or aligned pixels)
    classes: tuple[str, ...]  # each file's class, in the order of files


def thumbnails(pixels) -> np.ndarray:
    """(len(CROPS), THUMBNAIL_SIDE**2) grey thumbnails of one photo's centre crops, centred, unit length."""
    image = np.asarray(pixels, dtype=np.float32)
    if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"pixels must be an (H, W, C) photo, got shape {image.shape!r}.")
    h, w = image.shape[:2]
    out = []
    for crop in CROPS:
        dy, dx = min(round(crop * h), (h - 1) // 2), min(round(crop * w), (w - 1) // 2)
        grey = resize_square(image[dy:h - dy, dx:w - dx], THUMBNAIL_SIDE).mean(axis=-1).ravel()
        grey -= grey.mean()
        out.append(grey / max(float(np.linalg.norm(grey)), 1e-6))  # a flat photo stays all zeros
    return np.stack(out)


# Kept in the feature cache beside the photos' features (same digests), so a check after a fix
# decodes no photo again (a 12-megapixel JPEG takes ~0.1 s to decode).
THUMBNAIL_SPEC = FeatureSpec("pixels", THUMBNAIL_SIDE, "grey", layer=f"thumbnails-{len(CROPS)}-crops")


def dataset_thumbnails(dataset, *, cache: FeatureCache | None = None) -> np.ndarray:
    """(n, len(CROPS), THUMBNAIL_SIDE**2) for every photo of a dataset: from `cache`, else decoded and kept there."""
    found = []
    for index, sample in enumerate(dataset.samples):
        kept = cache.get(sample.digest, THUMBNAIL_SPEC) if cache is not None else None
        if kept is None or kept.shape != (len(CROPS), THUMBNAIL_SIDE**2):
            kept = thumbnails(dataset.pixels(index)).astype(np.float32)
            if cache is not None:
                cache.put(sample.digest, THUMBNAIL_SPEC, kept)
        found.append(kept)
    return np.stack(found) if found else np.zeros((0, len(CROPS), THUMBNAIL_SIDE**2), np.float32)


# Copies of photos this small look alike to VGG16 (see above): only the pixels tell them apart, and decoding
# them again costs next to nothing. Larger photos' copies are found by their features, and their
# thumbnails would cost the first training ~0.1 s a 12-megapixel photo.
PIXEL_EVIDENCE_SIDE = 64


def fold_thumbnails(dataset, *, cache: FeatureCache | None = None) -> np.ndarray | None:
    """The thumbnails the folds' copy groups use: dataset_thumbnails for photos of median shorter side up
    to PIXEL_EVIDENCE_SIDE, else None (features only)."""
    if not len(dataset) or dataset.median_source_side() > PIXEL_EVIDENCE_SIDE:
        return None
    try:
        return dataset_thumbnails(dataset, cache=cache)
    except DatasetError:  # a photo gone since its features were cached: the features still keep most copies
        return None


def check_thumbnails(thumbs, n: int):
    """`thumbs` as float64 (n, crops, pixels), or None; ValueError naming the shape otherwise."""
    if thumbs is None:
        return None
    array = np.asarray(thumbs, dtype=np.float64)
    if array.ndim != 3 or len(array) != n or not np.isfinite(array).all():
        raise ValueError(f"`thumbnails` must be finite numbers of shape (n={n}, crops, pixels), one per photo "
                         f"(near_copies.dataset_thumbnails). Received shape {array.shape!r}")
    return array


def power_normalise(features) -> np.ndarray:
    """Signed square root, then unit length: cosine similarity on these tells copies apart best."""
    x = np.asarray(features, dtype=np.float32)
    z = np.sign(x) * np.sqrt(np.abs(x))
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def copy_groups(features, *, thumbs=None) -> np.ndarray:
    """A group number per photo (its lowest member's index): near-copies share one. `features` raw pooled
    features (power-normalised here), `thumbs` as for near_duplicates."""
    z = power_normalise(features).astype(np.float64)
    groups = np.arange(len(z), dtype=np.int64)
    thumbs = check_thumbnails(thumbs, len(z))
    if len(z) < 2:
        return groups
    for members in _linked(z, thumbs, None)[0]:
        groups[members] = members[0]
    return groups


def near_duplicates(z, labels, class_names, files, *, thumbs=None, feature_neighbours=None,
                    limit: int | None = None) -> tuple[NearDuplicate, ...]:
    """Groups of near-copies: groups spanning classes first, then the most similar.

    `z` (n, d) unit-length (power-normalised) features; `thumbs` (n, crops, pixels) from
    `thumbnails` (None: features only); `feature_neighbours` (n, k) each photo's nearest by `z`
    if already known. At most `limit` groups (default max(50, n / 5)).
    """
    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    thumbs = check_thumbnails(thumbs, n)
    if n < 2:
        return ()
    groups, copies = _linked(z, thumbs, feature_neighbours)
    found = []
    for members in groups:
        left, right = np.triu_indices(len(members), 1)
        similarity = float(min(copies(np.asarray(members)[left], np.asarray(members)[right])[1].min(), 1.0))
        found.append(NearDuplicate(tuple(files[i] for i in members), round(similarity, 4),
                                   tuple(class_names[labels[i]] for i in members)))
    found.sort(key=lambda d: (len(set(d.classes)) < 2, -d.similarity, d.files))
    return tuple(found[: max(50, n // 5) if limit is None else limit])


def _linked(z, thumbs, feature_neighbours):
    """(the groups of near-copies, each a sorted list of photo indices; `copies(a, b)`, the pair test)."""
    n = len(z)

    def similarities(a, b):
        return _features(z, a, b), None if thumbs is None else _aligned(thumbs, a, b)

    pairs = _candidates(z, thumbs, feature_neighbours)
    first, second = pairs[:, 0], pairs[:, 1]
    candidate_similarities = similarities(first, second)  # once: the levels and the links both use them
    feature_level = _look_alike_level(candidate_similarities[0], pairs, n)
    if thumbs is not None:
        pixel_level = _look_alike_level(candidate_similarities[1], pairs, n)

    def copies(a, b, known=None):
        """Per pair: (is a near-copy, similarity shown); `known`: the pairs' similarities if computed."""
        feature, pixel = similarities(a, b) if known is None else known
        level = np.maximum(feature_level[a], feature_level[b])
        by_features = (feature >= FEATURE_SIMILARITY) & (1 - feature <= (1 - level) / FEATURE_GAP)
        if thumbs is None:
            return by_features, feature
        level = np.maximum(pixel_level[a], pixel_level[b])
        by_pixels = (pixel >= PIXEL_SIMILARITY) & (1 - pixel <= (1 - level) / PIXEL_GAP)
        shown = np.where(by_pixels & ~by_features, pixel,
                         np.where(by_features & ~by_pixels, feature, np.maximum(pixel, feature)))
        return by_pixels | by_features, shown

    linked, shown = copies(first, second, candidate_similarities)
    owner, group = list(range(n)), {i: [i] for i in range(n)}
    for e in np.flatnonzero(linked)[np.argsort(-shown[linked], kind="stable")]:
        a, b = owner[first[e]], owner[second[e]]
        if a == b:
            continue
        left, right = np.repeat(group[a], len(group[b])), np.tile(group[b], len(group[a]))
        if not copies(left, right)[0].all():
            continue
        for i in group[b]:
            owner[i] = a
        group[a] += group.pop(b)
    return [sorted(m) for m in group.values() if 1 < len(m) <= LARGEST_GROUP], copies


def _nearest(x, k):
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=min(k, len(x) - 1), algorithm="brute").fit(x).kneighbors()[1]


def _candidates(z, thumbs, feature_neighbours) -> np.ndarray:
    """(pairs, 2) with a < b: each photo with its nearest by features and by plain thumbnails."""
    n = len(z)
    found = [feature_neighbours if feature_neighbours is not None else _nearest(z, NEIGHBOURS)]
    if thumbs is not None:
        found.append(_nearest(thumbs[:, 0], NEIGHBOURS))
    rows = np.concatenate([np.repeat(np.arange(n), f.shape[1]) for f in found])
    cols = np.concatenate([np.asarray(f).ravel() for f in found])
    keep = rows != cols
    key = np.unique(np.minimum(rows, cols)[keep] * n + np.maximum(rows, cols)[keep])
    return np.stack([key // n, key % n], axis=1)


def _features(z, a, b) -> np.ndarray:
    return np.einsum("pd,pd->p", z[a], z[b])


def _aligned(thumbs, a, b) -> np.ndarray:
    """Per pair: the highest cosine between any crop of one and any crop of the other."""
    return np.einsum("pcd,ped->pce", thumbs[a], thumbs[b]).reshape(len(a), -1).max(axis=1)


def _look_alike_level(similarity, pairs, n) -> np.ndarray:
    """Per photo: the median similarity of its (up to) ten best-matching candidate pairs."""
    photos, values = np.concatenate([pairs[:, 0], pairs[:, 1]]), np.concatenate([similarity, similarity])
    order = np.lexsort((-values, photos))  # by photo, most similar first
    photos, values = photos[order], values[order]
    starts = np.searchsorted(photos, np.arange(n + 1))
    return np.array([float(np.median(values[starts[i]:min(starts[i + 1], starts[i] + NEIGHBOURS)]))
                     if starts[i + 1] > starts[i] else 0.0 for i in range(n)])
