"""VGG16, its ImageNet weights, and the pieces the classifier is assembled from.

The convolutional base is loaded once with a free input size, so one copy serves every
image size and every user. Nothing here mutates that shared copy: layers that will be
trained are always fresh clones that copy its weights. Keras is imported only by the
functions that build networks; resolving weights and naming them (``weights_id``, the
feature cache's key) need no TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import WeightsUnavailableError

WEIGHTS_ENV = "QUASAR_VGG16_WEIGHTS"
# keras.applications.vgg16.preprocess_input in "caffe" mode: RGB -> BGR, minus the ImageNet mean.
IMAGENET_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)
BLOCKS = 5
# The layers whose outputs, averaged over positions and square-rooted, are a photo's features: block4_pool
# is computed on the way to block5 anyway, so the richer features cost no VGG16 arithmetic (bench/README).
FEATURE_LAYERS = ("block4_pool", "block5_pool")
KERAS_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"  # what VGG16(weights="imagenet") downloads


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


def weights_file(weights: str = "imagenet") -> str | None:
    """The weights file a choice stands for, when it is on disk (Keras' download cache included), else None."""
    resolved = resolve_weights(weights)
    if resolved is None:
        return None
    if resolved != "imagenet":
        return resolved
    keras_home = os.environ.get("KERAS_HOME", "").strip() or str(Path.home() / ".keras")
    cached = Path(keras_home) / "models" / KERAS_NOTOP_FILE
    return str(cached) if cached.is_file() else None


def weights_id(weights: str = "imagenet", *, seed: int = 0) -> str:
    """A short name for exactly these weights (the feature cache's key): a hash of the file's bytes."""
    path = weights_file(weights)
    if path is not None:
        stat = Path(path).stat()
        return "sha256-" + _file_digest(path, stat.st_size, stat.st_mtime_ns)
    if resolve_weights(weights) is None:
        return f"random-{seed}"
    return "imagenet-keras"  # not downloaded yet: named once Keras has fetched it


@lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a changed file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:20]


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
                "or choose weights 'none' to train from scratch."
            ) from exc  # Keras' own words ("URL fetch failure … [Errno -2] …") stay in the chained cause
        if not isinstance(exc, (OSError, ValueError)):
            raise
        raise WeightsUnavailableError(
            f"Could not load VGG16 weights from {resolved!r}: {exc}. It must be VGG16 notop weights."
        ) from exc


def base_loader(weights: str = "imagenet", *, seed: int = 0):
    """A function that loads the VGG16 base on its first call and returns the same one after."""
    loaded = {}

    def load():
        if "base" not in loaded:
            loaded["base"] = load_vgg16(weights, seed=seed)
        return loaded["base"]

    return load


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


def apply_stack(base, tensor, *, start_after: str | None, stop_at: str | None, dtype=None, trainable=True,
                tapped: dict | None = None):
    """Run `tensor` through clones of the base's layers after `start_after` up to `stop_at`.

    Returns the output tensor and the (clone, original) pairs, whose weights the caller copies
    once the graph is built. `tapped`, when given, receives every layer's output by layer name
    (the input under `start_after`'s name), for features taken on the way.
    """
    layers = conv_layers(base)
    names = [layer.name for layer in layers]
    first = names.index(start_after) + 1 if start_after else 0
    last = names.index(stop_at) if stop_at else len(layers) - 1
    pairs = []
    if tapped is not None and start_after:
        tapped[start_after] = tensor
    for layer in layers[first : last + 1]:
        clone = clone_layer(layer, dtype=dtype, trainable=trainable)
        tensor = clone(tensor)
        pairs.append((clone, layer))
        if tapped is not None:
            tapped[layer.name] = tensor
    return tensor, pairs


def copy_weights(pairs):
    for clone, original in pairs:
        clone.set_weights(original.get_weights())


def cpu_supports_bfloat16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512_BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags
