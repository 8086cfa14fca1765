"""What the chart builders take: the rows the engine writes, as types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NotRequired, Protocol, TypedDict, Union


class HeadRow(TypedDict):
    """One candidate regularisation of the classifier (``quasar_core.crossval``)."""

    phase: Literal["head"]
    strength: float  # logistic regression C: larger = weaker regularisation
    accuracy: float  # out-of-fold: on photos each fold's classifier had not seen
    log_loss: float  # out-of-fold; the least is chosen
    train_accuracy: float  # on the photos it learned from
    chosen: bool


class FineTuneRow(TypedDict):
    """One fine-tuning epoch (``quasar_core.progress.make_progress_callback``)."""

    phase: Literal["fine-tune"]
    epoch: int  # restarts at 1 for each label
    loss: float | None
    accuracy: float | None
    val_loss: float | None  # None when there are no hold-out photos
    val_accuracy: float | None
    seconds: float
    label: NotRequired[str]  # "hold-out" or "kept model"


class LearningRow(TypedDict):
    """Accuracy on unseen photos when the models learned from a share of the photos (the check's end)."""

    phase: Literal["learning"]
    share: float  # 0.25, 0.5, 0.75 or 1.0 of the photos each model could learn from
    photos: int  # photos learned from, on average per model
    accuracy: float  # on photos each model never saw, 0..1
    low: float  # 95 % interval
    high: float
    tested: int  # photos it was tested on


class CandidateRow(TypedDict):
    """One setting the Best preset tried, once scored (``quasar_core.selection``)."""

    phase: Literal["candidate"]
    setting: str  # plain words: "352 px, 1 augmented copy of each photo"
    image_size: int
    augment: bool
    accuracy: float  # on photos it never saw, 0..1
    low: float  # 95 % interval
    high: float
    photos: int  # photos it was tested on
    seconds: float  # how long scoring it took


class ChoiceRow(TypedDict):
    """The Best preset's choice, after every candidate is scored."""

    phase: Literal["choice"]
    setting: str  # the winner's words
    accuracy: float  # corrected for having picked the best of several
    low: float
    high: float
    reason: str  # one plain sentence


HistoryRow = Union[HeadRow, FineTuneRow, LearningRow, CandidateRow, ChoiceRow]


class ComparisonResult(TypedDict):
    """One setting of ``quasar_core.compare``: starting weights x share of the photos."""

    weights: Literal["imagenet", "none"]
    fraction: float
    images_per_class: int
    train_images: int
    accuracy: float
    accuracy_interval: NotRequired[Sequence[float]]  # [low, high], 95 %
    test_images: int
    train_seconds: float


class ClassAdviceLike(Protocol):
    """What ``learning_curve_figure`` reads of ``quasar_core.class_advice.ClassAdvice``."""

    @property
    def label(self) -> str: ...

    @property
    def count(self) -> int: ...

    @property
    def accuracy(self) -> float: ...

    @property
    def curve(self) -> Sequence[tuple[int, float]]: ...  # (photos, cross-validated accuracy)

    @property
    def more_photos(self) -> int | None: ...
