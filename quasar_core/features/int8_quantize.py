"""Static int8 quantization of the VGG16 ONNX graph (vgg16_onnx.py), calibrated on the shipped photos.

QDQ format, per-channel weights, MinMax calibration on the `calibration/` photos; QUANT_VARIANT is
the one variant the engine builds. int8.py builds its cached model with these and runs it. Importing
this module loads neither ONNX nor the engine's image code: they load when a model is quantized.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from quasar_core.features.vgg16_onnx import check_image_size

CALIBRATION_DIR = Path(__file__).with_name("calibration")

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


def calibration_images(image_size: int) -> np.ndarray:
    """The shipped calibration photos as float32 (n, S, S, 3) RGB 0..255, resized like training."""
    size = check_image_size(image_size)
    from PIL import Image

    from quasar_core.data.images import resize_square  # the engine's one resize (lazy: see the module doc)

    files = sorted(p for p in CALIBRATION_DIR.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if not files:
        raise FileNotFoundError(f"No calibration photos in {str(CALIBRATION_DIR)!r}.")
    images = []
    for path in files:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), np.uint8)
        images.append(resize_square(pixels, size))
    return np.stack(images).astype(np.float32, copy=False)
