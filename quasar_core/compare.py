"""Transfer vs from scratch, on the user's own data.

The same settings, split and seed train twice per fraction of the training images: with
ImageNet weights and with random weights. Held-out accuracy and training time are measured
on the same test images, so the claim "less data, less time, better accuracy" is shown,
not asserted.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from .config import TrainConfig
from .progress import TrainingHooks, is_cancelled

WEIGHT_KINDS = ("imagenet", "none")


def subsample_train(dataset, train_indices, fraction: float, seed: int) -> np.ndarray:
    """A stratified `fraction` of the training indices (at least one image per class), seeded."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be above 0 and at most 1, got {fraction!r}.")
    rng = np.random.default_rng(seed)
    targets = dataset.targets(train_indices)
    chosen = []
    for label in np.unique(targets):
        members = np.asarray(train_indices)[targets == label]
        keep = max(1, int(round(len(members) * fraction)))
        chosen.append(rng.permutation(members)[:keep])
    return np.sort(np.concatenate(chosen))


def compare_transfer(dataset, config: TrainConfig, *, fractions=(0.25, 0.5, 1.0), split=None, bases=None,
                     hooks: TrainingHooks | None = None, cancel: threading.Event | None = None) -> dict:
    """Train with ImageNet and random weights at each fraction; returns {"results", "conclusion", ...}.

    `bases` maps "imagenet"/"none" to loaded VGG16 bases (loaded here when missing). Stops at
    the next batch when `cancel` is set, returning what finished.
    """
    from .backbone import load_vgg16
    from .data import Split, split_dataset
    from .training import TransferClassifier

    fractions = sorted({float(f) for f in fractions})
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise ValueError(f"fractions must be above 0 and at most 1, got {fraction!r}.")
    hooks = hooks or TrainingHooks()
    split = split or split_dataset(dataset, val_fraction=config.val_fraction,
                                   test_fraction=config.test_fraction or 0.15, seed=config.seed)
    held_out = split.test if len(split.test) else split.val
    test_images = dataset.images(held_out, size=config.image_size)
    y_test = dataset.targets(held_out)
    bases = dict(bases or {})
    results = []
    total = len(fractions) * len(WEIGHT_KINDS)
    for kind in WEIGHT_KINDS:
        weights = config.weights if kind == "imagenet" else "none"
        base = bases.get(kind) or load_vgg16(weights)
        for fraction in fractions:
            if is_cancelled(cancel):
                return _summary(results, cancelled=True)
            hooks.message(f"Training {len(results) + 1} of {total}: "
                          f"{'ImageNet weights' if kind == 'imagenet' else 'from scratch'}, "
                          f"{fraction:.0%} of the training images")
            train = subsample_train(dataset, split.train, fraction, config.seed)
            started = time.perf_counter()
            classifier = TransferClassifier(config.replace(weights=weights), base=base).fit(
                dataset, Split(train, split.val, split.test), hooks=TrainingHooks(hooks.on_progress), cancel=cancel
            )
            seconds = time.perf_counter() - started
            if classifier.model_ is None or classifier.cancelled_:
                return _summary(results, cancelled=True)
            accuracy = float((classifier.predict_proba(test_images).argmax(axis=1) == y_test).mean())
            per_class = np.bincount(dataset.targets(train), minlength=len(dataset.labels))
            results.append({"weights": kind, "fraction": fraction, "images_per_class": int(per_class.min()),
                            "train_images": int(len(train)), "accuracy": accuracy, "train_seconds": seconds,
                            "test_images": int(len(held_out))})
    return _summary(results, cancelled=False)


def _summary(results: list[dict], *, cancelled: bool) -> dict:
    return {"results": results, "conclusion": conclusion(results), "cancelled": cancelled}


def conclusion(results: list[dict]) -> str:
    """One or two sentences from the numbers, e.g. 'With ImageNet weights, 10 images per class gave 93%...'."""
    transfer = [r for r in results if r["weights"] == "imagenet"]
    scratch = [r for r in results if r["weights"] == "none"]
    if not transfer or not scratch:
        return "The comparison did not finish, so there is nothing to conclude yet."
    best_scratch = max(scratch, key=lambda r: (r["accuracy"], -r["images_per_class"]))
    full_scratch = max(scratch, key=lambda r: r["fraction"])
    smallest_transfer = min(transfer, key=lambda r: r["fraction"])
    full_transfer = max(transfer, key=lambda r: r["fraction"])
    text = (f"With ImageNet weights, {smallest_transfer['images_per_class']} images per class gave "
            f"{smallest_transfer['accuracy']:.0%}; from scratch, {full_scratch['images_per_class']} per class gave "
            f"{full_scratch['accuracy']:.0%}.")
    if full_transfer["accuracy"] > best_scratch["accuracy"]:
        text += (f" With all the images, transfer learning reached {full_transfer['accuracy']:.0%} against "
                 f"{best_scratch['accuracy']:.0%} at best from scratch, in "
                 f"{full_transfer['train_seconds']:.0f} s against {full_scratch['train_seconds']:.0f} s.")
    else:
        text += (" On these images training from scratch did as well: the classes may be easy to tell apart "
                 "by colour or shape alone.")
    return text
