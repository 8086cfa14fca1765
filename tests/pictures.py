"""Pictures the tests share that no training photo looks like."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def garden_jpeg() -> bytes:
    """Bright discs on a green lawn, nothing like Fashion-MNIST's grey clothes: a 128 px JPEG."""
    image = Image.new("RGB", (128, 128), (30, 160, 60))
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(3)
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(0, 110, 2))
        draw.ellipse((x, y, x + 30, y + 30), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def features_with_copies(n: int, copied=(0, 0, 3), *, d: int = 64, seed: int = 0) -> np.ndarray:
    """`n` distinct ReLU-like feature rows, then a near-copy of each row in `copied` (rescaled by 1.3, a
    little noise: as re-encoded, resized photos look to VGG16)."""
    photos = np.abs(np.random.default_rng(seed).normal(0, 1, (n, d))).astype(np.float32)
    noise = np.abs(np.random.default_rng(seed + 1).normal(0, 0.01, (len(copied), d))).astype(np.float32)
    return np.concatenate([photos, photos[list(copied)] * 1.3 + noise])
