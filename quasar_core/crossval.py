"""Honest numbers from cached features: every photo predicted by a head that never learned from it.

For each fold and each candidate regularisation, a head learns from the other folds' photos
(and their augmented views) and predicts the fold's photos as they are. The candidate with
the least out-of-fold log loss is chosen. When the folds are dealt more than once, the chosen
candidate learns again on each further dealing, and a photo's out-of-fold probabilities are
the mean over dealings; those are what accuracy, the per-class table, the confusion matrix,
the mistakes and the photo check are made from (the calibration learns from each dealing's logits:
the kept model is one head, not a mean). VGG16 is not run here at all: a fold costs tens of
milliseconds.

Why 10 folds dealt 3 times: the kept head learns from every photo, a fold's from the others only,
so the estimate leans low, and one dealing's luck moves it. Ten folds take the lean out better
than five, and the dealings most of what remains (bench/bench_folds.py; figures in bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quasar_core.data.split import Folds, cross_validation_folds, holdout_folds
from quasar_core.evaluation import wilson_interval
from quasar_core.head import STRENGTHS, fit_head, fit_temperature, softmax
from quasar_core.near_copies import copy_groups
from quasar_core.progress import Progress, TrainingHooks, is_cancelled


@dataclass
class CrossValidation:
    folds: Folds
    strength: float  # the chosen candidate
    candidates: list[dict]  # per strength: {"strength", "accuracy", "log_loss", "train_accuracy"} (first dealing)
    logits: np.ndarray  # (n, classes) out-of-fold logits of the chosen candidate; NaN rows: never tested
    repeat_logits: tuple = ()  # the same from each further dealing of the folds
    note: str = ""  # how the answers were chosen, when it is more than the folds (Best's choice among settings)

    @property
    def tested(self) -> np.ndarray:
        return self.folds.tested

    def probabilities(self, temperature: float = 1.0) -> np.ndarray:
        """(n, classes) out-of-fold probabilities, the mean over dealings; NaN rows: never tested."""
        return np.mean([softmax(logits / temperature) for logits in (self.logits, *self.repeat_logits)], axis=0)

    def predicted(self) -> np.ndarray:
        """Each tested photo's out-of-fold class (indices as in `tested`)."""
        return self.probabilities()[self.tested].argmax(axis=1)

    def stacked_logits(self, targets) -> tuple[np.ndarray, np.ndarray]:
        """Every dealing's out-of-fold logits of the tested photos, one row per photo and dealing, and their
        targets: what one head says of photos it never saw (the temperature is fitted on these)."""
        tested = self.tested
        rows = np.concatenate([logits[tested] for logits in (self.logits, *self.repeat_logits)])
        return rows, np.tile(np.asarray(targets)[tested], 1 + len(self.repeat_logits))

    def cross_fitted_probabilities(self, targets) -> np.ndarray:
        """(n, classes) out-of-fold probabilities calibrated out of sample: each fold's photos by a temperature
        fitted on the other folds' answers (a single held-out share: each half by the other half's), so the
        calibration is judged on photos that did not fit it. NaN rows: never tested."""
        targets = np.asarray(targets, dtype=np.int64)
        tested = self.tested
        groups = self.folds.assignment.copy()
        if self.folds.n_folds < 2:  # a hold-out: two halves, by position
            groups[tested] = np.arange(len(tested)) % 2
        everyone = (self.logits, *self.repeat_logits)
        result = np.full(self.logits.shape, np.nan, dtype=np.float32)
        for group in np.unique(groups[tested]):
            inside, outside = groups == group, (groups >= 0) & (groups != group)
            if not outside.any():
                outside = inside
            temperature = fit_temperature(np.concatenate([logits[outside] for logits in everyone]),
                                          np.tile(targets[outside], len(everyone)))
            result[inside] = np.mean([softmax(logits[inside] / temperature) for logits in everyone], axis=0)
        return result

    def to_dict(self) -> dict:
        return {"strength": self.strength, "candidates": self.candidates, "folds": self.folds.to_dict()}


def _log_loss(logits, targets) -> float:
    p = softmax(logits).astype(np.float64)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(targets)), targets], 1e-12, None))))


def _out_of_fold(views, targets, folds: Folds, strengths, *, n_classes, class_weights, learn_subset, hooks,
                 cancel, done=0, steps=1):
    """{strength: (n, classes) logits}, {strength: [training accuracy per fold]} for one dealing; None if cancelled."""
    n = len(targets)
    logits = {s: np.full((n, n_classes), np.nan, dtype=np.float32) for s in strengths}
    train_right = {s: [] for s in strengths}
    for fold in range(folds.n_folds):
        train, test = folds.split(fold)
        if learn_subset is not None:
            train = learn_subset(train)
        x = views[:, train].reshape(-1, views.shape[-1])
        y = np.tile(targets[train], views.shape[0])
        for strength in strengths:
            if is_cancelled(cancel):
                return None
            head = fit_head(x, y, n_classes=n_classes, strength=strength, class_weights=class_weights)
            logits[strength][test] = _logits(head, views[0], test)
            train_right[strength].append(float((_logits(head, views[0], train).argmax(1) == targets[train]).mean()))
            done += 1
            hooks.progress(Progress("head", done, steps))
    return logits, train_right


def _logits(head, features, rows, *, chunk: int = 16384) -> np.ndarray:
    """head.logits(features[rows]), a chunk of rows at a time above `chunk` rows: many photos' features are not
    copied out whole (head_at_scale)."""
    if len(rows) <= chunk:
        return head.logits(features[rows])
    return np.concatenate([head.logits(features[rows[start : start + chunk]]) for start in range(0, len(rows), chunk)])


def cross_validate(views: np.ndarray, targets, folds: Folds, *, n_classes: int, class_weights: bool = True,
                   strengths=STRENGTHS, hooks: TrainingHooks | None = None, cancel=None,
                   learn_subset=None) -> CrossValidation | None:
    """Out-of-fold logits for each strength; `views` is (v, n, d) with view 0 the photos themselves.

    The strength is chosen on the first dealing of `folds`; further dealings train the chosen one only.
    `learn_subset(indices)` may narrow each fold's learning photos (Compare's 25 % and 50 %).
    Returns None when cancelled.
    """
    hooks = hooks or TrainingHooks()
    targets = np.asarray(targets, dtype=np.int64)
    views = np.asarray(views, dtype=np.float32)
    n = len(targets)
    if views.ndim != 3 or views.shape[1] != n:
        raise ValueError(f"views must have shape (views, {n}, features), got {views.shape!r}.")
    if len(folds.assignment) != n:
        raise ValueError(f"folds must give all {n} photos a fold, got {len(folds.assignment)}.")
    first, *others = folds.partitions()
    steps = folds.n_folds * (len(strengths) + len(others))
    common = dict(n_classes=n_classes, class_weights=class_weights, learn_subset=learn_subset, hooks=hooks,
                  cancel=cancel, steps=steps)
    found = _out_of_fold(views, targets, first, strengths, **common)
    if found is None:
        return None
    logits, train_right = found
    tested = folds.tested
    candidates = []
    for strength in strengths:
        chosen = logits[strength][tested]
        candidates.append({"strength": float(strength),
                           "accuracy": float((chosen.argmax(1) == targets[tested]).mean()),
                           "log_loss": _log_loss(chosen, targets[tested]),
                           "train_accuracy": float(np.mean(train_right[strength]))})
    best = min(candidates, key=lambda c: (c["log_loss"], -c["accuracy"]))
    repeats = []
    for number, dealing in enumerate(others):
        found = _out_of_fold(views, targets, dealing, (best["strength"],), done=folds.n_folds * (len(strengths) + number),
                             **common)
        if found is None:
            return None
        repeats.append(found[0][best["strength"]])
    for candidate in candidates:
        hooks.epoch_end({"phase": "head", **candidate, "chosen": candidate is best})
    return CrossValidation(folds, best["strength"], candidates, logits[best["strength"]], tuple(repeats))


# Above this many photos, at most MANY_PHOTOS_FOLDS folds dealt once: the folds' smaller share of the
# photos and one dealing's luck matter less there (on 200 photos they moved the estimate by points),
# while every fold and dealing costs its fits again, times the six settings Compare tries (the
# figures: bench/README.md).
MANY_PHOTOS = 1000
MANY_PHOTOS_FOLDS = 5


def fold_plan(n_photos: int, config, *, smallest_class: int | None = None) -> tuple[int, int]:
    """(folds, dealings) of the cross-validation of `n_photos` photos under `config`; no more folds than
    the smallest class has photos, when given."""
    folds, dealings = (min(config.folds, MANY_PHOTOS_FOLDS), 1) if n_photos > MANY_PHOTOS else \
        (config.folds, config.cv_repeats)
    return (folds if smallest_class is None else max(2, min(folds, smallest_class))), dealings


def folds_for(features, targets, config, *, thumbs=None) -> Folds:
    """The folds a training (and Compare, on the same photos) is measured on: stratified k-fold cross-
    validation as `fold_plan` says, or one held-out share above `config.max_cv_photos` photos or when
    fine-tuning; near-copies (by features, and by `thumbs` when given: near_copies.fold_thumbnails) stay
    on one side."""
    targets = np.asarray(targets, dtype=np.int64)
    groups = copy_groups(features, thumbs=thumbs)  # a copy never tests the model that learned from its twin
    if len(targets) > config.max_cv_photos or config.fine_tunes:
        return holdout_folds(targets, fraction=config.holdout_fraction, seed=config.seed, groups=groups)
    folds, dealings = fold_plan(len(targets), config, smallest_class=int(np.bincount(targets).min()))
    return cross_validation_folds(targets, n_folds=folds, seed=config.seed, groups=groups, repeats=dealings)


LEARNING_SHARES = (0.25, 0.5, 0.75)


def learning_curve(views, targets, validation: CrossValidation, *, n_classes: int, class_weights: bool = True,
                   seed: int = 0, shares=LEARNING_SHARES) -> list[dict]:
    """Accuracy on photos the models never saw when they learn from a share of the photos, at the chosen
    strength on the first dealing's folds, then on all of them (the estimate itself): what more photos
    bought. Rows {"phase": "learning", "share", "photos", "accuracy", "low", "high", "tested"}; none for a
    hold-out (one model is no curve)."""
    folds, targets = validation.folds, np.asarray(targets, dtype=np.int64)
    tested = folds.tested
    if folds.n_folds < 2 or not len(tested):
        return []
    first = folds.partitions()[0]
    rng = np.random.default_rng(seed)
    rows = []
    for share in shares:
        right, learned = 0, []
        for fold in range(first.n_folds):
            train, test = first.split(fold)
            keep = _stratified_share(train, targets, share, rng)
            if len(np.unique(targets[keep])) < 2:
                return []  # too few photos a class for this share: no curve rather than a wrong one
            x = views[:, keep].reshape(-1, views.shape[-1])
            head = fit_head(x, np.tile(targets[keep], views.shape[0]), n_classes=n_classes,
                            strength=validation.strength, class_weights=class_weights)
            right += int((head.logits(views[0, test]).argmax(1) == targets[test]).sum())
            learned.append(len(keep))
        rows.append(_learning_row(share, float(np.mean(learned)), right, len(tested)))
    right = int((validation.probabilities()[tested].argmax(1) == targets[tested]).sum())
    learned = np.mean([len(first.split(fold)[0]) for fold in range(first.n_folds)])
    return rows + [_learning_row(1.0, float(learned), right, len(tested))]


def _stratified_share(indices, targets, share, rng) -> np.ndarray:
    picks = [rng.permutation(indices[targets[indices] == c])[: max(1, round(share * np.sum(targets[indices] == c)))]
             for c in np.unique(targets[indices])]
    return np.sort(np.concatenate(picks))


def _learning_row(share, photos, right, tested) -> dict:
    low, high = wilson_interval(right, tested)
    return {"phase": "learning", "share": share, "photos": int(round(photos)), "accuracy": right / tested,
            "low": low, "high": high, "tested": tested}
