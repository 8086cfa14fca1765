"""VGG16's frozen conv base as an ONNX graph, written from the Keras weights file without TensorFlow.

The base is a fixed stack (13 Conv 3x3 + ReLU, a 2x2 max pool after each of the 5 blocks), so it
is written out directly with `onnx.helper` from the same weights file Keras loads (read with h5py)
instead of converting a Keras model: no TensorFlow import (seconds), no tf2onnx. The "caffe"
preprocessing is inside the graph: the model takes RGB 0..255 NHWC float32 images and returns the
global averages of block4_pool and block5_pool side by side, [N, 1024] (backbone.FEATURE_LAYERS:
the same features as the Keras feature network).

int8_quantize.py quantizes this graph, int8.py runs it (float or int8) in ONNX Runtime, and
runs/app_model.py builds the shared app's model on it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

BLOCKS = (2, 2, 3, 3, 3)  # convs per block
LAYER_NAMES = tuple(f"block{b}_conv{c}" for b, n in enumerate(BLOCKS, 1) for c in range(1, n + 1))
_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
KERNEL_SHAPES = tuple((3, 3, i, o) for i, o in zip((3,) + _CHANNELS[:-1], _CHANNELS))
BGR_MEAN = (103.939, 116.779, 123.68)  # keras.applications.vgg16.preprocess_input ("caffe")
FEATURE_POOLS = ("block4_pool", "block5_pool")  # backbone.FEATURE_LAYERS, without importing Keras' side
FEATURES = 512 * len(FEATURE_POOLS)
MIN_IMAGE_SIZE = 32  # five 2x2 pools; Keras' VGG16 refuses less too
MAX_IMAGE_SIZE = 1024


def read_vgg16_weights(path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 13 (kernel HWIO float32, bias float32) pairs of a VGG16 notop weights file, in block order.

    Reads Keras 3 `.weights.h5` files (groups layers/conv2d, layers/conv2d_1, ... numbered in
    layer order) and Keras' legacy download (groups block1_conv1 ... holding kernel and bias).
    """
    import h5py  # here, so importing this module costs nothing

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"VGG16 weights file {str(path)!r} does not exist.")
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f  # a whole saved legacy model
            if "layers" in root and any(_conv_number(k) is not None for k in root["layers"]):
                groups = sorted((k for k in root["layers"] if _conv_number(k) is not None), key=_conv_number)
                groups = [root["layers"][k] for k in groups]
            else:
                groups = [root[name] for name in LAYER_NAMES if name in root]
            pairs = [_kernel_and_bias(group) for group in groups]
    except (OSError, KeyError, TypeError) as exc:
        raise ValueError(f"{str(path)!r} is not a readable VGG16 notop weights file: {exc}") from exc
    shapes = [(k.shape, b.shape) for k, b in pairs]
    if shapes != [(s, (s[3],)) for s in KERNEL_SHAPES]:
        raise ValueError(
            f"{str(path)!r} does not hold VGG16 notop weights: expected 13 conv layers with kernels "
            f"{[s for s in KERNEL_SHAPES]}, found {[s for s, _ in shapes]}."
        )
    return pairs


def _conv_number(name: str) -> int | None:
    """conv2d -> 0, conv2d_1 -> 1, ... conv2d_12 -> 12 (numbers, not strings: conv2d_10 > conv2d_9)."""
    match = re.fullmatch(r"conv2d(?:_(\d+))?", name)
    return None if match is None else int(match.group(1) or 0)


def _kernel_and_bias(group) -> tuple[np.ndarray, np.ndarray]:
    # Whatever the datasets are called (vars/0, kernel:0, block1_conv1_W_1:0), a conv layer
    # holds exactly one 4-D kernel and one 1-D bias.
    found = []
    group.visititems(lambda _, obj: found.append(obj) if hasattr(obj, "shape") else None)
    kernels = [np.asarray(d, np.float32) for d in found if len(d.shape) == 4]
    biases = [np.asarray(d, np.float32) for d in found if len(d.shape) == 1]
    if len(kernels) != 1 or len(biases) != 1:
        raise KeyError(f"group {group.name!r} does not hold one kernel and one bias")
    return kernels[0], biases[0]


def check_image_size(image_size) -> int:
    """The image size as an int, or ValueError naming the range."""
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or not (
        MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE
    ):
        raise ValueError(f"image_size must be an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}, got {image_size!r}.")
    return int(image_size)


def _check_conv_weights(conv_weights) -> list[tuple[np.ndarray, np.ndarray]]:
    try:
        pairs = [(np.asarray(k, np.float32), np.asarray(b, np.float32)) for k, b in conv_weights]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"conv_weights must be 13 (kernel, bias) pairs, got {type(conv_weights).__name__}.") from exc
    shapes = [(k.shape, b.shape) for k, b in pairs]
    if shapes != [(s, (s[3],)) for s in KERNEL_SHAPES]:
        raise ValueError(f"conv_weights must be VGG16's 13 (kernel HWIO, bias) pairs, got shapes {shapes!r}.")
    if not all(np.isfinite(k).all() and np.isfinite(b).all() for k, b in pairs):
        raise ValueError("conv_weights hold NaN or infinite values.")
    return pairs


def build_float_model(conv_weights, *, image_size: int | None):
    """VGG16's conv base as an ONNX model: images [N,S,S,3] RGB 0..255 -> features [N,1024].

    `image_size=None` leaves the height and width open (any size from MIN_IMAGE_SIZE); a session
    is opened for one size (int8.Int8FeatureNetwork's `image_size`)."""
    size = None if image_size is None else check_image_size(image_size)
    pairs = _check_conv_weights(conv_weights)
    from onnx import TensorProto, helper, numpy_helper

    # Preprocessing: subtracting the mean in RGB order and reversing the first kernel's input
    # channels equals Keras' RGB->BGR then BGR mean, exactly, and saves a Gather. (The mean
    # cannot be folded into the bias: 'same' padding pads the preprocessed image with zeros.)
    rgb_mean = np.array(BGR_MEAN[::-1], np.float32)
    inits = [numpy_helper.from_array(rgb_mean, "rgb_mean")]
    nodes = [
        helper.make_node("Sub", ["images", "rgb_mean"], ["centred"], name="preprocess"),
        helper.make_node("Transpose", ["centred"], ["x0"], perm=[0, 3, 1, 2], name="to_nchw"),
    ]
    x, layer = "x0", 0
    for block, convs in enumerate(BLOCKS, 1):
        for _ in range(convs):
            name = LAYER_NAMES[layer]
            kernel, bias = pairs[layer]
            if layer == 0:
                kernel = kernel[:, :, ::-1, :]  # BGR -> RGB input channels, see above
            inits += [
                numpy_helper.from_array(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), f"{name}/kernel"),
                numpy_helper.from_array(bias, f"{name}/bias"),
            ]
            nodes += [
                helper.make_node("Conv", [x, f"{name}/kernel", f"{name}/bias"], [f"{name}/conv"],
                                 kernel_shape=[3, 3], pads=[1, 1, 1, 1], name=name),
                helper.make_node("Relu", [f"{name}/conv"], [name], name=f"{name}/relu"),
            ]
            x, layer = name, layer + 1
        pool = f"block{block}_pool"
        nodes.append(helper.make_node("MaxPool", [x], [pool], kernel_shape=[2, 2], strides=[2, 2], name=pool))
        x = pool
    for pool in FEATURE_POOLS:
        nodes += [
            helper.make_node("GlobalAveragePool", [pool], [f"{pool}/average"], name=f"{pool}/global_average"),
            helper.make_node("Flatten", [f"{pool}/average"], [f"{pool}/features"], axis=1, name=f"{pool}/flatten"),
        ]
    nodes.append(helper.make_node("Concat", [f"{pool}/features" for pool in FEATURE_POOLS], ["features"], axis=1,
                                  name="features"))
    graph = helper.make_graph(
        nodes, "vgg16_features",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                       ["batch", size or "height", size or "width", 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", FEATURES])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="quasar_core")
    helper.set_model_props(model, {"image_size": str(size or "any"), "precision": "float32"})
    return model

