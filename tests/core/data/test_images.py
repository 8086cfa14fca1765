"""Tests for quasar_core.data.images: checking and decoding one file, and THE one resize.

``decode_image`` returns full-size pixels; ``resize`` must equal Keras' Resizing layer with
antialiasing (what every saved model holds), and ``fit_within`` makes aspect-kept thumbnails.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image, ImageFile

from quasar_core.data import DecodedImage, ImageRejected, Limits, decode_image, fit_within, resize, resize_square
from quasar_core.errors import QuasarError
from tests.hostile import (HOSTILE, animated_gif, encode, exif_rotated_jpeg, huge_png, noise, png, sixteen_bit_png,
                           zip_bytes)


def reject_reason(data: bytes, limits: Limits | None = None) -> str:
    with pytest.raises(ImageRejected) as info:
        decode_image(data, "x", limits=limits or Limits())
    assert isinstance(info.value, QuasarError)
    return info.value.reason


# --------------------------------------------------------------------------- decode_image


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_decode_rejects_hostile_file_with_reason(name):
    make, words = HOSTILE[name]
    assert words in reject_reason(make())


def test_decode_valid_rgb_png():
    pixels, size, digest = decode_image(png(1, (40, 30)), "a.png", limits=Limits())
    assert pixels.shape == (30, 40, 3) and pixels.dtype == np.uint8
    assert size == (40, 30)
    assert np.array_equal(pixels, np.asarray(noise(1, (40, 30))))
    assert len(digest) == 64
    decoded = decode_image(png(1, (40, 30)), "a.png", limits=Limits())
    assert isinstance(decoded, DecodedImage)
    assert decoded.original_size == size and decoded.digest == digest and np.array_equal(decoded.pixels, pixels)


def test_same_picture_in_two_formats_has_same_digest():
    picture = noise(5)
    digests = {decode_image(encode(picture, fmt), "x", limits=Limits())[2] for fmt in ("PNG", "BMP", "TIFF")}
    assert len(digests) == 1
    assert decode_image(png(6), "y", limits=Limits())[2] not in digests


def test_exif_orientation_is_applied():
    pixels, size, _ = decode_image(exif_rotated_jpeg(), "r.jpg", limits=Limits())
    assert pixels.shape == (40, 20, 3)  # 40x20 stored, shown 20 wide and 40 high
    assert size == (20, 40)
    top, bottom = pixels[5, 10].astype(int), pixels[35, 10].astype(int)
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_animated_gif_uses_first_frame():
    pixels, _, _ = decode_image(animated_gif(), "a.gif", limits=Limits())
    assert tuple(pixels[0, 0]) == (255, 0, 0)


def test_sixteen_bit_png_is_scaled_not_clipped():
    mid, _, _ = decode_image(sixteen_bit_png(32896), "m.png", limits=Limits())
    full, _, _ = decode_image(sixteen_bit_png(65535), "f.png", limits=Limits())
    assert tuple(mid[0, 0]) == (128, 128, 128)
    assert tuple(full[0, 0]) == (255, 255, 255)


def test_palette_transparency_becomes_white():
    image = Image.new("P", (20, 20), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(0, (0, 0, 10, 20))  # left half uses the transparent index
    pixels, _, _ = decode_image(encode(image, "PNG", transparency=0), "p.png", limits=Limits())
    assert tuple(pixels[5, 2]) == (255, 255, 255)
    assert tuple(pixels[5, 15]) == (255, 0, 0)


def test_alpha_is_composited_on_white():
    image = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (10, 0, 20, 20))
    la = Image.new("LA", (20, 20), (0, 128))  # half-transparent black
    pixels, _, _ = decode_image(encode(image, "PNG"), "a.png", limits=Limits())
    assert tuple(pixels[0, 0]) == (255, 255, 255)
    assert tuple(pixels[0, 15]) == (0, 0, 255)
    grey, _, _ = decode_image(encode(la, "PNG"), "la.png", limits=Limits())
    assert abs(int(grey[0, 0, 0]) - 127) <= 1


def test_cmyk_jpeg_becomes_rgb():
    image = Image.new("CMYK", (20, 20), (0, 255, 255, 0))  # pure red in CMYK
    pixels, _, _ = decode_image(encode(image, "JPEG", quality=95), "c.jpg", limits=Limits())
    red, green, blue = (int(v) for v in pixels[10, 10])
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize("mode", ["1", "L", "I", "F", "LA", "P", "RGB", "RGBA"])
def test_all_common_modes_become_rgb(mode):
    image = noise(9, (24, 24)).convert(mode)
    fmt = "TIFF" if mode in ("I", "F") else "PNG"
    pixels, _, _ = decode_image(encode(image, fmt), "m", limits=Limits())
    assert pixels.shape == (24, 24, 3) and pixels.dtype == np.uint8


def test_decoded_pixels_are_full_size_and_fit_within_keeps_aspect():
    pixels, size, _ = decode_image(png(3, (600, 300)), "wide.png", limits=Limits())
    assert size == (600, 300)
    assert pixels.shape == (300, 600, 3)  # nothing is downscaled when decoding
    thumbnail = fit_within(pixels, 256)
    assert thumbnail.shape == (128, 256, 3) and thumbnail.dtype == np.uint8
    assert fit_within(pixels, 100).shape == (50, 100, 3)
    assert fit_within(pixels.transpose(1, 0, 2), 100).shape == (100, 50, 3)  # tall: the height is the long side
    # Small enough already: the same pixels.
    assert np.array_equal(fit_within(pixels, 600), pixels)
    # A flat colour stays that colour (rounded, never wrapped around).
    flat = np.full((300, 600, 3), (0, 128, 255), np.uint8)
    assert np.array_equal(np.unique(fit_within(flat, 100).reshape(-1, 3), axis=0), [[0, 128, 255]])


def test_huge_images_are_rejected_from_the_header_before_decoding(monkeypatch):
    def no_decoding(self):
        raise AssertionError("decoded pixels of an image that should be refused from its header")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    # 400 megapixels: above Pillow's own bomb guard as well as ours.
    start = time.perf_counter()
    assert "too many pixels" in reject_reason(huge_png(20000, 20000))
    # 64 megapixels: below Pillow's guard, so our header check does the work.
    reason = reject_reason(huge_png(8000, 8000))
    assert "8000x8000 = 64 megapixels" in reason and "QUASAR_MAX_IMAGE_PIXELS" in reason
    assert "1.2e+03 megapixels" not in reason
    # A lowered limit applies just the same.
    assert "too many pixels" in reject_reason(png(1, (100, 100)), Limits(max_image_pixels=5000))
    assert time.perf_counter() - start < 1.0


def test_unidentified_bytes_are_described():
    assert "a PDF document" in reject_reason(b"%PDF-1.4\n" + bytes(100))
    assert "a zip archive" in reject_reason(zip_bytes({"a.txt": b"a"}))
    assert "a web page" in reject_reason(b"<!DOCTYPE html><html></html>")
    assert "(the file is text)" in reject_reason("Grüße, ünïcödé text 🐈\n".encode() * 10)


# --------------------------------------------------------------------------- THE resize


@pytest.fixture(scope="module")
def keras_resize():
    """Keras' Resizing layer with antialiasing, as every saved model holds it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    def run(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
        layer = keras.layers.Resizing(height, width, interpolation="bilinear", antialias=True)
        return np.asarray(layer(np.asarray(pixels, dtype=np.float32)[None]))[0]

    return run


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("source, target", [
    ((40, 40), (224, 224)),  # up, square
    ((300, 200), (32, 32)),  # down, to a square
    ((37, 53), (19, 101)),  # odd sizes, down one way and up the other
    ((17, 29), (64, 47)),  # odd, non-square, up
    ((480, 640), (96, 128)),  # non-square, down, aspect kept
    ((100, 60), (100, 60)),  # the same size
    ((16, 16), (1, 1)),  # to one pixel
])
def test_resize_equals_keras_resizing_with_antialias(keras_resize, source, target):
    pixels = photo(*source, seed=sum(source))
    ours = resize(pixels, *target)
    assert ours.shape == (*target, 3) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, keras_resize(pixels, *target), rtol=0, atol=1e-3)


def test_resize_of_a_phone_photo_equals_keras_and_is_fast(keras_resize):
    pixels = photo(4000, 3000, seed=7)  # a 3000x4000 portrait phone photo
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        ours = resize_square(pixels, 224)
        timings.append(time.perf_counter() - start)
    np.testing.assert_allclose(ours, keras_resize(pixels, 224, 224), rtol=0, atol=1e-3)
    assert min(timings) < 0.5, timings  # much faster than a second


def test_resize_square_and_argument_checks():
    pixels = photo(30, 50)
    assert resize_square(pixels, 20).shape == (20, 20, 3)
    assert np.array_equal(resize_square(pixels, 20), resize(pixels, 20, 20))
    assert np.allclose(resize(np.full((9, 13, 3), 77, np.uint8), 31, 5), 77, atol=1e-3)  # weights sum to 1
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        resize(np.zeros((10, 10), np.uint8), 5, 5)
    for kwargs, quoted in (({"height": 0, "width": 5}, "height=0"), ({"height": 5, "width": True}, "width=True"),
                           ({"height": 2.5, "width": 5}, "height=2.5")):
        with pytest.raises(ValueError, match=quoted):
            resize(pixels, **kwargs)


# --------------------------------------------------------------------------- the one decoder file


def test_a_truncated_photo_is_refused_in_plain_words_first():
    from tests.hostile import jpeg, truncated

    for data in (truncated(jpeg(900, (64, 64))), truncated(png(901, (64, 64)))):
        reason = reject_reason(data)
        assert reason.startswith("this photo is cut short — the file is incomplete"), reason
        assert reason.index("Pillow:") > reason.index("incomplete")  # the technical detail after


def test_the_decoder_file_needs_nothing_from_quasar_core():
    """photo_decoding.py is copied byte for byte into exports: numpy, Pillow and the standard library only."""
    import ast
    import sys

    from quasar_core.data import photo_decoding

    tree = ast.parse(open(photo_decoding.__file__, encoding="utf-8").read())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module and node.level == 0}
    assert modules - set(sys.stdlib_module_names) == {"numpy", "PIL"}, modules
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
