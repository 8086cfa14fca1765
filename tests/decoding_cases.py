"""The awkward photos every copy of THE decoder must read alike (engine, the zip's predict.py, the shared app):
16-bit, palette with transparency, LA, CMYK, EXIF-rotated; and truncated files, refused in the same words."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.hostile import cmyk_jpeg, encode, exif_rotated_jpeg, jpeg, palette_with_transparency, png, truncated


def awkward_photos() -> dict[str, bytes]:
    ramp = (np.arange(48 * 40, dtype=np.uint32).reshape(40, 48) * 34).astype(np.uint16)  # 0..65246: all 16 bits
    la = Image.merge("LA", (Image.fromarray(np.tile(np.arange(48, dtype=np.uint8) * 5, (40, 1))),
                             Image.fromarray(np.tile(np.arange(40, dtype=np.uint8)[:, None] * 6, (1, 48)))))
    return {
        "sixteen-bit.png": encode(Image.fromarray(ramp), "PNG"),
        "palette-transparent.png": palette_with_transparency(5),
        "grey-alpha-LA.png": encode(la, "PNG"),
        "cmyk.jpg": cmyk_jpeg(6),
        "exif-rotated.jpg": exif_rotated_jpeg(),
    }


def truncated_photos() -> dict[str, bytes]:
    return {"truncated.jpg": truncated(jpeg(900, (64, 64))), "truncated.png": truncated(png(901, (64, 64)))}
