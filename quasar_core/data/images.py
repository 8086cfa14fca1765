"""Photos as pixels for the engine: checking and decoding one file, THE one resize, thumbnails.

The decoder and the resize themselves are in ``photo_decoding.py``, a file that imports nothing
from quasar_core, so the exported ``predict.py`` and the shared app carry it byte for byte: a
photo is read and seen the same way in training, in the app's Predict, by Grad-CAM, by an
export and by the shared app. ``resize`` is bilinear with antialiasing, numerically the same as
``tf.image.resize(..., antialias=True)`` and so as the ``keras.layers.Resizing(antialias=True)``
layer inside every saved model, given a raw 4000x3000 phone photo or a small one. The messages
for refused files are in photo_decoding.py too (one place).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from quasar_core.data import photo_decoding
from quasar_core.data.limits import ImageRejected, Limits
from quasar_core.data.photo_decoding import SUPPORTED_FORMATS, resize, resize_square  # noqa: F401 (re-exported)

MAX_PIXELS_NOTE = "set by QUASAR_MAX_IMAGE_PIXELS"


class DecodedImage(NamedTuple):
    pixels: np.ndarray  # uint8 RGB, full size, EXIF orientation applied
    original_size: tuple[int, int]  # (width, height)
    digest: str  # sha256 of the RGB pixels and their shape


def decode_image(data: bytes, name: str, *, limits: Limits) -> DecodedImage:
    """Check and decode one image file; raises ``ImageRejected`` with a plain-language reason.

    The header is checked first (format, pixel count, smallest side), so a huge or tiny image
    costs nothing to refuse. Animated GIF/WebP: the first frame. (photo_decoding.decode_photo.)
    """
    try:
        pixels, size = photo_decoding.decode_photo(data, max_pixels=limits.max_image_pixels,
                                                   min_side=limits.min_image_side, limit_note=MAX_PIXELS_NOTE)
    except photo_decoding.PhotoRejected as refused:
        raise ImageRejected(refused.reason) from None
    h, w = pixels.shape[:2]
    digest = hashlib.sha256(f"{w}x{h}x3:".encode() + pixels.tobytes()).hexdigest()
    return DecodedImage(pixels, size, digest)


def fit_within(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """A uint8 copy no larger than ``max_side`` on its longer side, aspect kept (thumbnails)."""
    h, w = np.asarray(pixels).shape[:2]
    if max(h, w) <= max_side:
        return np.asarray(pixels, dtype=np.uint8)
    scale = max_side / max(h, w)
    out = resize(pixels, max(1, round(h * scale)), max(1, round(w * scale)))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
