"""Training settings: one dataclass, each setting's default, range and one-line help declared once.

The declaration (``setting(...)``, stored in ``dataclasses.field`` metadata) is what the
checks in ``__post_init__``, the CLI's flags (``cli.py``) and the dashboard's settings form
(``ui/settings_form.py``) all read, so a range or a help text is written in one place only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

MODES = ("feature-extraction", "fine-tune")
PRECISIONS = ("auto", "float32", "bfloat16", "int8")
STRATEGIES = ("default", "mirrored", "multi-worker")
# VGG16 halves the image five times; below 32 px nothing is left to pool.
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 512
IMAGE_SIZES = (32, 48, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 448, 512)
LEARNING_RATES = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


@dataclass(frozen=True)
class Spec:
    """How one setting may be set: its label and help for people, and its allowed values."""

    label: str
    help: str
    low: float | None = None  # numbers: the inclusive range
    high: float | None = None
    choices: tuple | None = None  # a fixed set of values
    steps: tuple | None = None  # suggested values for a slider (any value in range is valid)
    unit: str = ""  # shown after the value in words: "224 px"
    section: str = ""  # the settings form's group
    exclusive_high: bool = False  # `high` itself is not allowed (fractions below 1)

    def check(self, name: str, value: Any, default: Any) -> None:
        """Raise ValueError quoting the value when it is not allowed."""
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}.")
            return
        if self.choices is not None and not isinstance(default, (int, float)):
            if value not in self.choices:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, self.choices))}, got {value!r}.")
            return
        if isinstance(default, int):
            if not _is_whole(value) or not self.low <= value <= self.high:
                raise ValueError(f"{name} must be a whole number from {self.low:g} to {self.high:g}, got {value!r}.")
            return
        if isinstance(default, float):
            if not _is_number(value) or not math.isfinite(value):
                raise ValueError(f"{name} must be a number, got {value!r}.")
            above_low = value >= self.low if self.low is not None else True
            below_high = value < self.high if self.exclusive_high else value <= self.high
            if not (above_low and below_high):
                upper = f"below {self.high:g}" if self.exclusive_high else f"at most {self.high:g}"
                raise ValueError(f"{name} must be at least {self.low:g} and {upper}, got {value!r}.")

    def words(self, value: Any) -> str:
        """The value as a person reads it in a model card: "224 px", "on", "0.00001"."""
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, float):
            text = f"{value:.6f}".rstrip("0").rstrip(".")
            return f"{text} {self.unit}".strip()
        return f"{value} {self.unit}".strip()


def setting(default, **spec):
    """A dataclass field whose metadata declares the setting (see Spec)."""
    return field(default=default, metadata={"spec": Spec(**spec)})


def spec_of(cls, name: str) -> Spec:
    return next(f.metadata["spec"] for f in dataclasses.fields(cls) if f.name == name)


def declared(cls) -> list[tuple[str, Any, Spec]]:
    """(name, default, spec) of every declared setting of a settings dataclass, in order."""
    return [(f.name, f.default, f.metadata["spec"]) for f in dataclasses.fields(cls) if "spec" in f.metadata]


def _check_declared(instance) -> None:
    for name, default, spec in declared(type(instance)):
        spec.check(name, getattr(instance, name), default)


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to training photos so the model sees more variety."""

    flip: bool = setting(True, label="Mirror left-right", help="Fine for most objects; not for text or arrows.",
                         section="Augmentation")
    rotation: float = setting(0.05, label="Rotation (share of a full turn)", help="0.05 is about 18 degrees either way.",
                              low=0.0, high=0.5, section="Augmentation")
    zoom: float = setting(0.1, label="Zoom", help="Zoom in or out by up to this share.", low=0.0, high=0.5,
                          section="Augmentation")
    contrast: float = setting(0.1, label="Contrast", help="Change contrast by up to this share.", low=0.0, high=0.5,
                              section="Augmentation")
    views: int = setting(2, label="Copies per photo",
                         help="Augmented copies of each training photo that go through VGG16 once each.",
                         low=1, high=8, section="Augmentation")

    def __post_init__(self):
        _check_declared(self)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a model is trained. Defaults suit a laptop CPU."""

    weights: str = setting("imagenet", label="Starting weights", choices=("imagenet", "none"),
                           help="What VGG16 knows before it sees your photos: 'imagenet', 'none' (random, for "
                                "comparison) or a .weights.h5 file.", section="Starting point")
    mode: str = setting("feature-extraction", label="Training mode", choices=MODES,
                        help="Fine-tuning also adjusts VGG16's top blocks: sometimes a few points better, slower.",
                        section="Starting point")
    image_size: int = setting(128, label="Image size", unit="px", low=MIN_IMAGE_SIZE, high=MAX_IMAGE_SIZE,
                              steps=IMAGE_SIZES, section="Starting point",
                              help="Photos are resized to this square; bigger sees more detail but is slower.")
    # The head is a softmax regression on VGG16's pooled features, fitted by L-BFGS to its optimum, its
    # regularisation chosen on the folds (head.py): no epochs, learning rate or decay to guess.
    class_weights: bool = setting(True, label="Balance uneven classes", section="New top layer",
                                  help="Counts mistakes on rare classes more, so a big class does not dominate.")
    fine_tune_epochs: int = setting(5, label="Fine-tuning epochs", low=0, high=100, section="Fine-tuning",
                                    help="Passes over the photos that also adjust VGG16's top blocks.")
    # At most 4: adjusting all 5 blocks would fine-tune from the raw photo, with no cached activations to start
    # from (the fine-tuning runs on what the frozen blocks computed once).
    fine_tune_blocks: int = setting(1, label="Blocks to adjust", low=1, high=4, section="Fine-tuning",
                                    help="How many of VGG16's 5 blocks, from the top, may change (up to 4).")
    fine_tune_learning_rate: float = setting(1e-5, label="Fine-tuning learning rate", low=1e-7, high=1.0,
                                             exclusive_high=True, steps=LEARNING_RATES, section="Fine-tuning",
                                             help="Keep it small (0.00001) so VGG16 keeps what it knows.")
    batch_size: int = setting(32, label="Batch size", low=1, high=512, section="Fine-tuning",
                              help="Photos per fine-tuning step; 32 suits most data.")
    augment: bool = setting(False, label="Augment the training photos", section="Augmentation",
                            help="Also trains on flipped, turned, zoomed copies: helps with few photos, costs time.")
    augmentation: Augmentation = field(default_factory=Augmentation)
    folds: int = setting(10, label="Cross-validation folds", low=2, high=10, section="Checking",
                         help="Every photo is tested once by a model that did not learn from it; the accuracy shown "
                              "comes from these tests. Above 1,000 photos, at most 5 folds.")
    cv_repeats: int = setting(3, label="Cross-validation repeats", low=1, high=5, section="Checking",
                              help="Up to 1,000 photos, they are dealt into new folds this many times and the tests "
                                   "averaged: a steadier number, a fraction of a second more per repeat.")
    max_cv_photos: int = setting(5000, label="Largest dataset checked by folds", low=10, high=10**7, section="Checking",
                                 help="Above this many photos, one held-out share is used instead of folds.")
    holdout_fraction: float = setting(0.2, label="Held-out share (large data, fine-tuning)", low=0.05, high=0.5,
                                      section="Checking",
                                      help="When folds are not used, this share of the photos is kept for the test.")
    seed: int = setting(0, label="Random seed", low=0, high=2**31 - 1, section="Checking",
                        help="The same seed and photos give the same folds and the same model.")
    precision: str = setting("auto", label="Number precision", choices=PRECISIONS, section="Checking",
                             help="Arithmetic of VGG16's frozen part: 'auto' picks int8 or bfloat16 where this "
                                  "processor runs them fast and they agree with float32 on your photos.")
    strategy: str = setting("default", label="Distribution strategy", choices=STRATEGIES, section="",
                            help="tf.distribute strategy for fine-tuning on several devices or machines.")

    def __post_init__(self):
        if isinstance(self.augmentation, dict):
            known = {f.name for f in dataclasses.fields(Augmentation)}
            unknown = sorted(set(self.augmentation) - known)
            if unknown:
                raise ValueError(f"Unknown augmentation settings: {unknown!r}.")
            object.__setattr__(self, "augmentation", Augmentation(**self.augmentation))
        if not isinstance(self.augmentation, Augmentation):
            raise ValueError(f"augmentation must be an Augmentation or a dict, got {self.augmentation!r}.")
        if not isinstance(self.weights, str) or not self.weights.strip():
            raise ValueError(f"weights must be 'imagenet', 'none' or a file path, got {self.weights!r}.")
        for name, default, spec in declared(type(self)):
            if name != "weights":  # a file path is allowed besides the choices
                spec.check(name, getattr(self, name), default)

    @property
    def fine_tunes(self) -> bool:
        return self.mode == "fine-tune" and self.fine_tune_epochs > 0

    @property
    def views(self) -> int:
        """Copies of each training photo that go through VGG16: 1, or the augmentation's views."""
        return self.augmentation.views if self.augment else 1

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown training settings: {unknown!r}.")
        return cls(**data)

    def in_words(self) -> list[tuple[str, str]]:
        """(label, value in words) for every setting that matters to this run, for people."""
        rows = [("Image size", spec_of(TrainConfig, "image_size").words(self.image_size)),
                ("Starting weights", {"imagenet": "ImageNet", "none": "random (from scratch)"}.get(
                    self.weights, f"from the file {self.weights}")),
                ("Training mode", "fine-tuning" if self.fine_tunes else "feature extraction (VGG16 kept as it is)")]
        skip = {"image_size", "weights", "mode", "strategy"}
        if not self.fine_tunes:
            skip |= {"fine_tune_epochs", "fine_tune_blocks", "fine_tune_learning_rate", "batch_size"}
        for name, _, spec in declared(type(self)):
            if name not in skip:
                rows.append((spec.label, spec.words(getattr(self, name))))
        if self.augment:
            rows += [(spec.label, spec.words(getattr(self.augmentation, name)))
                     for name, _, spec in declared(Augmentation)]
        return rows


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
