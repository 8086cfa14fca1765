"""Familiarity: does a new photo look like the photos the model was trained on? Three answers.

A classifier of ants and bees answers "ants (97 %)" for a photo of a dog: its softmax only chooses
between the classes it knows. This module gives every prediction a second number, a
**familiarity** in 0..1, computed from the pooled VGG16 features the engine caches for every
training photo, and one of three answers:

* **familiar** — the label and its confidence;
* **unusual** — familiarity below ``unusual_below`` (default 0.20) but not unknown: the closest
  class, said with doubt ("Not sure: this photo looks unusual for your classes");
* **unknown** — familiarity below ``1 - familiar_share`` (default 0.025): like none of the classes.

Score ("strangeness", larger = stranger): the mean cosine distance to the k = 5 nearest training
photos, where each VGG16 block's part of the features (block4_pool's 512 averages, then
block5_pool's 512) is square-rooted and unit-normalised on its own, so each block weighs the same:
block4 sees textures and the blur of an upscaled thumbnail, block5 the subject. Calibration: every
training photo is scored leave-one-out (not its own neighbour) and those scores are kept, sorted;
a new photo's familiarity is the share of them at least as strange (an empirical p-value). So about
``familiar_share`` of photos like the training ones are not unknown, and about ``unusual_below -
(1 - familiar_share)`` of them fall in the unusual band. The features are those of the model that
answers (after fine-tuning, the fine-tuned blocks'), so reference and question share one space.

Why this score and these thresholds: measured against photos of other domains, near domains, small
thumbnails and everyday objects in bench/bench_strangers.py; the figures are in bench/README.md.

Saving: ``to_arrays()`` gives plain numpy arrays (float16 bank of the training photos' normalised
features, at most ``max_bank``, stratified by class) for an ``.npz``; ``from_arrays`` scores
identically, also arrays saved before (version 1: one part, 512 or 1,024 values). ``SCORING_SNIPPET``
is the same scoring as plain numpy source, ``familiarity(features, arrays) -> (familiarity, unknown,
unusual)``, for the exported ``predict.py`` and the shared app.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

__all__ = ["FamiliarityModel", "SCORING_SNIPPET", "drift_summary", "class_scores", "METHODS", "BLOCK_WIDTH",
           "UNUSUAL_BELOW"]

METHODS = ("knn_cosine", "mahalanobis")
BLOCK_WIDTH = 512  # pooled values per VGG16 block (block4_pool, block5_pool): each block is a part of its own
UNUSUAL_BELOW = 0.20  # familiarity under which a photo that is not unknown is "unusual" (bench/README: why)
MAX_CALIBRATION = 2000  # training photos scored out-of-fold for the calibration (stratified subsample above)
_CHUNK = 512  # rows scored at a time: bounds memory at _CHUNK x bank floats
_FOLDS = 10  # out-of-fold calibration of the Mahalanobis score
_ARRAY_VERSION = 2  # 2: "parts" (block by block) and "unusual_below"; 1: one part, two answers
_TIE = 1e-9  # exact ties count as familiar: in floats 1 - 0.975 is 0.025000000000000022

SCORING_SNIPPET = '''\
import numpy as np

def familiarity(features, arrays):
    """(familiarity in 0..1, unknown, unusual) per photo of (m, d) pooled VGG16 features; arrays from
    FamiliarityModel.to_arrays(). unknown: like none of the classes; unusual: not unknown, but doubtful."""
    x = np.atleast_2d(np.asarray(features, dtype=np.float32))
    method, k = str(arrays["method"]), int(arrays["k"])
    parts = int(arrays["parts"]) if "parts" in arrays else 1  # arrays saved before version 2: one part
    bank = arrays["bank"].astype(np.float32) if method == "knn_cosine" else None
    scores = []
    for s in range(0, len(x), 512):  # 512 photos at a time bounds memory
        q = x[s:s + 512]
        if method == "knn_cosine":  # square root, then each block's part to unit length on its own
            q = np.sqrt(np.maximum(q, 0))
        q = np.concatenate([p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), np.float32(1e-12))
                            for p in np.split(q, parts, axis=1)], axis=1)
        if parts > 1:
            q = q / np.float32(np.sqrt(parts))
        if method == "knn_cosine":  # mean cosine distance to the k nearest training photos
            d = 1 - q @ bank.T
            scores.append(np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1))
        else:  # mahalanobis: squared distance to the nearest class centre, shared whitened covariance
            z = (q - arrays["center"]) @ arrays["projection"]
            scores.append(((z[:, None, :] - arrays["class_centres"][None]) ** 2).sum(axis=-1).min(axis=1))
    score = np.concatenate(scores) if scores else np.zeros(0, np.float32)
    calibration = arrays["calibration"]  # the training photos' own out-of-fold scores, sorted
    fam = (len(calibration) - np.searchsorted(calibration, score, side="left")) / len(calibration)
    share = float(arrays["familiar_share"])
    unknown = fam < 1 - share - 1e-9  # (1e-9: 1 - 0.975 is 0.025000000000000022)
    unusual_below = float(arrays["unusual_below"]) if "unusual_below" in arrays else max(@UNUSUAL_BELOW@, 1 - share)
    return fam, unknown, ~unknown & (fam < unusual_below - 1e-9)
'''.replace("@UNUSUAL_BELOW@", repr(UNUSUAL_BELOW))  # arrays saved before version 2: the default band


# ---------------------------------------------------------------------------------------------
# checks
def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_params(method, k, familiar_share, unusual_below, block_width, max_bank, seed):
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in METHODS)}; got {method!r}.")
    if not _is_int(k) or k < 1:
        raise ValueError(f"k (how many nearest training photos) must be a whole number >= 1; got {k!r}.")
    if (isinstance(familiar_share, bool) or not isinstance(familiar_share, numbers.Real)
            or not 0 < float(familiar_share) < 1):
        raise ValueError(f"familiar_share must be a number between 0 and 1, e.g. 0.975; got {familiar_share!r}.")
    if (isinstance(unusual_below, bool) or not isinstance(unusual_below, numbers.Real)
            or not 1 - float(familiar_share) - _TIE <= float(unusual_below) < 1):
        raise ValueError(f"unusual_below must be a number from 1 - familiar_share ({1 - float(familiar_share):.3g}, "
                         f"no unusual band) up to 1, e.g. {UNUSUAL_BELOW}; got {unusual_below!r}.")
    if not _is_int(block_width) or block_width < 1:
        raise ValueError(f"block_width must be a whole number >= 1; got {block_width!r}.")
    if not _is_int(max_bank) or max_bank < 2:
        raise ValueError(f"max_bank must be a whole number >= 2; got {max_bank!r}.")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0; got {seed!r}.")


def _as_features(features, *, n_features=None, min_rows=0) -> np.ndarray:
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


def _as_labels(labels, n) -> np.ndarray:
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


def _stratified(y: np.ndarray, size: int, rng) -> np.ndarray:
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
# the scores (the same float32 operations as SCORING_SNIPPET, so the numbers agree exactly)
def _unit(q: np.ndarray) -> np.ndarray:
    return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), np.float32(1e-12))


def _by_parts(q: np.ndarray, parts: int) -> np.ndarray:
    """Each part (a VGG16 block's pooled values) to unit length on its own; side by side, unit length overall."""
    q = np.concatenate([_unit(p) for p in np.split(q, parts, axis=1)], axis=1)
    return q / np.float32(np.sqrt(parts)) if parts > 1 else q


def _knn_view(x: np.ndarray, parts: int) -> np.ndarray:
    """Square root then unit length, block by block. VGG16's pooled features are >= 0 and a few channels
    dominate them; the square root (a Hellinger-style power normalisation) evens those out."""
    return _by_parts(np.sqrt(np.maximum(x, 0)), parts)


def _kmean(d: np.ndarray, k: int) -> np.ndarray:
    return np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1)


def _mahalanobis_parts(xn: np.ndarray, y: np.ndarray):
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


def _mahalanobis(xn, center, projection, centres) -> np.ndarray:
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
    if not _is_int(k) or k < 1:
        raise ValueError(f"k (how many nearest photos) must be a whole number >= 1; got {k!r}.")
    x = _as_features(features, min_rows=2)
    y = _as_labels(labels, len(x))
    view = _knn_view(x, parts_of(x.shape[1], block_width))
    out = np.full(len(x), np.inf, dtype=np.float32)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        bank = view[members]
        for s in range(0, len(x), _CHUNK):
            rows = np.arange(s, min(len(x), s + _CHUNK))
            d = 1 - view[rows] @ bank.T
            own = np.flatnonzero(y[rows] == c)
            d[own, np.searchsorted(members, rows[own])] = np.inf  # not its own neighbour
            kc = min(k, len(members) - (len(own) > 0))
            if kc >= 1:
                out[rows] = np.minimum(out[rows], np.where(np.isinf(d).all(axis=1), np.inf, _kmean(d, kc)))
    return np.where(np.isfinite(out), out, np.float32(2.0))  # alone with no class to compare: as far as can be


# ---------------------------------------------------------------------------------------------
class FamiliarityModel:
    """How familiar photos look, from their pooled VGG16 features, against the training photos'.

    Parameters (keywords only)
    --------------------------
    method : "knn_cosine" (default): mean cosine distance to the k nearest training photos, on
        square-rooted features, each block's part unit-length on its own; or "mahalanobis": squared
        distance to the nearest class mean under the shared within-class covariance (Ledoit-Wolf), on
        unit-length features (needs labels to be class-conditional; without them, one class).
    k : how many nearest training photos the kNN score averages over.
    familiar_share : the share of photos like the training ones that should not be called unknown.
    unusual_below : a photo whose familiarity is below this, and that is not unknown, is unusual (default
        UNUSUAL_BELOW; 1 - familiar_share: no band, two answers).
    block_width : values per VGG16 block in the features (512): 1,024 features are two parts.
    max_bank : the most training photos kept for kNN scoring (stratified by class above it).
    seed : for the subsampling and the Mahalanobis folds.

    Learned: ``calibration_scores_`` (the training photos' out-of-fold scores, sorted; at most
    MAX_CALIBRATION of them, stratified), ``threshold_`` (the largest score still not unknown),
    ``familiar_rate_`` (share of those training photos not unknown out-of-fold: about familiar_share),
    ``unusual_rate_`` (share of them unusual), ``n_parts_``, ``bank_`` (float16) and ``bank_labels_``
    (kNN), ``classes_``, ``n_features_in_``, ``n_train_``.
    """

    def __init__(self, *, method="knn_cosine", k=5, familiar_share=0.975, unusual_below=None,
                 block_width=BLOCK_WIDTH, max_bank=4000, seed=0):
        if unusual_below is None:  # the default band, or none when familiar_share leaves no room for it
            unusual_below = max(UNUSUAL_BELOW, 1 - familiar_share) if _is_real(familiar_share) else UNUSUAL_BELOW
        _check_params(method, k, familiar_share, unusual_below, block_width, max_bank, seed)
        self.method = method
        self.k = k
        self.familiar_share = familiar_share
        self.unusual_below = unusual_below
        self.block_width = block_width
        self.max_bank = max_bank
        self.seed = seed

    # -- fitting --------------------------------------------------------------------------
    def fit(self, features, labels=None) -> "FamiliarityModel":
        """Learn from (n, d) training features (n >= 2) and optional int class ids, one per photo."""
        _check_params(self.method, self.k, self.familiar_share, self.unusual_below, self.block_width,
                      self.max_bank, self.seed)
        x = _as_features(features, min_rows=2)
        y = _as_labels(labels, len(x))
        rng = np.random.default_rng(self.seed)
        for stale in ("bank_", "bank_labels_", "_bank", "_parts"):  # from an earlier fit with another method
            self.__dict__.pop(stale, None)
        self.n_features_in_, self.n_train_ = int(x.shape[1]), int(len(x))
        self.n_parts_ = parts_of(self.n_features_in_, self.block_width)
        self.classes_ = np.unique(y)
        cal_idx = _stratified(y, MAX_CALIBRATION, rng)
        if self.method == "knn_cosine":
            calibration = self._fit_knn(x, y, cal_idx, rng)
        else:
            calibration = self._fit_mahalanobis(x, y, cal_idx, rng)
        self.calibration_scores_ = np.sort(calibration.astype(np.float32))
        self._rates()
        return self

    def _rates(self) -> None:
        fam = self._familiarity_of(self.calibration_scores_)
        unknown = self._unknown_of(fam)
        self.familiar_rate_ = float((~unknown).mean())
        self.unusual_rate_ = float(self._unusual_of(fam).mean())
        self.threshold_ = float(self.calibration_scores_[~unknown].max())

    def _fit_knn(self, x, y, cal_idx, rng):
        view = _knn_view(x, self.n_parts_)
        bank_idx = _stratified(y, int(self.max_bank), rng)
        self.bank_ = view[bank_idx].astype(np.float16)
        self.bank_labels_ = y[bank_idx]
        self._bank = self.bank_.astype(np.float32)
        self._k = int(min(self.k, len(bank_idx) - 1))
        position = np.full(len(x), -1)
        position[bank_idx] = np.arange(len(bank_idx))
        out = []
        for s in range(0, len(cal_idx), _CHUNK):  # leave-one-out: a photo is not its own neighbour
            rows = cal_idx[s:s + _CHUNK]
            d = 1 - view[rows] @ self._bank.T
            own = position[rows]
            hit = np.flatnonzero(own >= 0)
            d[hit, own[hit]] = np.inf
            out.append(_kmean(d, self._k))
        return np.concatenate(out)

    def _fit_mahalanobis(self, x, y, cal_idx, rng):
        xn = _by_parts(x, self.n_parts_)
        self._parts = _mahalanobis_parts(xn, y)
        self._k = int(self.k)
        folds = min(_FOLDS, len(x))
        fold = rng.permutation(len(x)) % folds
        scores = np.full(len(x), np.nan, dtype=np.float32)
        for f in range(folds):  # out-of-fold: each photo scored by a model fitted without it
            held = np.flatnonzero(fold == f)
            held = held[np.isin(held, cal_idx)]
            if len(held):
                parts = _mahalanobis_parts(xn[fold != f], y[fold != f])
                scores[held] = _mahalanobis(xn[held], *parts)
        return scores[cal_idx]

    # -- scoring --------------------------------------------------------------------------
    def _check_fitted(self):
        if getattr(self, "calibration_scores_", None) is None:
            raise ValueError("This FamiliarityModel is not fitted yet: call fit() or from_arrays() first.")

    def raw_scores(self, features) -> np.ndarray:
        """(m,) float32 strangeness (larger = stranger): the quantity the calibration ranks."""
        self._check_fitted()
        x = _as_features(features, n_features=self.n_features_in_)
        out = []
        for s in range(0, len(x), _CHUNK):
            q = x[s:s + _CHUNK]
            if self.method == "knn_cosine":
                out.append(_kmean(1 - _knn_view(q, self.n_parts_) @ self._bank.T, self._k))
            else:
                out.append(_mahalanobis(_by_parts(q, self.n_parts_), *self._parts))
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _familiarity_of(self, scores) -> np.ndarray:
        cal = self.calibration_scores_
        return (len(cal) - np.searchsorted(cal, scores, side="left")) / len(cal)

    def _unknown_of(self, fam) -> np.ndarray:
        return fam < 1 - float(self.familiar_share) - _TIE

    def _unusual_of(self, fam) -> np.ndarray:
        return ~self._unknown_of(fam) & (fam < float(self.unusual_below) - _TIE)

    def familiarity(self, features) -> np.ndarray:
        """(m,) in 0..1: the share of training photos whose own out-of-fold score is at least as strange
        (1 = as ordinary as the most typical training photo; 0 = stranger than all of them)."""
        return self._familiarity_of(self.raw_scores(features))

    def is_unknown(self, features) -> np.ndarray:
        """(m,) bool: familiarity < 1 - familiar_share (stranger than all but that share of training photos)."""
        return self._unknown_of(self.familiarity(features))

    def is_unusual(self, features) -> np.ndarray:
        """(m,) bool: not unknown, but familiarity < unusual_below (the band of doubt above unknown)."""
        return self._unusual_of(self.familiarity(features))

    def answers(self, features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(familiarity, unknown, unusual) in one scoring: what SCORING_SNIPPET's familiarity() returns."""
        fam = self.familiarity(features)
        return fam, self._unknown_of(fam), self._unusual_of(fam)

    # -- saving ---------------------------------------------------------------------------
    def describe(self) -> str:
        """The thresholds and how often the user's own photos were called unknown or unusual, in words."""
        self._check_fitted()
        text = (f"A photo counts as unlike anything the model learned when it looks stranger, to VGG16, than "
                f"{self.familiar_share * 100:.1f} % of the training photos do, and as unusual when stranger than "
                f"{(1 - self.unusual_below) * 100:.1f} % of them. Tested on its own photos (each against the "
                f"others), {(1 - self.familiar_rate_) * 100:.1f} % of them were called unknown and "
                f"{self.unusual_rate_ * 100:.1f} % unusual.")
        per_class = self.n_train_ / max(len(self.classes_), 1)
        if per_class < 50:
            text += (f" With about {per_class:.0f} photos per class this check is rough: some unusual photos may "
                     "pass, or usual ones be called unknown.")
        return text

    def to_arrays(self) -> dict:
        """Plain numpy arrays (no objects: np.savez/np.load(allow_pickle=False) safe) that score later."""
        self._check_fitted()
        arrays = {
            "version": np.array(_ARRAY_VERSION, dtype=np.int64),
            "method": np.array(self.method),
            "k": np.array(self._k, dtype=np.int64),
            "parts": np.array(self.n_parts_, dtype=np.int64),
            "familiar_share": np.array(float(self.familiar_share)),
            "unusual_below": np.array(float(self.unusual_below)),
            "calibration": self.calibration_scores_,
            "threshold": np.array(self.threshold_),
            "familiar_rate": np.array(self.familiar_rate_),
            "params": np.array([int(self.k), int(self.max_bank), int(self.seed), int(self.block_width)],
                               dtype=np.int64),
            "n_train": np.array(self.n_train_, dtype=np.int64),
            "n_features": np.array(self.n_features_in_, dtype=np.int64),
            "classes": self.classes_.astype(np.int64),
        }
        if self.method == "knn_cosine":
            arrays.update(bank=self.bank_, bank_labels=self.bank_labels_.astype(np.int32))
        else:
            arrays.update(zip(("center", "projection", "class_centres"), self._parts))
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> "FamiliarityModel":
        """The model back from to_arrays()' output (a dict, or the NpzFile np.load gives); arrays of version 1
        (one part: 512 block5 values, or 1,024 as one vector) score as they did, with the default unusual band."""
        needed = {"knn_cosine": ("bank", "bank_labels"), "mahalanobis": ("center", "projection", "class_centres")}
        try:
            method = str(arrays["method"])
            if method not in needed:
                raise ValueError(f"unknown method {method!r}")
            version = int(arrays["version"])
            if version not in (1, _ARRAY_VERSION):
                raise ValueError(f"version {version}, this code reads 1 to {_ARRAY_VERSION}")
            k, max_bank, seed, *rest = (int(v) for v in arrays["params"])
            familiar_share = float(arrays["familiar_share"])
            unusual_below = float(arrays["unusual_below"]) if version >= 2 else None  # None: the default band
            model = cls(method=method, k=k, familiar_share=familiar_share, unusual_below=unusual_below,
                        block_width=rest[0] if rest else BLOCK_WIDTH, max_bank=max_bank, seed=seed)
            model._k = int(arrays["k"])
            model.n_parts_ = int(arrays["parts"]) if version >= 2 else 1
            model.calibration_scores_ = np.asarray(arrays["calibration"], dtype=np.float32)
            model.n_train_ = int(arrays["n_train"])
            model.n_features_in_ = int(arrays["n_features"])
            model.classes_ = np.asarray(arrays["classes"], dtype=np.int64)
            if method == "knn_cosine":
                model.bank_ = np.asarray(arrays["bank"], dtype=np.float16)
                model.bank_labels_ = np.asarray(arrays["bank_labels"], dtype=np.int64)
                model._bank = model.bank_.astype(np.float32)
                shape_ok = model.bank_.ndim == 2 and model.bank_.shape[1] == model.n_features_in_
            else:
                model._parts = tuple(np.asarray(arrays[key], dtype=np.float32) for key in needed[method])
                shape_ok = model._parts[0].shape == (model.n_features_in_,)
            shape_ok = shape_ok and model.n_parts_ >= 1 and model.n_features_in_ % model.n_parts_ == 0
            saved = float(arrays["threshold"]), float(arrays["familiar_rate"])
        except KeyError as exc:
            raise ValueError(f"These arrays are not a saved FamiliarityModel: {exc.args[0]!r} is missing.") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"These arrays are not a saved FamiliarityModel: {exc}.") from None
        if not shape_ok or model.calibration_scores_.ndim != 1 or not len(model.calibration_scores_):
            raise ValueError("These arrays are not a saved FamiliarityModel: their shapes do not agree.")
        model._rates()
        model.threshold_, model.familiar_rate_ = saved
        return model

# ---------------------------------------------------------------------------------------------
def drift_summary(familiarity_values, unknown) -> dict:
    """How many new photos look unlike the training photos, as numbers and one sentence for people.

    {"n": photos, "unknown": how many unknown, "share": unknown / n (0.0 for none), "sentence": str}
    """
    fam = np.asarray(familiarity_values, dtype=float)
    flags = np.asarray(unknown)
    if fam.ndim != 1:
        raise ValueError(f"familiarity_values must be a 1-D array, one value per photo; got shape {fam.shape}.")
    if flags.shape != fam.shape:
        raise ValueError(f"unknown must have one flag per photo ({fam.shape}); got shape {flags.shape}.")
    if flags.dtype != bool:
        if flags.size and not np.isin(flags, (0, 1)).all():
            bad = flags[~np.isin(flags, (0, 1))][0]
            raise ValueError(f"unknown must hold True/False flags; got {bad!r}.")
        flags = flags.astype(bool)
    if fam.size and not (np.isfinite(fam).all() and fam.min() >= 0 and fam.max() <= 1):
        bad = fam[~(np.isfinite(fam) & (fam >= 0) & (fam <= 1))][0]
        raise ValueError(f"familiarity values must lie between 0 and 1; got {bad!r}.")
    n, u = int(fam.size), int(flags.sum())
    advice = "consider adding photos like " + ("it" if u == 1 else "them") + "."
    if n == 0:
        sentence = "There are no new photos to check."
    elif n == 1:
        sentence = ("The new photo looks different from what the model learned — " + advice if u
                    else "The new photo looks like the training photos.")
    else:
        everyone = "Both" if n == 2 else f"All {n}"
        if u == 0:
            sentence = f"{everyone} new photos look like the training photos."
        elif u == n:
            sentence = f"{everyone} new photos look different from what the model learned — " + advice
        else:
            verb = "looks" if u == 1 else "look"
            sentence = f"{u} of {n} new photos {verb} different from what the model learned — " + advice
    return {"n": n, "unknown": u, "share": u / n if n else 0.0, "sentence": sentence}
