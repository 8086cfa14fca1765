"""A run's answers as the product gives them: VGG16's features through the feature pass, then the head's arrays.

``served_model(run)`` answers new photos (``quasar predict``, the Predict page, ``quasar evaluate``, and
the check of the light shared app) the way the run learned: VGG16's frozen part runs batched through
the feature pass (features/extract.py) in int8 through ONNX Runtime where the training used it (and this
machine has it), else in float32 like the kept model (a bfloat16 training's features only rounded float32's), photos
streamed from their source a batch at a time and dropped, and the head's probabilities are computed
from the run's head arrays in numpy (head.Head: square root, standardise, dense, softmax with the
temperature). No Keras model is assembled for that; a run whose VGG16 was fine-tuned, or a model
opened from a file, is answered by its kept Keras model instead, a batch at a time.

The kept model (model.keras, float32) learned nothing else: its answers differ from these only by the
int8 arithmetic, which the training checked on the first photos (cosine at least 0.99); the tests
compare the two on photos.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from quasar_core import backbone
from quasar_core.features import int8, vgg16_onnx
from quasar_core.features.cache import FeatureCache, FeatureSpec
from quasar_core.features.extract import FeaturePass, network_provider
from quasar_core.head import LEGACY_LAYERS, Head
from quasar_core.progress import PhaseTimer, Progress, TrainingHooks
from quasar_core.runs.folder import FILES, Run
from quasar_core.runs.learned import classifier_of, familiarity_of

KEPT = 2  # served models kept per process (each may hold an ONNX Runtime session or a Keras model)
KERAS_CHUNK = 16  # photos a call when the kept Keras model answers
_LOCK = threading.Lock()
_KEPT: OrderedDict = OrderedDict()


class ServedModel:
    """What answers for a run: ``answer(dataset, indices)`` and ``predict_proba(images)``.

    ``route``: "feature pass" (VGG16 in ``precision`` + the head's arrays) or "kept model" (fine-tuned or
    opened from a file: the Keras model); ``reason`` says why, in words.
    """

    def __init__(self, run: Run, *, base_loader=None, cache: FeatureCache | None = None):
        self.run, self.config, self.labels_ = run, run.config, list(run.labels)
        self.familiarity_ = familiarity_of(run)
        self.cache = cache
        self._base_loader = base_loader
        tuned = run.arrays(FILES.TUNED) if not run.opened_from_file else None
        if run.opened_from_file or tuned:
            self.route, self.head, self.precision = "kept model", None, "float32"
            self.reason = ("a model opened from a file answers by itself" if run.opened_from_file else
                           "VGG16 was fine-tuned: the kept model holds its own top layers")
            return
        self.route = "feature pass"
        self.head = Head.from_arrays(run.arrays(FILES.HEAD))
        trained = run.status.precision or "float32"
        if trained == "int8" and not int8.runtime_available():
            self.precision, self.reason = "float32", "the training ran int8, but ONNX Runtime is not installed here"
        elif trained == "int8":
            self.precision, self.reason = "int8", "as in training (int8)"
        else:  # float32, as the kept model (bfloat16 only rounds it, and was slower than float32 where measured)
            self.precision, self.reason = "float32", f"float32, as the kept model (the training ran {trained})"
        self._network_for = network_provider(weights=self.config.weights, image_size=self.config.image_size,
                                             precision=self.precision, base_loader=self._base, cache=cache)

    def _base(self):
        if self._base_loader is None:
            self._base_loader = backbone.base_loader(self.config.weights, seed=self.config.seed)
        return self._base_loader()

    # --- answers ----------------------------------------------------------------------------------
    def answer(self, dataset, indices, *, hooks: TrainingHooks | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities (n, classes), pooled features (n, d) or None) of the photos of `dataset` at `indices`."""
        indices = np.asarray(indices, dtype=np.int64)
        hooks = hooks or TrainingHooks()
        if self.route == "kept model":
            return self._kept_model_answer(dataset, indices, hooks)
        spec = FeatureSpec(backbone.weights_id(self.config.weights, seed=self.config.seed), self.config.image_size,
                           self.precision)
        feature_pass = FeaturePass(spec=spec, network_for=self._network_for, cache=self.cache, hooks=hooks)
        features = feature_pass.features(dataset, indices)[0] if len(indices) else \
            np.zeros((0, vgg16_onnx.FEATURES), np.float32)
        hooks.progress(Progress("features", len(indices), len(indices)))
        features = self.head_view(features)
        return self.head.probabilities(features), features

    def head_view(self, features: np.ndarray) -> np.ndarray:
        """The pooled features the head learned from: a run saved before the richer features used block5_pool's
        512 alone (the second half of the feature pass's 1,024)."""
        if tuple(self.head.layers) == LEGACY_LAYERS:
            return np.ascontiguousarray(features[:, -512:])
        return features

    def predict_proba(self, images, *, with_features: bool = False):
        """Class probabilities for RGB images (an (n, H, W, 3) array or a list of any sizes), as TransferClassifier."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        photos = PhotoList(list(images))
        probabilities, features = self.answer(photos, np.arange(len(photos)))
        return (probabilities, features) if with_features else probabilities

    def _kept_model_answer(self, dataset, indices, hooks):
        classifier = classifier_of(self.run, base_loader=self._base_loader)
        timer, parts, features = PhaseTimer(len(indices)), [], []
        for start in range(0, len(indices), KERAS_CHUNK):
            chunk = indices[start : start + KERAS_CHUNK]
            probabilities, pooled = classifier.predict_proba([dataset.pixels(int(i)) for i in chunk],
                                                             with_features=True)
            parts.append(probabilities)
            features.append(pooled)
            done = start + len(chunk)
            hooks.progress(Progress("features", done, len(indices), elapsed_seconds=timer.elapsed(),
                                    eta_seconds=timer.eta(done)))
        if not parts:
            return np.zeros((0, len(self.labels_)), np.float32), None
        return np.concatenate(parts), None if any(f is None for f in features) else np.concatenate(features)


class _Sample:
    __slots__ = ("digest",)

    def __init__(self, digest: str):
        self.digest = digest


class PhotoList:
    """Photos already in memory, shaped as a dataset for the feature pass (samples with digests, pixels(i))."""

    def __init__(self, images: list):
        self._images = [np.asarray(image) for image in images]
        self.samples = [_Sample(_digest(image)) for image in self._images]

    def __len__(self) -> int:
        return len(self._images)

    def pixels(self, index: int) -> np.ndarray:
        return self._images[index]


def _digest(pixels: np.ndarray) -> str:
    """As data.images.decode_image names a photo (its RGB pixels and shape), so cached features are shared."""
    h, w = pixels.shape[:2]
    if pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3:
        return hashlib.sha256(f"{w}x{h}x3:".encode() + np.ascontiguousarray(pixels).tobytes()).hexdigest()
    return hashlib.sha256(f"{pixels.shape}:{pixels.dtype.str}:".encode()
                          + np.ascontiguousarray(pixels).tobytes()).hexdigest()


def served_model(run: Run, *, base_loader=None, cache: FeatureCache | None = None) -> ServedModel:
    """The run's ServedModel, kept per process (least recently used dropped) so its network opens once."""
    key = (str(Path(run.path).resolve()), run.status.finished, run.state, id(cache))
    with _LOCK:
        if key in _KEPT:
            _KEPT.move_to_end(key)
            return _KEPT[key]
    served = ServedModel(run, base_loader=base_loader, cache=cache)
    with _LOCK:
        _KEPT[key] = served
        while len(_KEPT) > KEPT:
            _KEPT.popitem(last=False)
    return served


def forget(run_path) -> None:
    """Drop a run's served model from memory (the run was deleted or replaced)."""
    path = str(Path(run_path).resolve())
    with _LOCK:
        for key in [k for k in _KEPT if k[0] == path]:
            del _KEPT[key]
