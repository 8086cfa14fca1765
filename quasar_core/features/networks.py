"""The networks that turn resized photos into features: VGG16's frozen part, shared by every run.

A feature network takes a float32 batch of RGB squares (0..255, already resized) and returns
float32 features: the outputs of backbone.FEATURE_LAYERS (block4_pool and block5_pool) each
averaged over positions and side by side (1,024 per photo; the head square-roots them), or, for
fine-tuning, the activations of a boundary layer. One traced network exists per (base,
precision, layers) in the process, whatever the image size (the traced function takes any
size), so repeated trainings never trace or copy VGG16 again (a fresh ``tf.function`` per call
retraced on every training and kept every trace alive).
"""

from __future__ import annotations

import threading
import weakref
from typing import Callable, Protocol

import numpy as np

from quasar_core.backbone import FEATURE_LAYERS, IMAGENET_BGR_MEAN, apply_stack, copy_weights


class FeatureNetwork(Protocol):
    def __call__(self, images: np.ndarray) -> np.ndarray: ...


_LOCK = threading.Lock()
# key -> (a weak reference to the base, its network): id(base) alone may be reused by a later base
# once the first is freed, so the reference is checked before a network is reused.
_NETWORKS: dict[tuple, tuple[weakref.ref, Callable]] = {}
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
        held = _NETWORKS.get(key)
        if held is not None and held[0]() is base:
            return held[1]
        network = _build(base, precision, start_after, stop_at, pooled)
        _NETWORKS.pop(key, None)
        while len(_NETWORKS) >= MAX_NETWORKS:
            _NETWORKS.pop(next(iter(_NETWORKS)))
        _NETWORKS[key] = (_reference(base), network)
        return network


def _reference(base) -> Callable[[], object]:
    try:
        return weakref.ref(base)
    except TypeError:  # not weak-referenceable: held, so its id cannot be reused while the network is kept
        return lambda: base


def _build(base, precision, start_after, stop_at, pooled) -> FeatureNetwork:
    import keras
    import tensorflow as tf

    whole_base = start_after is None and stop_at == base.layers[-1].name
    taps = list(FEATURE_LAYERS) if pooled else []
    if whole_base and precision == "float32":
        # read-only use of the shared base: no copy of its weights
        model = base if not taps else keras.Model(base.inputs[0], [base.get_layer(layer).output for layer in taps])
    else:
        # Weights stored in bfloat16, not "mixed_bfloat16": the same numbers without Keras'
        # thread-local autocast scope, which intermittently left a float32 kernel facing bf16
        # inputs when several sessions trained in one server process.
        dtype = "bfloat16" if precision == "bfloat16" else None
        channels = base.get_layer(start_after).output.shape[-1] if start_after else 3
        inputs = keras.Input(shape=(None, None, channels), name="inputs")
        tapped: dict = {}
        outputs, pairs = apply_stack(base, inputs, start_after=start_after, stop_at=stop_at, dtype=dtype,
                                     trainable=False, tapped=tapped)
        if taps:
            missing = [layer for layer in taps if layer not in tapped]
            if missing:
                raise ValueError(f"Pooled features need the layers {missing!r}, which come before start_after "
                                 f"{start_after!r}.")
            outputs = [tapped[layer] for layer in taps]
        model = keras.Model(inputs, outputs, name=f"vgg16_{start_after or 'input'}_to_{stop_at}")
        copy_weights(pairs)
    channels = int(model.inputs[0].shape[-1])
    mean = tf.constant(IMAGENET_BGR_MEAN)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)])
    def forward(batch):
        if start_after is None:
            batch = tf.reverse(batch, axis=[-1]) - mean  # keras.applications.vgg16.preprocess_input
        out = model(batch, training=False)
        if pooled:  # global average pooling has no weights: cache its output
            out = tf.concat([tf.cast(tf.reduce_mean(o, axis=[1, 2]), tf.float32) for o in tf.nest.flatten(out)], -1)
        return tf.cast(out, tf.float32)

    def run(images: np.ndarray) -> np.ndarray:
        return forward(tf.convert_to_tensor(np.asarray(images, dtype=np.float32))).numpy()

    return run


def clear() -> None:
    """Forget every shared network (tests; a server never needs to)."""
    with _LOCK:
        _NETWORKS.clear()
