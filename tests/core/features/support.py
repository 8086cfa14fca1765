"""Helpers shared by the tests of the ONNX VGG16 modules (test_vgg16_onnx, test_int8_quantize, test_int8):
random VGG16 weights and their weights files, the shipped calibration photos as inputs, a numpy reference.

Fast by design: random He-initialised kernels at 32 px, the shipped calibration photos resized with PIL as
natural-looking inputs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from quasar_core.features import int8_quantize, vgg16_onnx

REPO_ROOT = Path(__file__).resolve().parents[3]
SIZE = 32


def random_weights(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-initialised kernels keep activations in a natural range through 13 ReLU convs."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, np.sqrt(2 / (9 * s[2])), s).astype(np.float32),
             rng.normal(0, 0.05, s[3]).astype(np.float32)) for s in vgg16_onnx.KERNEL_SHAPES]


def shipped_photos(size: int) -> np.ndarray:
    """The calibration photos, resized with PIL (not the engine's resize: these are just inputs)."""
    files = sorted(p for p in int8_quantize.CALIBRATION_DIR.iterdir() if p.suffix in (".jpg", ".png"))
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
                     for p in files])


def write_keras3(path: Path, pairs, order=None) -> Path:
    """A Keras 3 `.weights.h5` layout: layers/conv2d, layers/conv2d_1, ... (+ weightless pools)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_group("layers/input_layer/vars")
        for i in order or range(len(pairs)):
            group = f.create_group(f"layers/conv2d{'_' + str(i) if i else ''}/vars")
            group["0"], group["1"] = pairs[i]
        for i in range(5):
            f.create_group(f"layers/max_pooling2d{'_' + str(i) if i else ''}/vars")
    return path


def numpy_features(pairs, images: np.ndarray) -> np.ndarray:
    """VGG16 + caffe preprocessing + global averages of block4_pool and block5_pool side by side, in float64
    numpy (im2col convolutions)."""
    x = images.astype(np.float64)[..., ::-1] - np.array(vgg16_onnx.BGR_MEAN)
    layer, pooled = 0, []
    for block, convs in enumerate(vgg16_onnx.BLOCKS, 1):
        for _ in range(convs):
            kernel, bias = pairs[layer]
            n, h, w, c = x.shape
            padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
            cols = np.stack([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=3)
            x = np.maximum(cols.reshape(n, h, w, 9 * c) @ kernel.reshape(9 * c, -1) + bias, 0)
            layer += 1
        n, h, w, c = x.shape
        x = x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
        if f"block{block}_pool" in vgg16_onnx.FEATURE_POOLS:
            pooled.append(x.mean(axis=(1, 2)))
    return np.concatenate(pooled, axis=1)


def heavy_modules_after_importing(module: str) -> str:
    """Which of TensorFlow, Keras, ONNX, ONNX Runtime and h5py importing `module` loads, printed as a sorted list
    ("[]": none), in a fresh interpreter."""
    code = (f"import sys; import {module}; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'onnx', 'onnxruntime', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip()
