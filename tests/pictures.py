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
