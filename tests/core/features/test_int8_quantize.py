"""Static int8 quantization of the VGG16 graph (quasar_core.features.int8_quantize): argument checks, ONNX
Runtime's advice kept off the command line, the shipped calibration set. That quantized models agree with
float is tested through the cache that builds them (test_int8.py).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("h5py")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from quasar_core.features import int8_quantize, vgg16_onnx  # noqa: E402
from tests.core.features.support import (SIZE, heavy_modules_after_importing, random_weights,  # noqa: E402
                                         shipped_photos)


@pytest.fixture(scope="module")
def weights():
    return random_weights()


def test_importing_the_module_imports_no_tensorflow_onnx_or_h5py():
    assert heavy_modules_after_importing("quasar_core.features.int8_quantize") == "[]"


def test_quantize_model_checks_arguments(tmp_path, weights):
    import onnx

    path = tmp_path / "float.onnx"
    onnx.save(vgg16_onnx.build_float_model(weights, image_size=SIZE), str(path))
    good = np.zeros((2, SIZE, SIZE, 3), np.float32)
    with pytest.raises(ValueError, match="'u9s9'"):
        int8_quantize.quantize_model(path, tmp_path / "q.onnx", calibration_images=good, variant="u9s9")
    for bad in (good[0], good[..., :1], good[:0], [1, 2]):
        with pytest.raises(ValueError, match="calibration_images"):
            int8_quantize.quantize_model(path, tmp_path / "q.onnx", calibration_images=bad)
    with pytest.raises(ValueError, match="NaN"):
        int8_quantize.quantize_model(path, tmp_path / "q.onnx", calibration_images=np.full_like(good, np.nan))
    with pytest.raises(ValueError, match="the model takes"):
        int8_quantize.quantize_model(path, tmp_path / "q.onnx",
                                     calibration_images=np.zeros((2, 40, 40, 3), np.float32))


def test_quantizing_prints_no_advice_and_leaves_logging_as_it_was(tmp_path, weights, capfd):
    """ORT's "consider pre-processing" lines went to the root logger, so the command line printed them."""
    import logging

    import onnx

    path = tmp_path / "float.onnx"
    onnx.save(vgg16_onnx.build_float_model(weights, image_size=SIZE), str(path))
    root = logging.getLogger()
    handlers, filters = list(root.handlers), list(root.filters)
    int8_quantize.quantize_model(path, tmp_path / "q.onnx", calibration_images=shipped_photos(SIZE)[:4])
    assert (tmp_path / "q.onnx").is_file()
    assert "pre-processing" not in "".join(capfd.readouterr())
    assert root.handlers == handlers and root.filters == filters


# --- the shipped calibration set ------------------------------------------------------------

def test_shipped_calibration_set():
    files = [p for p in int8_quantize.CALIBRATION_DIR.iterdir() if p.suffix in (".jpg", ".png")]
    assert len(files) == 32 and (int8_quantize.CALIBRATION_DIR / "README.md").is_file()
    assert sum(p.stat().st_size for p in int8_quantize.CALIBRATION_DIR.iterdir()) < 300_000
    pytest.importorskip("quasar_core.data.images", reason="the engine's resize_square is not there yet")
    images = int8_quantize.calibration_images(48)
    assert images.shape == (32, 48, 48, 3) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 255 and images.std() > 20
