"""Int8 VGG16 features through ONNX Runtime's CPU provider, without importing TensorFlow.

The frozen VGG16 base is a fixed stack (13 Conv 3x3 + ReLU, a 2x2 max pool after each of the
5 blocks), so it is written out directly with `onnx.helper` from the same weights file Keras
loads (read with h5py) instead of converting a Keras model: no TensorFlow import (seconds),
no tf2onnx. The "caffe" preprocessing is inside the graph: the model takes RGB 0..255 NHWC
float32 images and returns the global averages of block4_pool and block5_pool side by side,
[N, 1024] (backbone.FEATURE_LAYERS: the same features as the Keras feature network).

The int8 model is quantized statically (QDQ, per-channel weights, MinMax calibration on the
shipped `calibration/` photos) once per (weights, variant) and cached on disk under a
content-addressed name, so a truncated or corrupt file is detected and rebuilt. The cached model
takes any image size; a session fixes the size it is opened for.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import tempfile
import time
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
CALIBRATION_DIR = Path(__file__).with_name("calibration")
INT8_INSTRUCTIONS = ("avx512_vnni", "avx_vnni", "amx_int8")

# (activation type, weight type, reduce_range) for onnxruntime.quantization.quantize_static.
VARIANTS = {
    "u8s8": ("QUInt8", "QInt8", False),
    "u8s8-rr": ("QUInt8", "QInt8", True),
    "u8u8": ("QUInt8", "QUInt8", False),
    "s8s8": ("QInt8", "QInt8", False),
}
# 7-bit weights (reduce_range): without VNNI, MLAS multiplies u8 x s8 with VPMADDUBSW, whose int16
# pair sums saturate when 8-bit weights meet large activations (full-range features then stray far
# from float's); 7-bit weights cannot overflow (2 * 255 * 64 < 32767) and are as fast. With VNNI
# they cost a little precision, not speed, so one variant everywhere keeps cache, tests and features
# alike. The measurements behind this and CALIBRATION_SIZE: bench/README.md ("Why the engine is
# built as it is"); bench/bench_int8.py measures int8 against float again.
QUANT_VARIANT = "u8s8-rr"
# Calibrating at 64 px gives scales as good as at the size used, in a fraction of the time. All 32
# photos are used (fewer lost precision), one at a time (a batch's float activations are the
# calibration's memory peak).
CALIBRATION_SIZE = 64
RECIPE = 4  # bump when the graph, the calibration set or the quantization settings change


def cpu_int8_instructions(*, cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """Which of avx512_vnni, avx_vnni, amx_int8 the CPU reports ([] if none or not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return [name for name in INT8_INSTRUCTIONS if name in flags]


def runtime_available() -> bool:
    """onnx and onnxruntime are installed (found without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


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


def _check_image_size(image_size) -> int:
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
    is opened for one size (Int8FeatureNetwork's `image_size`)."""
    size = None if image_size is None else _check_image_size(image_size)
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


def quantize_model(float_model_path, out_path, *, calibration_images, variant: str = QUANT_VARIANT) -> None:
    """Static QDQ int8 quantization of `float_model_path` into `out_path`, calibrated on the images."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}.")
    images = calibration_images
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[0] < 1 or images.shape[3] != 3:
        raise ValueError(f"calibration_images must be an array (n, S, S, 3), got {getattr(images, 'shape', images)!r}.")
    if not np.isfinite(images).all():
        raise ValueError("calibration_images hold NaN or infinite values.")
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(float_model_path))
    dims = [d.dim_value or None for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]  # 0: open
    if images.shape[1] != images.shape[2] or any(want not in (None, got) for want, got in zip(dims, images.shape[1:])):
        raise ValueError(f"calibration_images are {images.shape[1:]!r} but the model takes {tuple(dims)!r}.")
    activation, weight, reduce_range = VARIANTS[variant]
    # One photo a batch: a batch's float activations are what the calibration's memory peak is.
    batches = [{"images": np.ascontiguousarray(image[None], np.float32)} for image in images]
    with _without_preprocessing_advice():
        quantize_static(
            str(float_model_path), str(out_path), _Reader(batches),
            quant_format=QuantFormat.QDQ,  # ORT fuses QDQ into QLinearConv (ReLU folded into the clamp)
            per_channel=True,  # VGG16's output channels differ in range by orders of magnitude
            reduce_range=reduce_range,
            activation_type=getattr(QuantType, activation),
            weight_type=getattr(QuantType, weight),
            calibrate_method=CalibrationMethod.MinMax,
            # GlobalAveragePool has no QDQ kernel: it stays float, so the features are not rounded.
            op_types_to_quantize=["Conv", "Relu", "MaxPool"],
        )
    quantized = onnx.load(str(out_path))
    onnx.helper.set_model_props(quantized, {"image_size": str(dims[0] or "any"), "precision": "int8", "variant": variant})
    onnx.save(quantized, str(out_path))


class _PreprocessingAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _without_preprocessing_advice():
    """ORT's quantizer advises shape "pre-processing" through the root logger, which prints "WARNING:root:"
    lines on the command line; the stack built here has fixed shapes and nothing for it to do. The null
    handler keeps logging.warning from installing a stderr handler on the root logger for good."""
    root, advice, null = logging.getLogger(), _PreprocessingAdvice(), logging.NullHandler()
    root.addFilter(advice)
    root.addHandler(null)
    try:
        yield
    finally:
        root.removeFilter(advice)
        root.removeHandler(null)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of input batches."""

    def __init__(self, batches):
        self._batches = iter(batches)

    def get_next(self):
        return next(self._batches, None)


class Int8FeatureNetwork:
    """An ONNX Runtime session of a model from this module: (n,S,S,3) RGB 0..255 -> (n,FEATURES)."""

    def __init__(self, model_path, *, threads: int | None = None, image_size: int | None = None):
        if image_size is not None:
            image_size = _check_image_size(image_size)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}.")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: ORT's default, one per physical core
        options.inter_op_num_threads = 1  # the graph is a chain: nothing runs in parallel
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        # Idle workers would spin between batches, stealing the cores the app and other jobs use.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if image_size is not None:  # fixes an open model's height and width (a fixed model ignores it)
            for name in ("height", "width"):
                options.add_free_dimension_override_by_name(name, image_size)
        # bytes: the model already read and verified by load_int8_network (no second read).
        source = model_path if isinstance(model_path, bytes) else str(model_path)
        self.model_path = None if isinstance(model_path, bytes) else Path(model_path)
        self._session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        shape = self._session.get_inputs()[0].shape
        if not isinstance(shape[1], int):
            raise ValueError("This model takes any image size: give the session one (image_size=...).")
        if image_size is not None and shape[1] != image_size:
            raise ValueError(f"The model takes {shape[1]} px images, not {image_size}.")
        self.image_size = shape[1]
        self.precision = self._session.get_modelmeta().custom_metadata_map.get("precision", "unknown")

    def __call__(self, images: np.ndarray) -> np.ndarray:
        size = self.image_size
        if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise ValueError(f"images must be an array (n, {size}, {size}, 3), got {getattr(images, 'shape', images)!r}.")
        if len(images) == 0:
            return np.zeros((0, FEATURES), np.float32)
        batch = np.ascontiguousarray(images, dtype=np.float32)
        return self._session.run(["features"], {"images": batch})[0]


def float_network(*, weights_path, image_size: int, threads: int | None = None) -> Int8FeatureNetwork:
    """The unquantized ONNX model in a session (precision 'float32'), for agreement checks."""
    model = build_float_model(read_vgg16_weights(weights_path), image_size=image_size)
    return Int8FeatureNetwork(model.SerializeToString(), threads=threads)


def _cache_prefix(weights_id: str, variant: str) -> str:
    return f"vgg16-{weights_id}-{variant}-r{RECIPE}-"


def load_int8_network(*, weights_path, weights_id: str, image_size: int, models_dir,
                      threads: int | None = None) -> Int8FeatureNetwork:
    """The cached int8 network for these weights, opened for `image_size`; built and quantized on first use.

    Files are named by their own sha256 (first 16 hex digits), written under a temporary name
    and os.replace()d in, so a reader never sees a half-written file, two builders at once
    cannot corrupt each other, and a file damaged later fails its checksum and is rebuilt.
    """
    if not isinstance(weights_id, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", weights_id):
        raise ValueError(f"weights_id must be 1-64 letters, digits, '.', '_' or '-', got {weights_id!r}.")
    size = _check_image_size(image_size)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}.")
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    prefix = _cache_prefix(weights_id, QUANT_VARIANT)
    model = _load_valid(models_dir, prefix)
    if model is None:
        if not Path(weights_path).is_file():
            raise ValueError(f"VGG16 weights file {str(weights_path)!r} does not exist.")
        model = _build(weights_path, models_dir, prefix)
    data, path = model
    network = Int8FeatureNetwork(data, threads=threads, image_size=size)
    network.model_path = path
    return network


def _load_valid(models_dir: Path, prefix: str) -> tuple[bytes, Path] | None:
    """The newest cached file whose content matches its name; damaged ones are deleted."""
    pattern = re.compile(re.escape(prefix) + r"([0-9a-f]{16})\.onnx")
    candidates = [p for p in models_dir.iterdir() if pattern.fullmatch(p.name)]
    for path in sorted(candidates, key=_mtime, reverse=True):
        try:
            data = path.read_bytes()
        except OSError:  # removed meanwhile by another process
            continue
        if hashlib.sha256(data).hexdigest()[:16] == pattern.fullmatch(path.name).group(1):
            return data, path
        # Safe to delete: complete files only ever appear by os.replace, so this one is not
        # being written; it was truncated or corrupted after the fact.
        path.unlink(missing_ok=True)
    return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _build(weights_path, models_dir: Path, prefix: str) -> tuple[bytes, Path]:
    import onnx

    float_model = build_float_model(read_vgg16_weights(weights_path), image_size=None)
    images = calibration_images(CALIBRATION_SIZE)
    _remove_stale_builds(models_dir)
    # Build in a private folder on the same filesystem, so the final os.replace is atomic.
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".build-") as work:
        float_path, int8_path = Path(work, "float.onnx"), Path(work, "int8.onnx")
        onnx.save(float_model, str(float_path))
        quantize_model(float_path, int8_path, calibration_images=images, variant=QUANT_VARIANT)
        data = int8_path.read_bytes()
        final = models_dir / f"{prefix}{hashlib.sha256(data).hexdigest()[:16]}.onnx"
        os.replace(int8_path, final)
    return data, final


def _remove_stale_builds(models_dir: Path, *, older_than_s: float = 3600.0) -> None:
    """Build folders a killed process left behind (each holds a 59 MB float model)."""
    now = time.time()
    for path in models_dir.glob(".build-*"):
        if now - _mtime(path) > older_than_s:
            shutil.rmtree(path, ignore_errors=True)


def calibration_images(image_size: int) -> np.ndarray:
    """The shipped calibration photos as float32 (n, S, S, 3) RGB 0..255, resized like training."""
    size = _check_image_size(image_size)
    from PIL import Image

    from quasar_core.data.images import resize_square  # the engine's one resize (lazy: see module doc)

    files = sorted(p for p in CALIBRATION_DIR.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if not files:
        raise FileNotFoundError(f"No calibration photos in {str(CALIBRATION_DIR)!r}.")
    images = []
    for path in files:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), np.uint8)
        images.append(resize_square(pixels, size))
    return np.stack(images).astype(np.float32, copy=False)


def agreement(int8_features, float_features) -> float:
    """Mean cosine similarity between matching rows (1.0: same directions)."""
    a, b = np.asarray(int8_features, np.float64), np.asarray(float_features, np.float64)
    if a.ndim != 2 or a.shape != b.shape or len(a) == 0:
        raise ValueError(f"features must be two arrays (n, d) of one shape, got {a.shape!r} and {b.shape!r}.")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
    cosine = np.where(both_zero, 1.0, np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-30))
    return float(cosine.mean())
