"""The photo check on a user's photos: VGG16's cached features and out-of-fold predictions, then photo_findings.

The features are the same cached ones a training uses (so after a training the check costs
only the folds, and after the check a training starts from cached features), and the
out-of-fold predictions are the training's own cross-validation. The result also holds a 2-D
map of all photos (the two main directions of their features, by PCA) for the page's scatter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from quasar_core.config import TrainConfig
from quasar_core.photo_findings import Findings, diagnose
from quasar_core.features.cache import FeatureCache
from quasar_core.near_copies import dataset_thumbnails
from quasar_core.progress import Progress, TrainingHooks
from quasar_core.training import TransferClassifier


@dataclass
class PhotoCheck:
    report: Findings
    names: list[str]
    labels: list[str]
    points: np.ndarray  # (n, 2): where each photo lies on the map

    def to_dict(self) -> dict:
        return {"report": self.report.to_dict(), "names": self.names, "labels": self.labels,
                "points": np.round(self.points, 4).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "PhotoCheck":
        return cls(Findings.from_dict(d["report"]), list(d["names"]), list(d["labels"]),
                   np.asarray(d["points"], dtype=np.float32).reshape(-1, 2))


def photo_map(features: np.ndarray) -> np.ndarray:
    """The photos' features projected on their two main directions (PCA of the L2-normalised features)."""
    from sklearn.decomposition import PCA

    x = np.asarray(features, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if len(x) < 3:
        return np.zeros((len(x), 2), dtype=np.float32)
    return PCA(n_components=2, random_state=0).fit_transform(x).astype(np.float32)


def every_photo(hooks: TrainingHooks, total: int) -> TrainingHooks:
    """Progress that counts every photo from the start: "photo 0 of 245" at once, and the photos whose features
    were already cached counted as read (the feature pass itself reports only the photos it still computes)."""

    def on_progress(progress: Progress) -> None:
        if progress.phase == "features" and progress.total_steps < total:
            progress = replace(progress, step=total - progress.total_steps + progress.step, total_steps=total)
        hooks.progress(progress)

    hooks.progress(starting_progress(total))
    return TrainingHooks(on_progress, hooks.on_epoch_end, hooks.on_message)


def starting_progress(total: int) -> Progress:
    """Where a photo check stands before its first photo is read."""
    return Progress("features", 0, total)


def check_photos(dataset, config: TrainConfig, *, cache: FeatureCache | None = None, base_loader=None,
                 hooks: TrainingHooks | None = None, cancel=None) -> PhotoCheck | None:
    """What is probably wrong with these photos (None when cancelled)."""
    hooks = every_photo(hooks or TrainingHooks(), len(dataset))
    classifier = TransferClassifier(config.replace(mode="feature-extraction", augment=False), cache=cache,
                                    base_loader=base_loader)
    if classifier.validate(dataset, hooks=hooks, cancel=cancel) is None:
        return None
    untested_even = 1.0 / len(dataset.labels)  # a photo no fold tested (a lone photo of its class): no opinion
    report = diagnose(classifier.features_, classifier.targets_, class_names=list(dataset.labels),
                      files=[sample.name for sample in dataset.samples],
                      oof_probabilities=np.nan_to_num(classifier.validation_.probabilities(), nan=untested_even),
                      seed=config.seed, thumbnails=dataset_thumbnails(dataset, cache=cache))
    return PhotoCheck(report, [s.name for s in dataset.samples], [s.label for s in dataset.samples],
                   photo_map(classifier.features_))
