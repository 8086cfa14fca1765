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

The score's arithmetic, shared with the photo check's ``class_scores``, is in familiarity_scores.py; a
batch of answers in words for people (``drift_summary``) is in familiarity_drift.py.
"""

from __future__ import annotations

import numbers

import numpy as np

from quasar_core.familiarity_scores import (BLOCK_WIDTH, CHUNK, as_features, as_labels, by_parts, is_int, is_real,
                                            kmean, knn_view, mahalanobis, mahalanobis_parts, parts_of, stratified)

__all__ = ["FamiliarityModel", "SCORING_SNIPPET", "METHODS", "UNUSUAL_BELOW"]

METHODS = ("knn_cosine", "mahalanobis")
UNUSUAL_BELOW = 0.20  # familiarity under which a photo that is not unknown is "unusual" (bench/README: why)
MAX_CALIBRATION = 2000  # training photos scored out-of-fold for the calibration (stratified subsample above)
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
def _check_params(method, k, familiar_share, unusual_below, block_width, max_bank, seed):
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in METHODS)}; got {method!r}.")
    if not is_int(k) or k < 1:
        raise ValueError(f"k (how many nearest training photos) must be a whole number >= 1; got {k!r}.")
    if (isinstance(familiar_share, bool) or not isinstance(familiar_share, numbers.Real)
            or not 0 < float(familiar_share) < 1):
        raise ValueError(f"familiar_share must be a number between 0 and 1, e.g. 0.975; got {familiar_share!r}.")
    if (isinstance(unusual_below, bool) or not isinstance(unusual_below, numbers.Real)
            or not 1 - float(familiar_share) - _TIE <= float(unusual_below) < 1):
        raise ValueError(f"unusual_below must be a number from 1 - familiar_share ({1 - float(familiar_share):.3g}, "
                         f"no unusual band) up to 1, e.g. {UNUSUAL_BELOW}; got {unusual_below!r}.")
    if not is_int(block_width) or block_width < 1:
        raise ValueError(f"block_width must be a whole number >= 1; got {block_width!r}.")
    if not is_int(max_bank) or max_bank < 2:
        raise ValueError(f"max_bank must be a whole number >= 2; got {max_bank!r}.")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0; got {seed!r}.")


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
            unusual_below = max(UNUSUAL_BELOW, 1 - familiar_share) if is_real(familiar_share) else UNUSUAL_BELOW
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
        x = as_features(features, min_rows=2)
        y = as_labels(labels, len(x))
        rng = np.random.default_rng(self.seed)
        for stale in ("bank_", "bank_labels_", "_bank", "_parts"):  # from an earlier fit with another method
            self.__dict__.pop(stale, None)
        self.n_features_in_, self.n_train_ = int(x.shape[1]), int(len(x))
        self.n_parts_ = parts_of(self.n_features_in_, self.block_width)
        self.classes_ = np.unique(y)
        cal_idx = stratified(y, MAX_CALIBRATION, rng)
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
        view = knn_view(x, self.n_parts_)
        bank_idx = stratified(y, int(self.max_bank), rng)
        self.bank_ = view[bank_idx].astype(np.float16)
        self.bank_labels_ = y[bank_idx]
        self._bank = self.bank_.astype(np.float32)
        self._k = int(min(self.k, len(bank_idx) - 1))
        position = np.full(len(x), -1)
        position[bank_idx] = np.arange(len(bank_idx))
        out = []
        for s in range(0, len(cal_idx), CHUNK):  # leave-one-out: a photo is not its own neighbour
            rows = cal_idx[s:s + CHUNK]
            d = 1 - view[rows] @ self._bank.T
            own = position[rows]
            hit = np.flatnonzero(own >= 0)
            d[hit, own[hit]] = np.inf
            out.append(kmean(d, self._k))
        return np.concatenate(out)

    def _fit_mahalanobis(self, x, y, cal_idx, rng):
        xn = by_parts(x, self.n_parts_)
        self._parts = mahalanobis_parts(xn, y)
        self._k = int(self.k)
        folds = min(_FOLDS, len(x))
        fold = rng.permutation(len(x)) % folds
        scores = np.full(len(x), np.nan, dtype=np.float32)
        for f in range(folds):  # out-of-fold: each photo scored by a model fitted without it
            held = np.flatnonzero(fold == f)
            held = held[np.isin(held, cal_idx)]
            if len(held):
                parts = mahalanobis_parts(xn[fold != f], y[fold != f])
                scores[held] = mahalanobis(xn[held], *parts)
        return scores[cal_idx]

    # -- scoring --------------------------------------------------------------------------
    def _check_fitted(self):
        if getattr(self, "calibration_scores_", None) is None:
            raise ValueError("This FamiliarityModel is not fitted yet: call fit() or from_arrays() first.")

    def raw_scores(self, features) -> np.ndarray:
        """(m,) float32 strangeness (larger = stranger): the quantity the calibration ranks."""
        self._check_fitted()
        x = as_features(features, n_features=self.n_features_in_)
        out = []
        for s in range(0, len(x), CHUNK):
            q = x[s:s + CHUNK]
            if self.method == "knn_cosine":
                out.append(kmean(1 - knn_view(q, self.n_parts_) @ self._bank.T, self._k))
            else:
                out.append(mahalanobis(by_parts(q, self.n_parts_), *self._parts))
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
