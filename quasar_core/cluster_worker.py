"""What a cluster's worker runs: one FeatureSpec's pooled VGG16 features for a batch of photo references.

``PassJob`` carries everything a worker needs (picklable, sent to every actor); ``PhotoFeatures`` is the
callable class Ray Data runs on each worker process, its network built once. A worker reads each photo where
it is (a folder on shared storage, a zip), decodes it with the same decoder, resizes it with THE resize
(data.images.resize_square), makes the same seeded augmented views as extract.FeaturePass, and returns the
features. A photo that can no longer be read or decoded comes back with its reason instead of features.

Nothing here imports Ray: it is optional, and cluster_ray.py is the one module that imports it.
"""

from __future__ import annotations

import math
import socket
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from quasar_core import backbone
from quasar_core.config import Augmentation
from quasar_core.data.images import decode_image, resize_square
from quasar_core.data.records import Limits, PhotoRef
from quasar_core.features.extract import view_seed
from quasar_core.features.precision import float_beside
from quasar_core.features.vgg16_onnx import FEATURES


@dataclass(frozen=True)
class PassJob:
    """Everything a worker needs to compute one FeatureSpec's features (picklable, sent to every actor)."""

    weights: str  # a weights file path, "imagenet" (Keras' download on each machine) or "none" (random, from seed)
    seed: int
    image_size: int
    precision: str  # what runs: int8 | float32 | bfloat16 (never "auto")
    threads: int = 1  # per worker: its share of a machine's cores
    augmentation: dict | None = None  # Augmentation's settings, for views 1..
    int8_model: bytes | None = field(default=None, repr=False)  # the quantized model, identical on every worker

    def open_network(self) -> Callable[[np.ndarray], np.ndarray]:
        """The pooled-feature network, as network_provider opens it for POOLED, with `threads` threads."""
        if self.precision == "int8":
            from quasar_core.features import int8

            return int8.Int8FeatureNetwork(self.int8_model, threads=self.threads, image_size=self.image_size)
        _limit_tensorflow_threads(self.threads)
        from quasar_core.features import networks

        base = backbone.load_vgg16(self.weights, seed=self.seed)
        return networks.keras_network(base, precision=float_beside(self.precision))


def _limit_tensorflow_threads(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started in this process: keep what it has
        pass


def open_job_network(job: PassJob):
    return job.open_network()


class PhotoFeatures:
    """Ray Data's callable class: one instance per worker process, its network built once in __init__.

    A batch holds photo references (columns index, view, name, digest, path, member, size, data); the
    result holds index, view, features (n, 1,024), error ("" when the photo was computed), and each row's share of
    the batch's seconds (busy) and of the worker's CPU seconds (cpu).
    """

    def __init__(self, job: PassJob, network_factory: Callable[[PassJob], Callable] = open_job_network):
        self.job = job
        self.network = network_factory(job)
        self._augmenter = None
        self.host = socket.gethostname()

    def __call__(self, batch: dict) -> dict:
        started, cpu = time.perf_counter(), time.process_time()
        job = self.job
        n = len(batch["index"])
        images = np.zeros((n, job.image_size, job.image_size, 3), np.float32)
        errors = [""] * n
        for row in range(n):
            try:
                images[row] = self._prepare(batch, row)
            except _Unusable as unusable:
                errors[row] = str(unusable)
        good = [row for row in range(n) if not errors[row]]
        features = np.zeros((n, FEATURES), np.float32)
        if good:
            features[good] = self.network(images[good])
        busy = np.full(n, (time.perf_counter() - started) / n)  # a batch's time, shared among its rows
        return {"index": np.asarray(batch["index"], np.int64), "view": np.asarray(batch["view"], np.int64),
                "features": features, "error": np.array(errors, dtype=object), "busy": busy,
                "cpu": np.full(n, (time.process_time() - cpu) / n)}

    def _prepare(self, batch, row) -> np.ndarray:
        from quasar_core.data.limits import ImageRejected

        name, digest = str(batch["name"][row]), str(batch["digest"][row])
        data = batch["data"][row]
        ref = PhotoRef(path=_text(batch["path"][row]), member=_text(batch["member"][row]),
                       size=int(batch["size"][row]), data=bytes(data) if data is not None else None)
        try:
            raw = ref.read()
        except Exception as err:  # OSError, KeyError (zip member), BadZipFile
            raise _Unusable(f"could not be read on the cluster's machine {self.host} ({err}); every machine must see "
                            "the photos at the same path (shared storage), or load them again") from None
        try:
            decoded = decode_image(raw, name, limits=Limits(max_image_pixels=10**12))  # as Dataset.pixels decodes
        except ImageRejected as rejected:
            raise _Unusable(rejected.reason) from None
        if decoded.digest != digest:
            raise _Unusable("changed since the photos were checked; load the photos again")
        image = resize_square(decoded.pixels, self.job.image_size)
        view = int(batch["view"][row])
        if view > 0:
            if self._augmenter is None:
                from quasar_core.features.extract import Augmenter

                self._augmenter = Augmenter(Augmentation(**self.job.augmentation))
            image = self._augmenter(image, view_seed(digest, view, self.job.seed))
        return image


class _Unusable(Exception):
    pass


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
