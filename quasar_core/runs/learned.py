"""What a run learned, to and from its folder: the head, fine-tuned layers, "none of these".

``classifier_of(run)`` gives the fitted classifier behind a run (a trained one is rebuilt
from its head and the shared VGG16 base; a model opened from a file is that file, checked and
loaded with safe_mode). A few are kept per process, least recently used dropped, so a long-lived
server does not grow with every run a visitor opens.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from quasar_core.data.images import resize_square
from quasar_core.errors import QuasarError
from quasar_core.familiarity import FamiliarityModel
from quasar_core.features.precision import PrecisionChoice
from quasar_core.head import Head, with_features
from quasar_core.runs.folder import FILES, Run, RunWriter
from quasar_core.runs.model_files import load_checked_model
from quasar_core.training import TransferClassifier

KEPT_CLASSIFIERS = 2
_LOCK = threading.Lock()
_KEPT: OrderedDict = OrderedDict()


def save_head(writer: RunWriter, classifier: TransferClassifier) -> None:
    writer.write_arrays(FILES.HEAD, classifier.head_.to_arrays())


def save_learned(writer: RunWriter, classifier: TransferClassifier) -> None:
    save_head(writer, classifier)
    if classifier.tuned_:
        writer.write_arrays(FILES.TUNED, flatten_tuned(classifier.tuned_))
    if getattr(classifier, "familiarity_", None) is not None:
        writer.write_arrays(FILES.FAMILIARITY, classifier.familiarity_.to_arrays())


def flatten_tuned(tuned: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    return {f"{layer}/{number}": value for layer, weights in tuned.items() for number, value in enumerate(weights)}


def _unflatten(arrays: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    tuned: dict[str, list] = {}
    for key in sorted(arrays, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
        tuned.setdefault(key.rsplit("/", 1)[0], []).append(arrays[key])
    return tuned


def familiarity_of(run: Run) -> FamiliarityModel | None:
    arrays = run.arrays(FILES.FAMILIARITY)
    return FamiliarityModel.from_arrays(arrays) if arrays else None


def classifier_of(run: Run, *, base_loader=None):
    """The run's fitted classifier (TransferClassifier, or OpenedModel for a model opened from a file)."""
    key = (str(run.path.resolve()), run.status.finished, run.state)
    with _LOCK:
        if key in _KEPT:
            _KEPT.move_to_end(key)
            return _KEPT[key]
    classifier = _open(run, base_loader)
    with _LOCK:
        _KEPT[key] = classifier
        while len(_KEPT) > KEPT_CLASSIFIERS:
            _KEPT.popitem(last=False)
    return classifier


def forget(run_path) -> None:
    """Drop a run's classifier from memory (it was deleted)."""
    path = str(Path(run_path).resolve())  # kept under the resolved path (see classifier_of)
    with _LOCK:
        for key in [k for k in _KEPT if k[0] == path]:
            del _KEPT[key]


def _open(run: Run, base_loader):
    if not run.has_model:
        raise QuasarError(f"Run {run.name!r} has no usable model ({run.status.message or run.state}). Train again.")
    if run.opened_from_file:
        return OpenedModel(run)
    head = Head.from_arrays(run.arrays(FILES.HEAD))
    tuned = run.arrays(FILES.TUNED)
    precision = PrecisionChoice(run.status.precision, run.status.precision_reason) if run.status.precision else None
    return TransferClassifier.from_learned(run.config, labels=run.labels, head=head,
                                           tuned=_unflatten(tuned) if tuned else None, familiarity=familiarity_of(run),
                                           precision=precision, history=run.history, base_loader=base_loader)


class OpenedModel:
    """A model opened from a file: the same use as a trained classifier (predict, explain, export)."""

    def __init__(self, run: Run):
        self.config, self.labels_, self.history_ = run.config, list(run.labels), list(run.history)
        self.model_ = load_checked_model(run.path / FILES.MODEL)
        self.familiarity_ = familiarity_of(run)
        try:
            self._both = with_features(self.model_)
        except ValueError:  # not a Quasar model: no pooled features to compare
            self._both = None

    def model(self):
        return self.model_

    def predict_proba(self, images, *, with_features: bool = False):
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        size = self.config.image_size
        batch = np.stack([resize_square(image, size) for image in images])
        if with_features and self._both is not None:
            probabilities, features = self._both(batch, training=False)
            return np.asarray(probabilities), np.asarray(features)
        probabilities = np.asarray(self.model_(batch, training=False))
        return (probabilities, None) if with_features else probabilities
