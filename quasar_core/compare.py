"""Transfer vs from scratch, on the user's own photos, with the same honest numbers as training.

Two ways to learn from the same photos, each tested on photos its model never saw:

* **Transfer**: VGG16 with its ImageNet weights reads the photos once (usually already in the
  feature cache from the training) and a softmax regression learns on its features, from 25, 50
  and 100 % of each fold's learning photos, on the training's own folds: every photo is tested,
  so each accuracy comes with its interval over the same photos.
* **From scratch**: a small standard CNN (SCRATCH_ARCHITECTURE: four blocks of 3x3 convolution,
  batch normalisation, ReLU and 2x2 max pooling with 32, 64, 128 and 256 filters, global average
  pooling, a dense layer) starts from random weights and learns *every* layer from the photos,
  end to end (Adam, random left-right flips), at min(image size, SCRATCH_MAX_SIDE) px for a stated
  budget (ScratchBudget: SCRATCH_EPOCHS epochs, fewer on many photos). One such training costs
  minutes, not milliseconds, so it learns once: from the photos outside the first fold group
  (the first 2 folds of 10 of the first dealing, the share fine-tuning is measured on) and is
  tested on that group's photos; the transfer model's answers on exactly those photos are kept
  beside it, so the two are compared photo for photo.

Time per setting is what a training would take: for transfer, the measured VGG16 time per photo
times the photos it learns from plus the head's fits; from scratch, the network's own training time.
Results saved before the small CNN existed hold "none": VGG16's architecture with random weights,
frozen, under a trained linear head (the features of VGG16's architecture without its ImageNet
knowledge); they are still shown, named as that.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from quasar_core import backbone
from quasar_core.config import TrainConfig
from quasar_core.crossval import cross_validate, folds_for
from quasar_core.data.images import resize_square
from quasar_core.data.split import Folds, subsample
from quasar_core.evaluation import wilson_interval
from quasar_core.features.cache import FeatureCache, FeatureSpec
from quasar_core.features.extract import FeaturePass, network_provider
from quasar_core.features.precision import choose_precision
from quasar_core.near_copies import fold_thumbnails
from quasar_core.planning import seconds_per_photo
from quasar_core.progress import Progress, TrainingHooks, is_cancelled
from quasar_core.wording import estimate, percent, plural

FRACTIONS = (0.25, 0.5, 1.0)  # shares of the photos the transfer model learns from
WEIGHT_KINDS = ("imagenet", "scratch")
# how each kind of result is named wherever it is shown ("none": comparisons saved before the small CNN)
WEIGHTS_WORDS = {"imagenet": "ImageNet weights (transfer)",
                 "scratch": "random weights: a small CNN trained from scratch",
                 "none": "VGG16's architecture without its ImageNet knowledge"}
SCRATCH_ARCHITECTURE = "4 blocks of convolution, batch normalisation, ReLU and max pooling (32, 64, 128, 256 filters)"
SCRATCH_FILTERS = (32, 64, 128, 256)
SCRATCH_MAX_SIDE = 96  # px: the from-scratch network's photos (min(the run's size, this))
SCRATCH_EPOCHS = 30
SCRATCH_MAX_SEEN = 30_000  # photo-passes at most: fewer epochs on many photos (1,000 photos: 30 epochs)
SCRATCH_BATCH = 32
SCRATCH_LEARNING_RATE = 1e-3
SCRATCH_STEP = "Training a small network from scratch on your photos"
SCRATCH_PHASE = "training from scratch"  # its progress's phase (the CLI's bar shows it as it is)


@dataclass(frozen=True)
class ScratchBudget:
    """What the from-scratch network may spend: its photos' side (at most), epochs (at most), photo-passes."""

    max_side: int = SCRATCH_MAX_SIDE
    epochs: int = SCRATCH_EPOCHS
    max_seen: int = SCRATCH_MAX_SEEN

    def side(self, image_size: int) -> int:
        return int(min(image_size, self.max_side))

    def epochs_for(self, photos: int) -> int:
        return int(max(1, min(self.epochs, self.max_seen // max(photos, 1))))


def compare_transfer(dataset, config: TrainConfig, *, fractions=FRACTIONS, base_loaders=None,
                     cache: FeatureCache | None = None, hooks: TrainingHooks | None = None,
                     cancel: threading.Event | None = None, scratch: ScratchBudget | None = None) -> dict:
    """{"results": [...], "conclusion", "cancelled", "method"}; stops at the next batch when `cancel` is set.

    `base_loaders` maps "imagenet" to a function returning the loaded VGG16 base; `scratch` the from-scratch
    network's budget (default: ScratchBudget() with this module's constants).
    """
    fractions = sorted({float(f) for f in fractions})
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise ValueError(f"fractions must be above 0 and at most 1, got {fraction!r}.")
    hooks = hooks or TrainingHooks()
    scratch = scratch or ScratchBudget(SCRATCH_MAX_SIDE, SCRATCH_EPOCHS, SCRATCH_MAX_SEEN)
    base_loaders = base_loaders or {}
    targets = dataset.targets()
    # "auto" resolves as a training would (so the training's cached features are found), without the
    # int8 agreement check: give the precision the run used (its status says) to reuse int8 features.
    precision = choose_precision(config.precision, agreement=lambda: 0.0).precision
    if backbone.resolve_weights(config.weights) is None and precision == "int8":
        precision = "float32"  # random weights have no weights file for int8 to quantise
    results = []
    hooks.message("Reading the photos through VGG16 with ImageNet weights (1 of 2)")
    loader = base_loaders.get("imagenet") or backbone.base_loader(config.weights, seed=config.seed)
    spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, precision)
    feature_pass = FeaturePass(spec=spec, cache=cache, hooks=hooks, cancel=cancel, seed=config.seed,
                               network_for=network_provider(weights=config.weights, image_size=config.image_size,
                                                            precision=precision, base_loader=loader, cache=cache))
    started = time.perf_counter()
    views = feature_pass.features(dataset, np.arange(len(dataset)))
    if views is None:
        return _summary(results, cancelled=True, folds=None)
    per_photo = (time.perf_counter() - started) / max(feature_pass.computed, 1) if feature_pass.computed else None
    # the same folds for every setting (and as the training's): comparable photo by photo
    folds = folds_for(views[0], targets, config.replace(mode="feature-extraction"),
                      thumbs=fold_thumbnails(dataset, cache=cache))
    transfer_right = None
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
        right_photos = np.full(len(dataset), False)
        right_photos[folds.tested] = validation.predicted() == targets[folds.tested]
        transfer_right = right_photos  # the last is the largest share: what "from scratch" is set against
        right, tested = int(right_photos.sum()), len(folds.tested)
        results.append({
            "weights": "imagenet", "fraction": fraction,
            "images_per_class": int(np.bincount(targets[learned], minlength=len(dataset.labels)).min()),
            "train_images": int(len(learned)), "accuracy": right / tested,
            "accuracy_interval": list(wilson_interval(right, tested)), "test_images": tested,
            "train_seconds": (per_photo or _per_photo_estimate(config)) * len(learned) + head_seconds,
        })
    learn, test = scratch_split(folds, config)
    hooks.message(f"{SCRATCH_STEP} (2 of 2)")
    found = train_from_scratch(dataset, learn, test, config, scratch, hooks=hooks, cancel=cancel)
    if found is None:
        return _summary(results, cancelled=True, folds=folds)
    right = int(found["right"].sum())
    against = int(transfer_right[test].sum())
    theirs = transfer_right[test]
    results.append({
        "weights": "scratch", "fraction": 1.0,
        "images_per_class": int(np.bincount(targets[learn], minlength=len(dataset.labels)).min()),
        "train_images": int(len(learn)), "accuracy": right / len(test),
        "accuracy_interval": list(wilson_interval(right, len(test))), "test_images": int(len(test)),
        "train_seconds": found["seconds"], "image_size": found["side"], "epochs": found["epochs"],
        "against": against / len(test), "against_interval": list(wilson_interval(against, len(test))),
        # photo by photo on the same photos: what a paired (sign) test of the difference needs
        "transfer_only": int((theirs & ~found["right"]).sum()), "scratch_only": int((found["right"] & ~theirs).sum()),
    })
    return _summary(results, cancelled=False, folds=folds, scratch=results[-1])


def scratch_split(folds: Folds, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(photos the from-scratch network learns from, photos it is tested on): the first fold group of the first
    dealing (about `holdout_fraction` of the photos: 2 folds of 10) against the others, copies kept together as
    the folds keep them; a hold-out's own test share where the training measured on one."""
    first = folds.partitions()[0]
    if first.n_folds > 1:
        group = max(1, round(first.n_folds * config.holdout_fraction))
        tested = (first.assignment >= 0) & (first.assignment < group)
    else:
        tested = first.assignment == 0
    return np.flatnonzero(~tested), np.flatnonzero(tested)


def scratch_network(n_classes: int, side: int, *, seed: int = 0):
    """The from-scratch network: SCRATCH_ARCHITECTURE on side x side RGB (uint8 in, logits out), random
    left-right flips while it learns; every layer trainable, every weight from a seeded random start."""
    import keras

    inputs = keras.Input((side, side, 3), dtype="uint8", name="photo")
    x = keras.layers.RandomFlip("horizontal", seed=seed, name="flip")(inputs)
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(x)
    for number, filters in enumerate(SCRATCH_FILTERS, 1):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{number}",
                                kernel_initializer=keras.initializers.HeNormal(seed=seed + number))(x)
        # momentum 0.9, not Keras' 0.99: a few hundred steps must be enough for the statistics the test uses
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{number}")(x)
        x = keras.layers.ReLU(name=f"relu{number}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{number}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="average")(x)
    outputs = keras.layers.Dense(n_classes, name="logits",
                                 kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 99))(x)
    return keras.Model(inputs, outputs, name="small_cnn_from_scratch")


def scratch_photos(dataset, indices, side: int) -> np.ndarray:
    """(n, side, side, 3) uint8: the photos through THE resize, as the feature pass sees them."""
    out = np.empty((len(indices), side, side, 3), dtype=np.uint8)
    for row, index in enumerate(indices):
        out[row] = np.clip(np.rint(resize_square(dataset.pixels(int(index)), side)), 0, 255)
    return out


def train_from_scratch(dataset, learn, test, config: TrainConfig, budget: ScratchBudget, *,
                       hooks: TrainingHooks | None = None, cancel: threading.Event | None = None,
                       keep_model: bool = False) -> dict | None:
    """Train scratch_network on the `learn` photos, every layer, and answer the `test` photos. Returns
    {"right": per test photo, "seconds", "side", "epochs"} (and "model" with `keep_model`), or None when
    cancelled."""
    import keras

    from quasar_core.progress import make_progress_callback

    hooks = hooks or TrainingHooks()
    started = time.perf_counter()
    side, epochs = budget.side(config.image_size), budget.epochs_for(len(learn))
    targets = dataset.targets()
    n_classes = len(dataset.labels)
    x_learn, y_learn = scratch_photos(dataset, learn, side), targets[learn]
    if is_cancelled(cancel):
        return None
    model = scratch_network(n_classes, side, seed=config.seed)
    model.compile(optimizer=keras.optimizers.Adam(SCRATCH_LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    weights = None
    if config.class_weights:  # as the transfer head: a rare class's mistakes count more
        counts = np.bincount(y_learn, minlength=n_classes)
        weights = {c: float(len(y_learn) / (n_classes * counts[c])) for c in range(n_classes) if counts[c]}
    progress = make_progress_callback(SCRATCH_PHASE, hooks, cancel, label="from scratch")
    model.fit(x_learn, y_learn, batch_size=SCRATCH_BATCH, epochs=epochs, verbose=0, shuffle=True,
              class_weight=weights, callbacks=[progress])
    if is_cancelled(cancel):
        return None
    hooks.progress(Progress(SCRATCH_PHASE, 1, 1))
    x_test = scratch_photos(dataset, test, side)
    logits = np.concatenate([np.asarray(model(x_test[i:i + 64], training=False)) for i in range(0, len(test), 64)]) \
        if len(test) else np.zeros((0, n_classes), np.float32)
    found = {"right": logits.argmax(axis=1) == targets[test], "seconds": time.perf_counter() - started,
             "side": side, "epochs": epochs}
    if keep_model:
        found["model"] = model
    return found


def _per_photo_estimate(config: TrainConfig) -> float:
    """Seconds per photo of the feature pass when every feature came from the cache (nothing was timed)."""
    return seconds_per_photo(config)


def _summary(results: list[dict], *, cancelled: bool, folds, scratch: dict | None = None) -> dict:
    method = folds.describe() if folds is not None else ""
    if method and scratch is not None:
        method += (f"; the small CNN trained from scratch once, on the other {scratch['train_images']} photos, and "
                   f"tested on {plural(scratch['test_images'], 'photo')} of the first folds")
    return {"results": results, "conclusion": conclusion(results), "cancelled": cancelled, "method": method}


def scratch_words(result: dict) -> str:
    """"a small CNN trained from scratch (4 blocks of ...; every layer learned from your photos, 30 epochs at
    96 px)"."""
    return (f"a small CNN trained from scratch ({SCRATCH_ARCHITECTURE}; every layer learned from your photos, "
            f"{plural(int(result.get('epochs', SCRATCH_EPOCHS)), 'epoch')} at {result.get('image_size', '?')} px)")


def _overlap(a: dict, b: dict) -> bool:
    (low_a, high_a), (low_b, high_b) = a["accuracy_interval"], b["accuracy_interval"]
    return low_a <= high_b and low_b <= high_a


def conclusion(results: list[dict]) -> str:
    """Two or three sentences from the numbers, saying whether a difference is larger than the uncertainty.

    Against the small CNN, both are scored on the same photos (the ones it was tested on); comparisons saved
    before it (kind "none") are read as they were, with their own name."""
    transfer = sorted((r for r in results if r["weights"] == "imagenet"), key=lambda r: r["fraction"])
    scratch = [r for r in results if r["weights"] == "scratch"]
    frozen = sorted((r for r in results if r["weights"] == "none"), key=lambda r: r["fraction"])
    if not transfer or not (scratch or frozen):
        return "The comparison did not finish, so there is nothing to conclude yet."
    small = transfer[0]
    text = (f"With ImageNet weights, {small['images_per_class']} photos per class gave "
            f"{estimate(small['accuracy'], small['accuracy_interval'])}")
    if scratch:
        other = scratch[-1]
        full_t = {"accuracy": other["against"], "accuracy_interval": other["against_interval"]}
        words = scratch_words(other)
        text += (f". {words[0].upper()}{words[1:]}, learning from {other['images_per_class']} photos per class, got "
                 f"{estimate(other['accuracy'], other['accuracy_interval'])} of the "
                 f"{plural(other['test_images'], 'photo')} it never saw, where transfer got "
                 f"{percent(other['against'], 0)}.")
        names = "starting from ImageNet", "training from scratch"
    else:
        other, full_t = frozen[-1], transfer[-1]
        text += (f"; VGG16's architecture without its ImageNet knowledge (random weights, frozen), all "
                 f"{other['images_per_class']} per class, gave "
                 f"{estimate(other['accuracy'], other['accuracy_interval'])}.")
        names = "starting from ImageNet", "VGG16's architecture without its ImageNet knowledge"
    gap = full_t["accuracy"] - other["accuracy"]
    if "transfer_only" in other:  # the same photos, photo by photo: a paired sign test
        gains, losses = other["transfer_only"], other["scratch_only"]
        pairs = f" ({plural(gains, 'photo')} right only with ImageNet, {losses} only from scratch)"
        if gap > 0 and gains - losses >= max(2, 1.96 * (gains + losses) ** 0.5):
            return text + (f" On the same photos, {names[0]} is {gap * 100:.0f} points better{pairs}, more than "
                           "chance on this many photos: the difference is real.")
        if gap > 0:
            return text + (f" On the same photos, {names[0]} scored {gap * 100:.0f} points higher{pairs}, but on "
                           "this many photos the difference may be chance.")
        return text + (f" On these photos {names[1]} did as well: the classes may be easy to tell apart by colour "
                       "or shape alone.")
    if gap > 0 and not _overlap(full_t, other):
        text += (f" On the same photos, {names[0]} is {gap * 100:.0f} points better, more than the uncertainty of "
                 "either number: the difference is real.")
    elif gap > 0:
        text += (f" On the same photos, {names[0]} scored {gap * 100:.0f} points higher, but the ranges overlap: "
                 "on this many photos the difference may be chance.")
    else:
        text += (f" On these photos {names[1]} did as well: the classes may be easy to tell apart by colour or "
                 "shape alone.")
    return text
