"""Int8 VGG16 features through ONNX Runtime's CPU provider, without importing TensorFlow.

Runs the ONNX graph of vgg16_onnx.py, quantized by int8_quantize.py, in an ONNX Runtime session
(Int8FeatureNetwork; the float graph runs the same way for agreement checks). The int8 model is
built once per (weights, variant) and cached on disk under a content-addressed name, so a
truncated or corrupt file is detected and rebuilt. The cached model takes any image size; a
session fixes the size it is opened for.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from quasar_core.features import int8_quantize, vgg16_onnx

INT8_INSTRUCTIONS = ("avx512_vnni", "avx_vnni", "amx_int8")
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


class Int8FeatureNetwork:
    """An ONNX Runtime session of a vgg16_onnx model, float or int8: (n,S,S,3) RGB 0..255 -> (n,FEATURES)."""

    def __init__(self, model_path, *, threads: int | None = None, image_size: int | None = None):
        if image_size is not None:
            image_size = vgg16_onnx.check_image_size(image_size)
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
            return np.zeros((0, vgg16_onnx.FEATURES), np.float32)
        batch = np.ascontiguousarray(images, dtype=np.float32)
        return self._session.run(["features"], {"images": batch})[0]


def float_network(*, weights_path, image_size: int, threads: int | None = None) -> Int8FeatureNetwork:
    """The unquantized ONNX model in a session (precision 'float32'), for agreement checks."""
    model = vgg16_onnx.build_float_model(vgg16_onnx.read_vgg16_weights(weights_path), image_size=image_size)
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
    size = vgg16_onnx.check_image_size(image_size)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}.")
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    prefix = _cache_prefix(weights_id, int8_quantize.QUANT_VARIANT)
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

    float_model = vgg16_onnx.build_float_model(vgg16_onnx.read_vgg16_weights(weights_path), image_size=None)
    # Through the module, so a test or bench swapping the calibration set is seen here.
    images = int8_quantize.calibration_images(int8_quantize.CALIBRATION_SIZE)
    _remove_stale_builds(models_dir)
    # Build in a private folder on the same filesystem, so the final os.replace is atomic.
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".build-") as work:
        float_path, int8_path = Path(work, "float.onnx"), Path(work, "int8.onnx")
        onnx.save(float_model, str(float_path))
        int8_quantize.quantize_model(float_path, int8_path, calibration_images=images,
                                    variant=int8_quantize.QUANT_VARIANT)
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


def agreement(int8_features, float_features) -> float:
    """Mean cosine similarity between matching rows (1.0: same directions)."""
    a, b = np.asarray(int8_features, np.float64), np.asarray(float_features, np.float64)
    if a.ndim != 2 or a.shape != b.shape or len(a) == 0:
        raise ValueError(f"features must be two arrays (n, d) of one shape, got {a.shape!r} and {b.shape!r}.")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
    cosine = np.where(both_zero, 1.0, np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-30))
    return float(cosine.mean())
