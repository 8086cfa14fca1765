"""The networks that turn resized photos into features: VGG16's frozen part, shared by every run.

A feature network takes a float32 batch of RGB squares (0..255, already resized) and returns
float32 features: VGG16's block5_pool averaged over positions (512 per photo), or, for
fine-tuning, the activations of a boundary layer. One traced network exists per (base,
precision, layers) in the process, whatever the image size (the traced function takes any
size), so repeated trainings never trace or copy VGG16 again (a fresh ``tf.function`` per call
retraced on every training and kept every trace alive).
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol

import numpy as np

from quasar_core.backbone import IMAGENET_BGR_MEAN, apply_stack, copy_weights


class FeatureNetwork(Protocol):
    def __call__(self, images: np.ndarray) -> np.ndarray: ...


_LOCK = threading.Lock()
_NETWORKS: dict[tuple, Callable] = {}
MAX_NETWORKS = 6  # each may hold a copy of VGG16's weights (29-58 MB)


def keras_network(base, *, precision: str = "float32", start_after: str | None = None,
                  stop_at: str = "block5_pool", pooled: bool = True) -> FeatureNetwork:
    """The frozen layers of `base` after `start_after` up to `stop_at`, traced once, in `precision`.

    From the input (start_after None) it takes RGB 0..255 and applies VGG16's preprocessing;
    otherwise it takes the activations of `start_after`.
    """
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be 'float32' or 'bfloat16' for a Keras network, got {precision!r}.")
    key = (id(base), precision, start_after, stop_at, pooled)
    with _LOCK:
        network = _NETWORKS.get(key)
        if network is None:
            network = _build(base, precision, start_after, stop_at, pooled)
            while len(_NETWORKS) >= MAX_NETWORKS:
                _NETWORKS.pop(next(iter(_NETWORKS)))
            _NETWORKS[key] = network
        return network


def _build(base, precision, start_after, stop_at, pooled) -> FeatureNetwork:
    import keras
    import tensorflow as tf

    whole_base = start_after is None and stop_at == base.layers[-1].name
    if whole_base and precision == "float32":
        model = base  # read-only use of the shared base: no copy of its weights
    else:
        # Weights stored in bfloat16, not "mixed_bfloat16": the same numbers without Keras'
        # thread-local autocast scope, which intermittently left a float32 kernel facing bf16
        # inputs when several sessions trained in one server process.
        dtype = "bfloat16" if precision == "bfloat16" else None
        channels = base.get_layer(start_after).output.shape[-1] if start_after else 3
        inputs = keras.Input(shape=(None, None, channels), name="inputs")
        outputs, pairs = apply_stack(base, inputs, start_after=start_after, stop_at=stop_at, dtype=dtype,
                                     trainable=False)
        model = keras.Model(inputs, outputs, name=f"vgg16_{start_after or 'input'}_to_{stop_at}")
        copy_weights(pairs)
    channels = int(model.inputs[0].shape[-1])
    mean = tf.constant(IMAGENET_BGR_MEAN)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)])
    def forward(batch):
        if start_after is None:
            batch = tf.reverse(batch, axis=[-1]) - mean  # keras.applications.vgg16.preprocess_input
        out = model(batch, training=False)
        if pooled:
            out = tf.reduce_mean(out, axis=[1, 2])  # global average pooling has no weights: cache its output
        return tf.cast(out, tf.float32)

    def run(images: np.ndarray) -> np.ndarray:
        return forward(tf.convert_to_tensor(np.asarray(images, dtype=np.float32))).numpy()

    return run


def clear() -> None:
    """Forget every shared network (tests; a server never needs to)."""
    with _LOCK:
        _NETWORKS.clear()
