"""The feature pass: photos streamed from their source through THE resize and VGG16's frozen part.

Photos are decoded a batch at a time (the next batch is prepared while VGG16 runs the current
one), resized, optionally augmented, passed through the network and dropped: what stays is
the features, in memory for this run and in the on-disk cache for the next. A photo whose
features are cached (same digest, size, weights, precision, layer and view) is not decoded
at all. Augmented views are seeded per photo and view, so a view is the same whichever
batch it falls in, and a cached view is exactly the one that would be computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from quasar_core import backbone
from quasar_core.config import Augmentation
from quasar_core.data.images import resize_square
from quasar_core.features import int8, int8_quantize, networks
from quasar_core.features.cache import FeatureCache, FeatureSpec, default_cache_dir
from quasar_core.features.precision import float_beside
from quasar_core.progress import PhaseTimer, Progress, TrainingHooks, is_cancelled

# Activation memory of one photo in the pass is ~2 block1 tensors (S*S*64 float32 each); batches
# are sized to keep that under this budget, which is what bounds the pass's peak memory.
PASS_BUDGET_BYTES = 192 * 1024**2
MAX_BATCH = 32
# The cache's name for the pooled features (backbone.FEATURE_LAYERS averaged): a new name whenever they change,
# so features of another kind are never read back.
POOLED = "pooled-block4-block5"


def batch_size_for(image_size: int) -> int:
    per_image = 2 * image_size * image_size * 64 * 4
    return int(max(1, min(MAX_BATCH, PASS_BUDGET_BYTES // per_image)))


def augmentation_id(augmentation: Augmentation, seed: int) -> str:
    return json.dumps({**asdict(augmentation), "seed": seed}, sort_keys=True)


class Augmenter:
    """Keras' random-augmentation layers, applied to one photo with a seed of its own."""

    def __init__(self, augmentation: Augmentation):
        import keras

        self.layers = []
        if augmentation.flip:
            self.layers.append(keras.layers.RandomFlip("horizontal"))
        if augmentation.rotation:
            self.layers.append(keras.layers.RandomRotation(augmentation.rotation, fill_mode="reflect"))
        if augmentation.zoom:
            self.layers.append(keras.layers.RandomZoom(augmentation.zoom, fill_mode="reflect"))
        if augmentation.contrast:
            self.layers.append(keras.layers.RandomContrast(augmentation.contrast, value_range=(0, 255)))

    def __call__(self, image: np.ndarray, seed: int) -> np.ndarray:
        batch = image[None]
        for number, layer in enumerate(self.layers):
            change = layer.get_random_transformation(batch, training=True, seed=seed + number)
            batch = layer.transform_images(batch, change, training=True)
        return np.asarray(batch)[0]


def view_seed(digest: str, view: int, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{digest}:{view}:{seed}".encode()).digest()[:4], "little") >> 1


class FeaturePass:
    """Features of a dataset's photos for one (weights, size, precision), from the cache or computed.

    `network_for(layer)` returns the FeatureNetwork that computes a layer's features from RGB
    squares (see networks.py and int8.py); it is asked only when something must be computed.
    """

    def __init__(self, *, spec: FeatureSpec, network_for: Callable[[str], Callable], cache: FeatureCache | None,
                 hooks: TrainingHooks | None = None, cancel: threading.Event | None = None,
                 augmentation: Augmentation | None = None, seed: int = 0):
        self.spec = spec
        self.network_for = network_for
        self.cache = cache
        self.hooks = hooks or TrainingHooks()
        self.cancel = cancel
        self.augmentation = augmentation
        self.seed = seed
        self._augmenter = None
        self.computed = 0  # photo-views that went through VGG16 in this pass (not from the cache)
        self.load_seconds = 0.0  # of which loading the network (TensorFlow, VGG16's weights, an int8 model)

    def features(self, dataset, indices, *, views: int = 1, layer: str = POOLED, out: np.ndarray | None = None):
        """(views, n, ...) float32 features of the photos at `indices`; None when cancelled.

        View 0 is each photo itself; views 1.. are augmented copies. `out` may be a preallocated
        (memory-mapped) array to fill, for activations too large for memory.
        """
        indices = np.asarray(indices, dtype=np.int64)
        if views > 1 and self.augmentation is None:
            raise ValueError("Augmented views need an augmentation.")
        aug_id = augmentation_id(self.augmentation, self.seed) if self.augmentation is not None else ""
        specs = [FeatureSpec(self.spec.weights_id, self.spec.image_size, self.spec.precision, layer, v,
                             aug_id if v else "") for v in range(views)]
        found: dict[tuple[int, int], np.ndarray] = {}
        missing: list[tuple[int, int]] = []  # (view, position in indices)
        for v, spec in enumerate(specs):
            for position, index in enumerate(indices):
                cached = self.cache.get(dataset.samples[index].digest, spec) if self.cache is not None else None
                if cached is None:
                    missing.append((v, position))
                else:
                    found[(v, position)] = cached
        if missing and self._compute(dataset, indices, specs, missing, found, layer) is None:
            return None
        first = found[(0, 0)] if len(indices) else np.zeros((0,), np.float32)
        if out is None:
            out = np.empty((views, len(indices), *np.shape(first)), dtype=np.float32)
        for (v, position), value in found.items():
            out[v, position] = value
        return out

    def cached_count(self, dataset, *, views: int = 1, layer: str = POOLED) -> int:
        """How many photo-views of `dataset` are already in the cache (for time estimates)."""
        if self.cache is None:
            return 0
        aug_id = augmentation_id(self.augmentation, self.seed) if self.augmentation is not None else ""
        specs = [FeatureSpec(self.spec.weights_id, self.spec.image_size, self.spec.precision, layer, v,
                             aug_id if v else "") for v in range(views)]
        return sum(self.cache.has(sample.digest, spec) for spec in specs for sample in dataset.samples)

    def _compute(self, dataset, indices, specs, missing, found, layer):
        started = time.perf_counter()
        network = self.network_for(layer)
        self.load_seconds += time.perf_counter() - started
        size = self.spec.image_size
        batch = batch_size_for(size)
        timer = PhaseTimer(len(missing))

        def prepare(chunk):
            images = np.empty((len(chunk), size, size, 3), dtype=np.float32)
            for row, (v, position) in enumerate(chunk):
                sample_index = indices[position]
                image = resize_square(dataset.pixels(sample_index), size)
                if v > 0:
                    image = self._augment(image, view_seed(dataset.samples[sample_index].digest, v, self.seed))
                images[row] = image
            return images

        chunks = [missing[start : start + batch] for start in range(0, len(missing), batch)]
        with ThreadPoolExecutor(1, thread_name_prefix="quasar-prepare") as pool:
            upcoming = pool.submit(prepare, chunks[0])
            for number, chunk in enumerate(chunks):
                images = upcoming.result()
                if number + 1 < len(chunks):
                    upcoming = pool.submit(prepare, chunks[number + 1])  # decoded while VGG16 runs
                if is_cancelled(self.cancel):
                    return None
                outputs = network(images)
                for (v, position), value in zip(chunk, outputs):
                    found[(v, position)] = value
                    if self.cache is not None:
                        self.cache.put(dataset.samples[indices[position]].digest, specs[v], value)
                done = min(len(missing), (number + 1) * batch)
                self.computed += len(chunk)
                elapsed = timer.elapsed()
                self.hooks.progress(Progress("features", done, len(missing), elapsed_seconds=elapsed,
                                             eta_seconds=timer.eta(done), rate=done / elapsed if elapsed else None))
        if self.cache is not None:
            self.cache.evict()
        return found

    def _augment(self, image: np.ndarray, seed: int) -> np.ndarray:
        if self._augmenter is None:
            self._augmenter = Augmenter(self.augmentation)
        return self._augmenter(image, seed)


def models_dir(cache: FeatureCache | None) -> Path:
    """Where int8 networks are kept: beside the feature cache (one per weights and image size)."""
    root = cache.root if cache is not None else default_cache_dir()
    return root.parent / "int8-models"


def network_provider(*, weights: str, image_size: int, precision: str, base_loader: Callable[[], object],
                     cache: FeatureCache | None) -> Callable[[str], Callable]:
    """network_for(layer) for a FeaturePass: int8 through ONNX Runtime for pooled features when chosen
    (boundary activations for fine-tuning stay float), else the shared Keras network. Each layer's
    network is opened once per provider (the int8 check and the feature pass share one session)."""
    opened: dict[str, Callable] = {}

    def network_for(layer: str):
        if layer not in opened:
            opened[layer] = _open_network(layer)
        return opened[layer]

    def _open_network(layer: str):
        if precision == "int8" and layer == POOLED:
            return int8.load_int8_network(weights_path=local_weights(weights, base_loader),
                                          weights_id=backbone.weights_id(weights), image_size=image_size,
                                          models_dir=models_dir(cache))
        float_precision = float_beside(precision)
        if layer == POOLED:
            return networks.keras_network(base_loader(), precision=float_precision)
        return networks.keras_network(base_loader(), precision=float_precision, stop_at=layer, pooled=False)

    return network_for


def local_weights(weights: str, base_loader: Callable[[], object]) -> str:
    """The weights file on disk; "imagenet" without one is downloaded by Keras first (base_loader)."""
    path = backbone.weights_file(weights)
    if path is None:
        base_loader()  # Keras downloads and caches the ImageNet file
        path = backbone.weights_file(weights)
    if path is None:
        raise ValueError(f"int8 needs a VGG16 weights file; weights {weights!r} have none.")
    return path


def int8_agreement(dataset, indices, *, int8_pass: FeaturePass, weights: str, image_size: int, base_loader,
                   cache) -> float:
    """Mean cosine similarity of int8 and float32 features on these photos (the 'auto' check).

    The int8 side comes from `int8_pass` (the int8 FeaturePass of the training that asks), so these
    photos' int8 features land in the feature cache and the feature pass does not compute them again.
    Remembered beside the int8 models per (weights, size, photos), so retraining the same photos does
    not check again.
    """
    weights_id = backbone.weights_id(weights)
    key = hashlib.sha256(json.dumps([weights_id, image_size, int8.RECIPE, int8_quantize.QUANT_VARIANT,
                                     [dataset.samples[i].digest for i in indices]]).encode()).hexdigest()[:24]
    memo = models_dir(cache) / f"agreement-{key}.json"
    try:
        return float(json.loads(memo.read_text())["agreement"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if int8_pass.spec.precision != "int8" or int8_pass.spec.image_size != image_size:
        raise ValueError(f"int8_pass must compute int8 features at {image_size} px, got {int8_pass.spec!r}.")
    quantized = int8_pass.features(dataset, indices)[0]
    reference = int8.float_network(weights_path=local_weights(weights, base_loader), image_size=image_size)
    images = np.stack([resize_square(dataset.pixels(i), image_size) for i in indices])
    score = int8.agreement(quantized, reference(images))
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"agreement": score}))
    os.replace(tmp, memo)
    return score
