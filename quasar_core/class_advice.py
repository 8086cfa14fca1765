"""The photo check's advice on which class needs more photos, from each class's learning curve.

Each class's cross-validated recall learning from 25/50/75/100 % of the photos; a power law fitted to
its error gives the photos that would cut its mistakes by a quarter. A class is named alone only if its
curve (25 -> 100 %) is steeper than every other unfinished class's by 3 standard errors (the steepest
curve alone did not predict which class gains most from more photos: bench/README.md, "Why the engine
is built as it is"), so usually all are named.

photo_findings.diagnose runs it with the other findings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from quasar_core.wording import percent

FRACTIONS = (0.25, 0.5, 0.75, 1.0)
GOOD_ENOUGH = 0.97  # a class this accurate needs no more photos
ERROR_CUT = 0.75  # more_photos: photos needed to keep 3/4 of the mistakes (cut a quarter)
MAX_GROWTH = 3.0  # more than 3x the photos a class has is not advice anyone can follow
CLEAR_MARGIN = 3.0  # standard errors by which the steepest curve must beat the next to be named alone


@dataclass(frozen=True)
class ClassAdvice:
    label: str
    count: int
    accuracy: float  # cross-validated recall with all the photos
    curve: tuple[tuple[int, float], ...]  # (photos of this class learned from, recall)
    more_photos: int | None  # None: good enough already, or more photos would barely help


def learning_curves(x, y, names, splits, fit_predict, seed, full=None) -> list[tuple[float, float, ClassAdvice]]:
    """(slope, its standard error, ClassAdvice) per class, `fit_predict` learning from nested FRACTIONS of each
    training fold; `full`: out-of-fold probabilities that stand for its 100 % point."""
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


def advice_sentence(scored) -> str:
    """Name the steepest class only when its curve is steeper than the next by CLEAR_MARGIN standard errors."""
    helpful = sorted([t for t in scored if t[2].more_photos is not None], key=lambda t: -t[0])
    if not helpful:
        if all(a.accuracy >= GOOD_ENOUGH for *_, a in scored):
            return "Every class is already recognised well; more photos are unlikely to change much."
        return ("No class is clearly held back by its number of photos: accuracy barely rose with more of them. "
                "Clearer or more varied photos, or checking the labels, would help more.")
    slope, error_bar, best = helpful[0]
    (first, low), (last, high) = best.curve[0], best.curve[-1]
    rose = f"its accuracy rose from {percent(low, 0)} to {percent(high, 0)} as it learned from {first} and then {last}"
    rivals = sorted([t for t in scored if t[2] is not best and t[2].accuracy < GOOD_ENOUGH], key=lambda t: -t[0])
    if not rivals or slope - rivals[0][0] > CLEAR_MARGIN * math.hypot(error_bar, rivals[0][1]):
        return (f"About {best.more_photos} more photos of {best.label!r} would likely help most: {rose} of its photos, "
                "faster than any other class.")
    if len(helpful) == 1:
        return (f"About {best.more_photos} more photos of {best.label!r} may help: {rose} of its photos, but other "
                "classes are still improving too, so more photos of every class that is often wrong would help as "
                "well.")
    names = ", ".join(repr(a.label) for *_, a in helpful[:-1]) + f" and {helpful[-1][2].label!r}"
    needs = sorted(a.more_photos for *_, a in helpful)
    amount = f"about {needs[0]}" if needs[0] == needs[-1] else f"about {needs[0]}–{needs[-1]}"
    return (f"More photos of {names} would help: each is still improving with more photos ({amount} more each "
            f"would cut its mistakes by a quarter), at about the same pace, so the curves cannot tell which needs "
            f"them most; {best.label!r} is climbing a little fastest.")
