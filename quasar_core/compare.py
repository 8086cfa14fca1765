"""Transfer vs from scratch, on the user's own photos, with the same honest numbers as training.

VGG16 runs twice over the photos — once with ImageNet weights (usually already in the feature
cache from the training) and once with random weights — and never again: 25, 50 and 100 % of
the photos are subsets of those two passes. For each kind of start and each share, heads learn
on the same folds from that share of each fold's learning photos and are tested on every
photo, so all six accuracies come with intervals over the same photos and a difference can be
seen to be real or not. Time per setting is what a training would take: the measured VGG16
time per photo times the photos it learns from, plus the head's fits.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from quasar_core import backbone
from quasar_core.config import TrainConfig
from quasar_core.crossval import cross_validate, folds_for
from quasar_core.data.split import subsample
from quasar_core.evaluation import wilson_interval
from quasar_core.features.cache import FeatureCache, FeatureSpec
from quasar_core.features.extract import FeaturePass, network_provider
from quasar_core.features.precision import choose_precision
from quasar_core.near_copies import fold_thumbnails
from quasar_core.planning import seconds_per_photo
from quasar_core.progress import TrainingHooks, is_cancelled
from quasar_core.wording import estimate

FRACTIONS = (0.25, 0.5, 1.0)  # shares of the photos each kind of start learns from
WEIGHT_KINDS = ("imagenet", "none")
WEIGHTS_WORDS = {"imagenet": "ImageNet weights", "none": "from scratch"}
PASS_WORDS = {"imagenet": "ImageNet weights", "none": "random weights (from scratch)"}


def compare_transfer(dataset, config: TrainConfig, *, fractions=FRACTIONS, base_loaders=None,
                     cache: FeatureCache | None = None, hooks: TrainingHooks | None = None,
                     cancel: threading.Event | None = None) -> dict:
    """{"results": [...], "conclusion", "cancelled", "method"}; stops at the next batch when `cancel` is set.

    `base_loaders` maps "imagenet"/"none" to functions returning loaded VGG16 bases.
    """
    fractions = sorted({float(f) for f in fractions})
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise ValueError(f"fractions must be above 0 and at most 1, got {fraction!r}.")
    hooks = hooks or TrainingHooks()
    base_loaders = base_loaders or {}
    targets = dataset.targets()
    # "auto" resolves as a training would (so the training's cached features are found), without the
    # int8 agreement check: give the precision the run used (its status says) to reuse int8 features.
    precision = choose_precision(config.precision, agreement=lambda: 0.0).precision
    results = []
    folds = None
    for number, kind in enumerate(WEIGHT_KINDS):
        weights = config.weights if kind == "imagenet" else "none"
        hooks.message(f"Reading the photos through VGG16 with {PASS_WORDS[kind]} ({number + 1} of 2)")
        loader = base_loaders.get(kind) or backbone.base_loader(weights, seed=config.seed)
        # Random weights have no weights file for int8 to quantise: that pass runs in float32.
        kind_precision = "float32" if precision == "int8" and backbone.resolve_weights(weights) is None else precision
        spec = FeatureSpec(backbone.weights_id(weights, seed=config.seed), config.image_size, kind_precision)
        feature_pass = FeaturePass(spec=spec, cache=cache, hooks=hooks, cancel=cancel, seed=config.seed,
                                   network_for=network_provider(weights=weights, image_size=config.image_size,
                                                                precision=kind_precision, base_loader=loader,
                                                                cache=cache))
        started = time.perf_counter()
        views = feature_pass.features(dataset, np.arange(len(dataset)))
        if views is None:
            return _summary(results, cancelled=True, folds=folds)
        per_photo = (time.perf_counter() - started) / max(feature_pass.computed, 1) if feature_pass.computed else None
        if folds is None:  # the same folds for every setting (and as the training's): comparable photo by photo
            folds = folds_for(views[0], targets, config.replace(mode="feature-extraction"),
                              thumbs=fold_thumbnails(dataset, cache=cache))
        for fraction in fractions:
            if is_cancelled(cancel):
                return _summary(results, cancelled=True, folds=folds)
            started = time.perf_counter()
            validation = cross_validate(views, targets, folds, n_classes=len(dataset.labels),
                                        class_weights=config.class_weights, cancel=cancel,
                                        learn_subset=lambda learn, f=fraction: subsample(targets, learn, f, config.seed))
            if validation is None:
                return _summary(results, cancelled=True, folds=folds)
            head_seconds = (time.perf_counter() - started) / folds.n_folds
            learned = subsample(targets, np.arange(len(dataset)), fraction, config.seed)
            right = int((validation.predicted() == targets[folds.tested]).sum())
            tested = len(folds.tested)
            results.append({
                "weights": kind, "fraction": fraction,
                "images_per_class": int(np.bincount(targets[learned], minlength=len(dataset.labels)).min()),
                "train_images": int(len(learned)), "accuracy": right / tested,
                "accuracy_interval": list(wilson_interval(right, tested)), "test_images": tested,
                "train_seconds": (per_photo or _per_photo_estimate(config)) * len(learned) + head_seconds,
            })
    return _summary(results, cancelled=False, folds=folds)


def _per_photo_estimate(config: TrainConfig) -> float:
    """Seconds per photo of the feature pass when every feature came from the cache (nothing was timed)."""
    return seconds_per_photo(config)


def _summary(results: list[dict], *, cancelled: bool, folds) -> dict:
    method = folds.describe() if folds is not None else ""
    return {"results": results, "conclusion": conclusion(results), "cancelled": cancelled, "method": method}


def _overlap(a: dict, b: dict) -> bool:
    return a["accuracy_interval"][0] <= b["accuracy_interval"][1] and b["accuracy_interval"][0] <= a["accuracy_interval"][1]


def conclusion(results: list[dict]) -> str:
    """Two or three sentences from the numbers, saying whether a difference is larger than the uncertainty."""
    transfer = sorted((r for r in results if r["weights"] == "imagenet"), key=lambda r: r["fraction"])
    scratch = sorted((r for r in results if r["weights"] == "none"), key=lambda r: r["fraction"])
    if not transfer or not scratch:
        return "The comparison did not finish, so there is nothing to conclude yet."
    small, full_t, full_s = transfer[0], transfer[-1], scratch[-1]
    text = (f"With ImageNet weights, {small['images_per_class']} photos per class gave "
            f"{estimate(small['accuracy'], small['accuracy_interval'])}; from scratch, all "
            f"{full_s['images_per_class']} per class gave {estimate(full_s['accuracy'], full_s['accuracy_interval'])}.")
    gap = full_t["accuracy"] - full_s["accuracy"]
    if gap > 0 and not _overlap(full_t, full_s):
        text += (f" With all the photos, starting from ImageNet is {gap * 100:.0f} points better, more than the "
                 "uncertainty of either number: the difference is real.")
    elif gap > 0:
        text += (f" With all the photos, starting from ImageNet scored {gap * 100:.0f} points higher, but the "
                 "ranges overlap: on this many photos the difference may be chance.")
    else:
        text += (" On these photos training from scratch did as well: the classes may be easy to tell apart by "
                 "colour or shape alone.")
    return text
