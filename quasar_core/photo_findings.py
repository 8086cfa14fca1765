"""The photo check's findings: the photos that hurt a classifier, found from VGG16's cached pooled features.

Each finding is ranked and capped to what a person can check. The measurements behind the choices
are in bench/README.md ("Why the engine is built as it is"); bench/bench_photo_check.py and
bench/bench_photo_check_bound.py measure the whole check again. ``diagnose`` runs all four:

* **Label issues** — label_issues.py: confident learning (cleanlab) on an ensemble's out-of-fold
  probabilities; the suggestion is the most probable other class.
* **Near-duplicates** — near_copies.py: power-normalised features with cosine >= 0.925, or
  aligned grey thumbnails far more alike than the photos' look-alikes (when the caller gives
  `thumbnails`: what finds copies of small grayscale photos, which look alike to VGG16), joined
  into groups; groups spanning classes first, then by similarity.
* **Outliers** — here: photos unlike every class, by the familiarity score ("none of these",
  familiarity.class_scores): the mean cosine distance to the 5 nearest photos of the nearest class
  (each VGG16 block square-rooted and unit-length on its own), itself left out. Listed when above the
  user's own photos' upper fence (third quartile + 1.0 x the interquartile range of every photo's
  score), strangest first; ``score`` = 1 - typical / its distance (0 = typical, 0.5 = twice as far).
  Class by class, a photo of something else stays far even when a few like it were filed in other
  classes: they are not all its neighbours (measured: bench/bench_strangers.py --doctor, bench/README.md).
* **Which class needs more photos** — class_advice.py: each class's cross-validated learning curve;
  a class is named alone only when its curve is clearly the steepest.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from quasar_core.class_advice import ClassAdvice, advice_sentence, learning_curves
from quasar_core.familiarity_scores import class_scores
from quasar_core.label_issues import (NEIGHBOURS, LabelIssue, default_fit_predict, ensemble_probabilities,
                                      logistic_member, ranked_label_issues)
from quasar_core.near_copies import NearDuplicate, check_thumbnails, near_duplicates, power_normalise
from quasar_core.wording import percent

OUTLIER_NEIGHBOURS = 5  # the familiarity score's k
OUTLIER_FENCE = 1.0  # the upper fence: Q3 + 1.0 x IQR of the user's own photos' scores (bench/README: why 1.0)


@dataclass(frozen=True)
class Outlier:
    file: str
    score: float  # 0 = as close to other photos as a typical photo, -> 1 = unlike every photo


@dataclass(frozen=True)
class Findings:
    label_issues: tuple[LabelIssue, ...]
    near_duplicates: tuple[NearDuplicate, ...]
    outliers: tuple[Outlier, ...]
    classes: tuple[ClassAdvice, ...]
    advice: str

    def to_dict(self) -> dict:
        return {
            "label_issues": [asdict(i) for i in self.label_issues],
            "near_duplicates": [{"files": list(d.files), "similarity": d.similarity, "classes": list(d.classes)}
                                for d in self.near_duplicates],
            "outliers": [asdict(o) for o in self.outliers],
            "classes": [{"label": c.label, "count": c.count, "accuracy": c.accuracy, "more_photos": c.more_photos,
                         "curve": [{"photos": p, "accuracy": a} for p, a in c.curve]} for c in self.classes],
            "advice": self.advice,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Findings":
        return cls(
            label_issues=tuple(LabelIssue(str(i["file"]), str(i["given"]), str(i["suggested"]), float(i["score"]))
                               for i in d["label_issues"]),
            near_duplicates=tuple(NearDuplicate(tuple(map(str, g["files"])), float(g["similarity"]),
                                                tuple(map(str, g["classes"]))) for g in d["near_duplicates"]),
            outliers=tuple(Outlier(str(o["file"]), float(o["score"])) for o in d["outliers"]),
            classes=tuple(ClassAdvice(str(c["label"]), int(c["count"]), float(c["accuracy"]),
                                      tuple((int(p["photos"]), float(p["accuracy"])) for p in c["curve"]),
                                      None if c["more_photos"] is None else int(c["more_photos"]))
                          for c in d["classes"]),
            advice=str(d["advice"]),
        )


# --------------------------------------------------------------------------- checks


def _whole(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be a whole number of at least {minimum}. Received: {name}={value!r}")
    return int(value)


def _check(features, labels, class_names, files, oof_probabilities, fit_predict, folds, seed, views):
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"`features` must be a 2-D array of numbers (photos, features). Received shape {x.shape!r}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"`features` must be finite; row {int(np.flatnonzero(~np.isfinite(x).all(1))[0])} is not.")
    n = len(x)
    names = list(class_names) if not isinstance(class_names, str) else None
    if not names or len(names) < 2 or not all(isinstance(c, str) and c for c in names) or len(set(names)) < len(names):
        raise ValueError(f"`class_names` must be at least 2 different non-empty strings. Received: {class_names!r}")
    names = [str(c) for c in names]
    y = np.asarray(labels)
    if y.shape != (n,) or not (np.issubdtype(y.dtype, np.integer) and y.dtype != bool):
        raise ValueError(f"`labels` must be {n} whole class numbers, one per photo. Received shape {y.shape!r}, "
                         f"dtype {y.dtype}")
    bad = y[(y < 0) | (y >= len(names))]
    if len(bad):
        raise ValueError(f"`labels` must lie in 0..{len(names) - 1} (one per class name). Received label {int(bad[0])}")
    counts = np.bincount(y, minlength=len(names))
    for name, count in zip(names, counts):
        if count < 2:
            raise ValueError(f"Class {name!r} has {count} photo(s); the photo check needs at least 2 of each class.")
    file_list = [files] if isinstance(files, str) else list(files)
    if len(file_list) != n or not all(isinstance(f, str) for f in file_list):
        raise ValueError(f"`files` must be {n} names, one per photo. Received {len(file_list)}: {file_list[:3]!r}...")
    if len(set(file_list)) < n:
        seen: set = set()
        twice = next(f for f in file_list if f in seen or seen.add(f))
        raise ValueError(f"`files` must be {n} different names, one per photo. Received {twice!r} twice or more")
    file_list = [str(f) for f in file_list]
    if oof_probabilities is not None:
        p = np.asarray(oof_probabilities, dtype=np.float64)
        if p.shape != (n, len(names)):
            raise ValueError(f"`oof_probabilities` must have shape {(n, len(names))!r}. Received shape {p.shape!r}")
        known = ~np.isnan(p).any(1)  # rows the caller never tested may be all NaN
        wrong = ~known & ~np.isnan(p).all(1) | known & ((p < 0).any(1) | (np.abs(p.sum(1) - 1) > 1e-3))
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            raise ValueError("`oof_probabilities` rows must be probabilities (non-negative, summing to 1) or all NaN. "
                             f"Received row {row}: {p[row].tolist()!r}")
        oof_probabilities = (p, known)
    if fit_predict is not None and not callable(fit_predict):
        raise ValueError(f"`fit_predict` must be a function (train_features, train_labels, test_features) -> "
                         f"probabilities. Received: {fit_predict!r}")
    folds, seed = _whole("folds", folds, 2), _whole("seed", seed, 0)
    if views is not None:
        v = np.asarray(views)
        if v.ndim != 3 or v.shape[1:] != x.shape or not np.issubdtype(v.dtype, np.number) or not np.isfinite(v).all():
            raise ValueError(f"`views` must be finite numbers of shape (views, {n}, {x.shape[1]}). "
                             f"Received shape {v.shape!r}")
        views = v.astype(np.float64)
    return x, y.astype(np.int64), names, file_list, oof_probabilities, folds, seed, views


# --------------------------------------------------------------------------- folds and outliers


def _splits(y, folds, seed):
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _outliers(x, y, files):
    """Photos beyond the upper fence of their class-wise familiarity score, strangest first (at most a quarter)."""
    score = class_scores(x, y, k=OUTLIER_NEIGHBOURS).astype(np.float64)
    q1, typical, q3 = np.percentile(score, [25, 50, 75])
    fence = q3 + OUTLIER_FENCE * (q3 - q1)
    order = [i for i in np.argsort(-score, kind="stable") if score[i] > fence and score[i] > typical]
    typical = max(float(typical), 1e-12)
    return tuple(Outlier(files[i], round(float(1 - typical / score[i]), 4)) for i in order[: max(1, len(files) // 4)])


# --------------------------------------------------------------------------- entry points


def diagnose(features, labels, *, class_names, files, oof_probabilities=None, fit_predict: Callable | None = None,
             folds: int = 5, seed: int = 0, views=None, thumbnails=None) -> Findings:
    """Label issues, near-duplicates, outliers and which class needs more photos (see the module docstring).

    ``features`` (n, d) pooled features; ``labels`` (n,) class ids into ``class_names``; ``files`` the
    data report's names. ``oof_probabilities`` (n, classes), the training's own out-of-fold
    probabilities, replace the ensemble's logistic regression (all-NaN rows: never tested, ours used).
    ``views`` (v, n, d) of augmented copies train it and average its predictions (measured no gain;
    costs (1 + v) x its time). ``fit_predict(train_features, train_labels, test_features) -> (n_test,
    classes)`` is the learning curves' head (default ``default_fit_predict``). Folds are capped at
    the smallest class. ``thumbnails`` (n, crops, pixels) from near_copies.dataset_thumbnails add the
    pixels' evidence to the near-duplicates. Caps: label issues max(10, 2 x cleanlab's estimate), at most n / 4;
    outliers: those above the fence of the photos' own scores, at most n / 4; near-duplicate groups max(50, n / 5).
    """
    x, y, names, files, given, folds, seed, views = _check(
        features, labels, class_names, files, oof_probabilities, fit_predict, folds, seed, views)
    thumbnails = check_thumbnails(thumbnails, len(x))
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    k = len(names)
    splits = _splits(y, min(folds, int(np.bincount(y).min())), seed)
    from sklearn.exceptions import ConvergenceWarning

    with threadpool_limits(1), warnings.catch_warnings():  # small fits: BLAS threads fight on busy cores
        warnings.simplefilter("ignore", ConvergenceWarning)  # 500 L-BFGS steps are plenty for a ranking
        z = power_normalise(x)
        dist, near = NearestNeighbors(n_neighbors=min(NEIGHBOURS, len(y) - 1), algorithm="brute").fit(z).kneighbors()
        own = None if given is not None and given[1].all() else logistic_member(x, y, k, splits, views)
        lr = own if given is None else np.where(given[1][:, None], given[0], 0 if own is None else own)
        probs = ensemble_probabilities(lr, z, y, k, splits, near, dist)
        # The default head at 100 % is the ensemble's own logistic regression: reuse its predictions.
        scored = learning_curves(x, y, names, splits, fit_predict or default_fit_predict, seed,
                                 full=own if fit_predict is None and views is None else None)
        copies = near_duplicates(z, y, names, files, thumbs=thumbnails, feature_neighbours=near)
        return Findings(ranked_label_issues(y, probs, names, files), copies,
                        _outliers(x, y, files), tuple(a for *_, a in scored), advice_sentence(scored))


def readable_report(report: Findings) -> list[str]:
    """The report as plain sentences, most useful first (the CLI prints these lines)."""
    lines = []
    if report.label_issues:
        lines.append(f"{len(report.label_issues)} photos may be labelled wrongly (most likely first; score 0-1, "
                     "higher = more likely wrong). Check each and move or remove it:")
        lines += [f"  {i.file}: labelled {i.given!r}, looks like {i.suggested!r} (score {i.score:.2f})."
                  for i in report.label_issues]
    else:
        lines.append("No photo looks wrongly labelled.")
    if report.near_duplicates:
        lines.append(f"{len(report.near_duplicates)} groups of photos look like copies of one photo; keep one of each:")
        for d in report.near_duplicates:
            where = (f"in different classes ({', '.join(dict.fromkeys(d.classes))})" if len(set(d.classes)) > 1
                     else f"all in {d.classes[0]!r}")
            lines.append(f"  {', '.join(d.files)}: {where}, similarity {d.similarity:.2f}.")
    if report.outliers:
        lines.append(f"{len(report.outliers)} photos look least like the others (score 0-1, higher = more unusual); "
                     "check they belong in the dataset:")
        lines += [f"  {o.file} (score {o.score:.2f})." for o in report.outliers]
    for c in report.classes:
        lines.append(f"{c.label}: {c.count} photos, {percent(c.accuracy, 0)} recognised in cross-validation.")
    lines.append(report.advice)
    return lines
