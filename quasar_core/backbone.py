"""VGG16, its ImageNet weights, and the pieces the classifier is assembled from.

The convolutional base is loaded once with a free input size, so one copy serves every
image size and every user. Nothing here mutates that shared copy: layers that will be
trained are always fresh clones that copy its weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import WeightsUnavailableError

WEIGHTS_ENV = "QUASAR_VGG16_WEIGHTS"
# keras.applications.vgg16.preprocess_input in "caffe" mode: RGB -> BGR, minus the ImageNet mean.
IMAGENET_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
BLOCKS = 5


def resolve_weights(weights: str = "imagenet") -> str | None:
    """Turn a user's weights choice into what keras.applications.VGG16 accepts.

    "imagenet" means the file named by QUASAR_VGG16_WEIGHTS when it is set (offline machines),
    otherwise Keras' own download and cache. "none" means random weights (training from scratch).
    """
    if not isinstance(weights, str) or not weights.strip():
        raise ValueError(f"weights must be 'imagenet', 'none' or a file path, got {weights!r}.")
    choice = weights.strip()
    if choice.lower() == "none":
        return None
    if choice.lower() == "imagenet":
        env_path = os.environ.get(WEIGHTS_ENV, "").strip()
        if not env_path:
            return "imagenet"
        if not Path(env_path).is_file():
            raise WeightsUnavailableError(
                f"{WEIGHTS_ENV} points to {env_path!r}, which is not a file. Fix the path, or unset "
                f"{WEIGHTS_ENV} to let Keras download the ImageNet weights."
            )
        return str(Path(env_path).resolve())
    path = Path(choice).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(
            f"Weights file {choice!r} does not exist. Give the path of a VGG16 notop '.weights.h5' "
            "file, 'imagenet' to use Keras' download, or 'none' to train from scratch."
        )
    if not path.name.endswith(".h5"):
        raise WeightsUnavailableError(
            f"Weights file {choice!r} is not a Keras '.h5' weights file; use a VGG16 notop '.weights.h5' file."
        )
    return str(path.resolve())


def load_vgg16(weights: str = "imagenet", *, seed: int = 0):
    """The VGG16 convolutional base (no top), accepting any image size >= 32 px.

    Random weights ("none") are drawn from `seed`, so a from-scratch base is the same in every
    process: workers of one multi-worker job, and repeated comparisons.
    """
    import keras

    resolved = resolve_weights(weights)
    if resolved is None:
        keras.utils.set_random_seed(seed)
    try:
        return keras.applications.VGG16(include_top=False, weights=resolved, input_shape=(None, None, 3))
    except Exception as exc:  # download failure or a file of the wrong shape
        # Offline, Keras' get_file raises a plain Exception ("URL fetch failure ..."), not an OSError.
        if resolved == "imagenet":
            raise WeightsUnavailableError(
                "Could not download the ImageNet weights for VGG16 (this computer seems to be offline). "
                f"Connect to the internet, or set {WEIGHTS_ENV} to a local copy of "
                "'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5' (or a '.weights.h5' file), "
                f"or choose weights 'none' to train from scratch. Details: {exc}"
            ) from exc
        if not isinstance(exc, (OSError, ValueError)):
            raise
        raise WeightsUnavailableError(
            f"Could not load VGG16 weights from {resolved!r}: {exc}. It must be VGG16 notop weights."
        ) from exc


def preprocess(images: np.ndarray) -> np.ndarray:
    """keras.applications.vgg16.preprocess_input, in numpy, without copying twice."""
    batch = np.asarray(images, dtype=np.float32)[..., ::-1]
    return batch - IMAGENET_BGR_MEAN


def boundary_layer(frozen_blocks: int) -> str | None:
    """Name of the last layer of the frozen part when the top blocks are trained.

    frozen_blocks=5 -> 'block5_pool' (feature extraction); 4 -> 'block4_pool' (block 5 trains).
    0 -> None: everything trains, the input itself is the boundary.
    """
    if not 0 <= frozen_blocks <= BLOCKS:
        raise ValueError(f"frozen_blocks must be from 0 to {BLOCKS}, got {frozen_blocks!r}.")
    return f"block{frozen_blocks}_pool" if frozen_blocks else None


def conv_layers(base):
    """The base's layers in order, without its input layer."""
    return [layer for layer in base.layers if layer.__class__.__name__ != "InputLayer"]


def clone_layer(layer, *, dtype=None, trainable=True):
    """A fresh layer with the same configuration (weights are copied after it is built)."""
    config = layer.get_config()
    if dtype is not None:
        config["dtype"] = dtype
    clone = layer.__class__.from_config(config)
    clone.trainable = trainable
    return clone


def apply_stack(base, tensor, *, start_after: str | None, stop_at: str | None, dtype=None, trainable=True):
    """Run `tensor` through clones of the base's layers after `start_after` up to `stop_at`.

    Returns the output tensor and the (clone, original) pairs, whose weights the caller copies
    once the graph is built.
    """
    layers = conv_layers(base)
    names = [layer.name for layer in layers]
    first = names.index(start_after) + 1 if start_after else 0
    last = names.index(stop_at) if stop_at else len(layers) - 1
    pairs = []
    for layer in layers[first : last + 1]:
        clone = clone_layer(layer, dtype=dtype, trainable=trainable)
        tensor = clone(tensor)
        pairs.append((clone, layer))
    return tensor, pairs


def copy_weights(pairs):
    for clone, original in pairs:
        clone.set_weights(original.get_weights())


def feature_network(base, *, start_after: str | None = None, stop_at: str = "block5_pool",
                    precision: str = "float32"):
    """A frozen copy of the base's layers after `start_after` up to `stop_at`, in the given precision.

    From the input (start_after None) it takes VGG16-preprocessed images; otherwise the
    activations of `start_after`.
    """
    import keras

    # Weights stored in bfloat16, not "mixed_bfloat16": the same numbers (mixed casts each kernel to
    # bf16 at every call), but without Keras' autocast scope, a thread-local that intermittently left
    # a float32 kernel facing bf16 inputs when several sessions trained in one server process.
    dtype = "bfloat16" if precision == "bfloat16" else None
    channels = base.get_layer(start_after).output.shape[-1] if start_after else 3
    inputs = keras.Input(shape=(None, None, channels), name="inputs")
    outputs, pairs = apply_stack(base, inputs, start_after=start_after, stop_at=stop_at, dtype=dtype,
                                 trainable=False)
    outputs = keras.layers.Activation("linear", dtype="float32", name="features")(outputs)
    model = keras.Model(inputs, outputs, name=f"vgg16_{start_after or 'input'}_to_{stop_at}")
    copy_weights(pairs)
    return model


def cpu_supports_bfloat16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512_BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str = "auto") -> str:
    if precision not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"precision must be 'auto', 'float32' or 'bfloat16', got {precision!r}.")
    if precision == "auto":
        return "bfloat16" if cpu_supports_bfloat16() else "float32"
    return precision
