"""The photo check's findings: the photos that hurt a classifier, found from VGG16's cached pooled features.

Each finding is ranked and capped to what a person can check. The measurements behind the choices
below are in bench/README.md ("Why the engine is built as it is"); bench/bench_photo_check.py and
bench/bench_photo_check_bound.py measure the whole check again.

* **Label issues** — confident learning (cleanlab) on out-of-fold probabilities from an
  ensemble: the mean of a standardised logistic regression (C=0.01, k folds), a leave-one-out
  10-nearest-neighbour vote and a nearest-class-centroid softmax, the last two on power-normalised
  features (signed square root, unit length). The ensemble finds more of the wrong labels than
  one logistic regression, and no other choice tried beat it. cleanlab lists the photos whose
  prediction is not their label, ranked by self-confidence; ``score`` = 1 - cleanlab's label
  quality (1 - probability of the given label), higher = more likely wrong; the suggestion is the
  most probable other class. Caller's out-of-fold probabilities take the logistic regression's
  place. How often the suggestion is right is bounded by the features, not by the method.
* **Near-duplicates** — near_copies.py: power-normalised features with cosine >= 0.925, or
  aligned grey thumbnails far more alike than the photos' look-alikes (when the caller gives
  `thumbnails`: what finds copies of small grayscale photos, which look alike to VGG16), joined
  into groups; groups spanning classes first, then by similarity.
* **Outliers** — photos unlike every class, by the familiarity score ("none of these",
  familiarity.class_scores): the mean cosine distance to the 5 nearest photos of the nearest class
  (each VGG16 block square-rooted and unit-length on its own), itself left out. Listed when above the
  user's own photos' upper fence (third quartile + 1.0 x the interquartile range of every photo's
  score), strangest first; ``score`` = 1 - typical / its distance (0 = typical, 0.5 = twice as far).
  Class by class, a photo of something else stays far even when a few like it were filed in other
  classes: they are not all its neighbours (measured: bench/bench_strangers.py --doctor, bench/README.md).
* **Which class needs more photos** — each class's cross-validated recall learning from
  25/50/75/100 % of the photos; a power law fitted to its error gives the photos that would cut
  its mistakes by a quarter. A class is named alone only if its curve (25 -> 100 %) is steeper
  than every other unfinished class's by 3 standard errors (the steepest curve alone did not
  predict which class gains most from more photos), so usually all are named.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from quasar_core.familiarity_scores import class_scores
from quasar_core.near_copies import NearDuplicate, check_thumbnails, near_duplicates, power_normalise

LR_C = 0.01
NEIGHBOURS = 10
OUTLIER_NEIGHBOURS = 5  # the familiarity score's k
OUTLIER_FENCE = 1.0  # the upper fence: Q3 + 1.0 x IQR of the user's own photos' scores (bench/README: why 1.0)
CENTROID_TEMPERATURE = 0.02
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
GOOD_ENOUGH = 0.97  # a class this accurate needs no more photos
ERROR_CUT = 0.75  # more_photos: photos needed to keep 3/4 of the mistakes (cut a quarter)
MAX_GROWTH = 3.0  # more than 3x the photos a class has is not advice anyone can follow
CLEAR_MARGIN = 3.0  # standard errors by which the steepest curve must beat the next to be named alone


@dataclass(frozen=True)
class LabelIssue:
    file: str
    given: str
    suggested: str
    score: float  # 0..1, higher = more likely wrongly labelled


@dataclass(frozen=True)
class Outlier:
    file: str
    score: float  # 0 = as close to other photos as a typical photo, -> 1 = unlike every photo


@dataclass(frozen=True)
class ClassAdvice:
    label: str
    count: int
    accuracy: float  # cross-validated recall with all the photos
    curve: tuple[tuple[int, float], ...]  # (photos of this class learned from, recall)
    more_photos: int | None  # None: good enough already, or more photos would barely help


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


# --------------------------------------------------------------------------- the ensemble


def _logistic(c=LR_C):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))


def default_fit_predict(train_features, train_labels, test_features) -> np.ndarray:
    """The learning curves' head: logistic regression on standardised features (columns: class ids 0..max)."""
    model = _logistic().fit(np.asarray(train_features, np.float32), train_labels)
    out = np.zeros((len(test_features), int(np.max(train_labels)) + 1))
    out[:, model.classes_] = model.predict_proba(np.asarray(test_features, np.float32))
    return out


def _splits(y, folds, seed):
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _lr_member(x, y, k, splits, views):
    x = x.astype(np.float32)  # half the time of float64 at 5,000 photos, same predictions
    views = None if views is None else views.astype(np.float32)
    p = np.zeros((len(y), k))
    for train, test in splits:
        xs = x[train] if views is None else np.concatenate([x[train], *views[:, train]])
        model = _logistic().fit(xs, np.tile(y[train], 1 if views is None else 1 + len(views)))
        probs = model.predict_proba(x[test])
        if views is not None:
            probs = np.mean([probs, *(model.predict_proba(v[test]) for v in views)], axis=0)
        p[np.ix_(test, model.classes_)] = probs
    return p


def _knn_member(y, k, neighbours, distances):
    cosine = distances**2 / 2  # unit vectors: cosine distance
    weights = np.exp(-cosine / max(float(np.median(cosine)), 1e-12))
    p = np.full((len(y), k), 1e-2)
    for c in range(k):
        p[:, c] += (weights * (y[neighbours] == c)).sum(1)
    return p / p.sum(1, keepdims=True)


def _centroid_member(z, y, k, splits):
    p = np.zeros((len(y), k))
    for train, test in splits:
        centres = np.stack([z[train][y[train] == c].mean(0) for c in range(k)])
        centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
        logits = z[test] @ centres.T / CENTROID_TEMPERATURE
        e = np.exp(logits - logits.max(1, keepdims=True))
        p[test] = e / e.sum(1, keepdims=True)
    return p


# --------------------------------------------------------------------------- the four findings


def _label_issues(y, probs, names, files):
    from cleanlab.count import num_label_issues
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = int(num_label_issues(y, probs))
        ranked = find_label_issues(y, probs, filter_by="predicted_neq_given",
                                   return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(y, probs, method="self_confidence")
    others = probs.copy()
    others[np.arange(len(y)), y] = -1
    suggested = others.argmax(1)
    keep = ranked[: max(1, min(max(10, 2 * expected), len(y) // 4))]
    return tuple(LabelIssue(files[i], names[y[i]], names[suggested[i]], round(float(1 - quality[i]), 4)) for i in keep)


def _outliers(x, y, files):
    """Photos beyond the upper fence of their class-wise familiarity score, strangest first (at most a quarter)."""
    score = class_scores(x, y, k=OUTLIER_NEIGHBOURS).astype(np.float64)
    q1, typical, q3 = np.percentile(score, [25, 50, 75])
    fence = q3 + OUTLIER_FENCE * (q3 - q1)
    order = [i for i in np.argsort(-score, kind="stable") if score[i] > fence and score[i] > typical]
    typical = max(float(typical), 1e-12)
    return tuple(Outlier(files[i], round(float(1 - typical / score[i]), 4)) for i in order[: max(1, len(files) // 4)])


def _curves(x, y, names, splits, fit_predict, seed, full=None):
    k = len(names)
    right = {f: np.zeros(len(y), bool) for f in FRACTIONS}
    learned = {f: np.zeros(k) for f in FRACTIONS}
    rng = np.random.default_rng(seed)
    for train, test in splits:
        order = {c: rng.permutation(train[y[train] == c]) for c in range(k)}  # nested subsets: smoother curves
        for f in FRACTIONS:
            chosen = np.concatenate([o[: max(1, math.ceil(f * len(o)))] for o in order.values()])
            if f == 1 and full is not None:
                probs = full[test]
            else:
                probs = np.asarray(fit_predict(x[chosen], y[chosen], x[test]), dtype=np.float64)
            if probs.shape != (len(test), k) or not np.isfinite(probs).all():
                raise ValueError(f"`fit_predict` must return finite probabilities of shape {(len(test), k)!r}. "
                                 f"Received shape {probs.shape!r}")
            right[f][test] = probs.argmax(1) == y[test]
            learned[f] += np.bincount(y[chosen], minlength=k) / len(splits)
    counts = np.bincount(y, minlength=k)
    advice = []
    for c, name in enumerate(names):
        curve = tuple((int(round(learned[f][c])), round(float(right[f][y == c].mean()), 4)) for f in FRACTIONS)
        slope, error_bar, more = _more_photos(curve, counts[c])
        advice.append((slope, error_bar, ClassAdvice(name, int(counts[c]), curve[-1][1], curve, more)))
    return advice


def _more_photos(curve, count):
    """(slope, its standard error, photos to cut the mistakes by a quarter).

    The slope is the recall gained per photo from the 25 % to the 100 % point (the steadiest
    difference the curve has); the number of photos comes from error = a * photos^-alpha fitted to
    all four points. None: already good enough, flat, or more than MAX_GROWTH x the class has.
    """
    photos = np.array([p for p, _ in curve], float)
    recall = np.array([a for _, a in curve])
    span = max(photos[-1] - photos[0], 1.0)
    slope = (recall[-1] - recall[0]) / span
    error_bar = math.sqrt((recall[0] * (1 - recall[0]) + recall[-1] * (1 - recall[-1])) / max(count, 1)) / span
    error = np.clip(1 - recall, 0.5 / max(count, 1), 1)
    if recall[-1] >= GOOD_ENOUGH or len(set(photos)) < 2:
        return slope, error_bar, None
    alpha = -np.polyfit(np.log(photos), np.log(error), 1)[0]
    if alpha <= 0.05 or slope <= 0:  # flat or falling: more of the same photos would barely help
        return slope, error_bar, None
    needed = photos[-1] * (ERROR_CUT ** (-1 / alpha) - 1)
    if needed > MAX_GROWTH * count:
        return slope, error_bar, None
    return slope, error_bar, int(max(5, 5 * round(needed / 5)))


def _pct(fraction):
    return f"{fraction * 100:.0f} %"


def _advice_sentence(scored):
    """Name the steepest class only when its curve is steeper than the next by CLEAR_MARGIN standard errors."""
    helpful = sorted([t for t in scored if t[2].more_photos is not None], key=lambda t: -t[0])
    if not helpful:
        if all(a.accuracy >= GOOD_ENOUGH for *_, a in scored):
            return "Every class is already recognised well; more photos are unlikely to change much."
        return ("No class is clearly held back by its number of photos: accuracy barely rose with more of them. "
                "Clearer or more varied photos, or checking the labels, would help more.")
    slope, error_bar, best = helpful[0]
    (first, low), (last, high) = best.curve[0], best.curve[-1]
    rivals = sorted([t for t in scored if t[2] is not best and t[2].accuracy < GOOD_ENOUGH], key=lambda t: -t[0])
    if not rivals or slope - rivals[0][0] > CLEAR_MARGIN * math.hypot(error_bar, rivals[0][1]):
        return (f"About {best.more_photos} more photos of {best.label!r} would likely help most: its accuracy rose "
                f"from {_pct(low)} to {_pct(high)} as it learned from {first} and then {last} of its photos, "
                "faster than any other class.")
    if len(helpful) == 1:
        return (f"About {best.more_photos} more photos of {best.label!r} may help: its accuracy rose from {_pct(low)} "
                f"to {_pct(high)} as it learned from {first} and then {last} of its photos, but other classes are "
                "still improving too, so more photos of every class that is often wrong would help as well.")
    names = ", ".join(repr(a.label) for *_, a in helpful[:-1]) + f" and {helpful[-1][2].label!r}"
    needs = sorted(a.more_photos for *_, a in helpful)
    amount = f"about {needs[0]}" if needs[0] == needs[-1] else f"about {needs[0]}–{needs[-1]}"
    return (f"More photos of {names} would help: each is still improving with more photos ({amount} more each "
            f"would cut its mistakes by a quarter), at about the same pace, so the curves cannot tell which needs "
            f"them most; {best.label!r} is climbing a little fastest.")


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
        own = None if given is not None and given[1].all() else _lr_member(x, y, k, splits, views)
        lr = own if given is None else np.where(given[1][:, None], given[0], 0 if own is None else own)
        probs = np.mean([lr, _knn_member(y, k, near, dist), _centroid_member(z, y, k, splits)], axis=0)
        # The default head at 100 % is the ensemble's own logistic regression: reuse its predictions.
        scored = _curves(x, y, names, splits, fit_predict or default_fit_predict, seed,
                         full=own if fit_predict is None and views is None else None)
        copies = near_duplicates(z, y, names, files, thumbs=thumbnails, feature_neighbours=near)
        return Findings(_label_issues(y, probs, names, files), copies,
                            _outliers(x, y, files), tuple(a for *_, a in scored), _advice_sentence(scored))


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
        lines.append(f"{c.label}: {c.count} photos, {_pct(c.accuracy)} recognised in cross-validation.")
    lines.append(report.advice)
    return lines
