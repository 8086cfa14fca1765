"""Familiarity: does a new photo look like the photos the model was trained on?

A classifier of ants and bees answers "ants (97 %)" for a photo of a dog: its softmax only
chooses between the classes it knows. This module gives every prediction a second number, a
**familiarity** in 0..1, computed from the VGG16 pooled features the engine caches for every
training photo (global average of block5_pool, 512 floats), and calls a photo *unknown* when it
is stranger than almost all training photos.

How
---
Score ("strangeness", larger = stranger): the mean cosine distance from the photo's
power-normalised features (square root, then L2-normalised) to its k = 5 nearest training
photos. Calibration: every training photo is scored leave-one-out (it is not its own
neighbour), and those scores, sorted, are kept. A new photo's familiarity is the share of
training photos whose own out-of-fold score is at least as strange as the new photo's (an
empirical p-value); it is *unknown* when familiarity < 1 - familiar_share, so by construction
about ``familiar_share`` (default 97.5 %) of photos like the training ones count as familiar.

Why this method (measured)
--------------------------
Flowers stand in for the insects (no insect photos offline): for all 10 pairs of 5 flower
classes x 3 random splits, 125 training / 175 unseen photos per class, VGG16 at 224 px,
familiar_share 0.975. "own" = unseen photos of the two classes called unknown (target <= 10 %);
"OOD mix" = mean unknown rate over Fashion-MNIST clothing (150), digits (180: drawn with fonts +
sklearn 8x8), real non-flower photos at 224 px (60 crops of a temple/lake/tree photo) and the same
as 32 px "CIFAR-style" photos upscaled (target >= 90 %):

    method (avg-pooled 512)               own (worst pair)  OOD mix (worst)  32px photos  other flowers
    kNN cosine, sqrt, k=5   <- chosen      2.4 (5.1)        98.7 (95.2)      95.6         9.2
    kNN cosine, k=5                        2.9 (6.6)        96.7 (94.3)      87.1         9.6
    Mahalanobis, shared LW cov, L2 feats   2.8 (5.1)        97.2 (95.1)      89.7         8.4
    kNN cosine sqrt k=5 + Mahalanobis      2.8 (5.7)        98.2 (94.1)      93.4         9.5
    kNN Euclidean on standardised, k=5     3.9 (6.9)        63.9 (58.5)      53.2         8.3
    kNN cosine sqrt k=5, avg|max (1024)    2.6 (5.4)        97.3 (83.2)      91.8         7.5

The square root before the cosine is what lifts small upscaled photos (87 -> 96 %); adding
max-pooled features does not help, so the engine's 512 avg-pooled features are enough. k in
1..20 barely matters (k=5 is a little steadier than 1). Euclidean distance on standardised
features fails on digits (30 %). Mahalanobis is close but weaker on 32 px photos and ~20x slower
to fit (10 folds). familiar_share 0.95 gives own 5.1 % / OOD 99.7 %; 0.99 gives 0.8 % / 94.5 %:
0.975 keeps a margin on both targets. Limits: other flower species (same domain) are mostly
called familiar (~9 % unknown), and smooth colour blobs / textures ~80 %. With 20 photos per class
the calibration is the largest of 40 scores: own 2.9 % on average but up to 18 % on an unlucky
split; with 1,200 training photos own 2.3 %, OOD 99.3 %. Fit on 5,000 x 512: 0.3 s (bank 4,000
float16, 2,000 calibration photos); scoring 1,000 photos 0.1 s.

Saving: ``to_arrays()`` gives plain numpy arrays (float16 bank of training features, at most
``max_bank`` photos, stratified by class) for an ``.npz``; ``from_arrays`` scores identically.
``SCORING_SNIPPET`` is the same scoring as plain numpy source for exported apps.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

__all__ = ["FamiliarityModel", "SCORING_SNIPPET", "drift_summary", "METHODS"]

METHODS = ("knn_cosine", "mahalanobis")
MAX_CALIBRATION = 2000  # training photos scored out-of-fold for the calibration (stratified subsample above)
_CHUNK = 512  # rows scored at a time: bounds memory at _CHUNK x bank floats
_FOLDS = 10  # out-of-fold calibration of the Mahalanobis score
_ARRAY_VERSION = 1

SCORING_SNIPPET = '''\
import numpy as np

def familiarity(features, arrays):
    """(familiarity in 0..1, unknown) for (m, d) pooled VGG16 features; arrays = FamiliarityModel.to_arrays()."""
    x = np.atleast_2d(np.asarray(features, dtype=np.float32))
    method, k = str(arrays["method"]), int(arrays["k"])
    bank = arrays["bank"].astype(np.float32) if method == "knn_cosine" else None
    scores = []
    for s in range(0, len(x), 512):  # 512 photos at a time bounds memory
        q = x[s:s + 512]
        if method == "knn_cosine":  # mean cosine distance to the k nearest training photos
            q = np.sqrt(np.maximum(q, 0))
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), np.float32(1e-12))
        if method == "knn_cosine":
            d = 1 - q @ bank.T
            scores.append(np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1))
        else:  # mahalanobis: squared distance to the nearest class centre, shared whitened covariance
            z = (q - arrays["center"]) @ arrays["projection"]
            scores.append(((z[:, None, :] - arrays["class_centres"][None]) ** 2).sum(axis=-1).min(axis=1))
    score = np.concatenate(scores) if scores else np.zeros(0, np.float32)
    calibration = arrays["calibration"]  # the training photos' own out-of-fold scores, sorted
    fam = (len(calibration) - np.searchsorted(calibration, score, side="left")) / len(calibration)
    return fam, fam < 1 - float(arrays["familiar_share"]) - 1e-9  # (1e-9: 1 - 0.975 is 0.025000000000000022)
'''



# ---------------------------------------------------------------------------------------------
# checks
def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_params(method, k, familiar_share, max_bank, seed):
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in METHODS)}; got {method!r}.")
    if not _is_int(k) or k < 1:
        raise ValueError(f"k (how many nearest training photos) must be a whole number >= 1; got {k!r}.")
    if (isinstance(familiar_share, bool) or not isinstance(familiar_share, numbers.Real)
            or not 0 < float(familiar_share) < 1):
        raise ValueError(f"familiar_share must be a number between 0 and 1, e.g. 0.975; got {familiar_share!r}.")
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


def _knn_view(x: np.ndarray) -> np.ndarray:
    """Square root then unit length. VGG16's pooled features are >= 0 and a few channels dominate them;
    the square root (a Hellinger-style power normalisation) evens those out."""
    return _unit(np.sqrt(np.maximum(x, 0)))


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


# ---------------------------------------------------------------------------------------------
class FamiliarityModel:
    """How familiar photos look, from their pooled VGG16 features, against the training photos'.

    Parameters (keywords only)
    --------------------------
    method : "knn_cosine" (default): mean cosine distance to the k nearest training photos, on
        square-rooted, unit-length features; or "mahalanobis": squared distance to the nearest
        class mean under the shared within-class covariance (Ledoit-Wolf), on unit-length features
        (needs labels to be class-conditional; without them, one class).
    k : how many nearest training photos the kNN score averages over.
    familiar_share : the share of photos like the training ones that should count as familiar.
    max_bank : the most training photos kept for kNN scoring (stratified by class above it).
    seed : for the subsampling and the Mahalanobis folds.

    Learned: ``calibration_scores_`` (the training photos' out-of-fold scores, sorted; at most
    MAX_CALIBRATION of them, stratified), ``threshold_`` (the largest score still familiar),
    ``familiar_rate_`` (share of those training photos familiar out-of-fold: about familiar_share),
    ``bank_`` (float16) and ``bank_labels_`` (kNN), ``classes_``, ``n_features_in_``, ``n_train_``.
    """

    def __init__(self, *, method="knn_cosine", k=5, familiar_share=0.975, max_bank=4000, seed=0):
        _check_params(method, k, familiar_share, max_bank, seed)
        self.method = method
        self.k = k
        self.familiar_share = familiar_share
        self.max_bank = max_bank
        self.seed = seed

    # -- fitting --------------------------------------------------------------------------
    def fit(self, features, labels=None) -> "FamiliarityModel":
        """Learn from (n, d) training features (n >= 2) and optional int class ids, one per photo."""
        _check_params(self.method, self.k, self.familiar_share, self.max_bank, self.seed)
        x = _as_features(features, min_rows=2)
        y = _as_labels(labels, len(x))
        rng = np.random.default_rng(self.seed)
        for stale in ("bank_", "bank_labels_", "_bank", "_parts"):  # from an earlier fit with another method
            self.__dict__.pop(stale, None)
        self.n_features_in_, self.n_train_ = int(x.shape[1]), int(len(x))
        self.classes_ = np.unique(y)
        cal_idx = _stratified(y, MAX_CALIBRATION, rng)
        if self.method == "knn_cosine":
            calibration = self._fit_knn(x, y, cal_idx, rng)
        else:
            calibration = self._fit_mahalanobis(x, y, cal_idx, rng)
        self.calibration_scores_ = np.sort(calibration.astype(np.float32))
        familiar = ~self._unknown_of(self._familiarity_of(self.calibration_scores_))
        self.familiar_rate_ = float(familiar.mean())
        self.threshold_ = float(self.calibration_scores_[familiar].max())
        return self

    def _fit_knn(self, x, y, cal_idx, rng):
        view = _knn_view(x)
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
        xn = _unit(x)
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
                out.append(_kmean(1 - _knn_view(q) @ self._bank.T, self._k))
            else:
                out.append(_mahalanobis(_unit(q), *self._parts))
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _familiarity_of(self, scores) -> np.ndarray:
        cal = self.calibration_scores_
        return (len(cal) - np.searchsorted(cal, scores, side="left")) / len(cal)

    def _unknown_of(self, fam) -> np.ndarray:
        # exact ties count as familiar: in floats 1 - 0.975 is 0.025000000000000022, which would flag 1/40
        return fam < 1 - float(self.familiar_share) - 1e-9

    def familiarity(self, features) -> np.ndarray:
        """(m,) in 0..1: the share of training photos whose own out-of-fold score is at least as strange
        (1 = as ordinary as the most typical training photo; 0 = stranger than all of them)."""
        return self._familiarity_of(self.raw_scores(features))

    def is_unknown(self, features) -> np.ndarray:
        """(m,) bool: familiarity < 1 - familiar_share (stranger than all but that share of training photos)."""
        return self._unknown_of(self.familiarity(features))

    # -- saving ---------------------------------------------------------------------------
    def describe(self) -> str:
        """The threshold and how often the user's own photos were called unknown, in words."""
        self._check_fitted()
        text = (f"A photo counts as unlike anything the model learned when it looks stranger, to VGG16, than "
                f"{self.familiar_share * 100:.1f} % of the training photos do. Tested on its own photos (each "
                f"against the others), {(1 - self.familiar_rate_) * 100:.1f} % of them were called unknown.")
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
            "familiar_share": np.array(float(self.familiar_share)),
            "calibration": self.calibration_scores_,
            "threshold": np.array(self.threshold_),
            "familiar_rate": np.array(self.familiar_rate_),
            "params": np.array([int(self.k), int(self.max_bank), int(self.seed)], dtype=np.int64),
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
        """The model back from to_arrays()' output (a dict, or the NpzFile np.load gives)."""
        needed = {"knn_cosine": ("bank", "bank_labels"), "mahalanobis": ("center", "projection", "class_centres")}
        try:
            method = str(arrays["method"])
            if method not in needed:
                raise ValueError(f"unknown method {method!r}")
            if int(arrays["version"]) != _ARRAY_VERSION:
                raise ValueError(f"version {int(arrays['version'])}, this code reads {_ARRAY_VERSION}")
            k, max_bank, seed = (int(v) for v in arrays["params"])
            model = cls(method=method, k=k, familiar_share=float(arrays["familiar_share"]), max_bank=max_bank,
                        seed=seed)
            model._k = int(arrays["k"])
            model.calibration_scores_ = np.asarray(arrays["calibration"], dtype=np.float32)
            model.threshold_ = float(arrays["threshold"])
            model.familiar_rate_ = float(arrays["familiar_rate"])
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
        except KeyError as exc:
            raise ValueError(f"These arrays are not a saved FamiliarityModel: {exc.args[0]!r} is missing.") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"These arrays are not a saved FamiliarityModel: {exc}.") from None
        if not shape_ok or model.calibration_scores_.ndim != 1 or not len(model.calibration_scores_):
            raise ValueError("These arrays are not a saved FamiliarityModel: their shapes do not agree.")
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
