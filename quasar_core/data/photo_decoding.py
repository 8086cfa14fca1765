"""THE photo decoder and THE resize: one file, used by the engine and copied byte for byte into every export.

The engine (quasar_core.data.images), the exported zip's predict.py and the shared predict-only
app all read a photo with ``decode_photo`` and make the model's input with ``resize_square``.
This file imports only numpy and Pillow (never quasar_core, never scipy or TensorFlow), so the
exports carry it unchanged; a test proves their copies are identical to this one.

``decode_photo``: the header is checked first (format, pixel count, smallest side), so a huge or
tiny photo costs nothing to refuse; then EXIF orientation is applied, transparency is put on
white (RGBA, LA, PA, palette or grey with a transparent colour), 16-bit and 32-bit greyscale is
scaled (never clipped) to 8 bits, CMYK and the rest become RGB; animated GIF/WebP give their
first frame. A refused file raises ``PhotoRejected``: plain words first, what to do, then the
technical detail. Every message lives here.

``resize``: bilinear with antialiasing, the numbers of ``tf.image.resize(..., antialias=True)`` and so of
the ``keras.layers.Resizing(antialias=True)`` layer inside every saved model (TensorFlow's
ScaleAndTranslate: a triangle kernel widened by the shrink factor, half-pixel centres, spans
clamped to the image), written as a banded weighted sum per axis in numpy.
"""

from __future__ import annotations

import codecs
import io
from functools import lru_cache

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

DECODER_VERSION = 1
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF"})
# Phones save JPEGs with a second (depth/preview) picture; Pillow calls those MPO.
UPLOAD_FORMATS = "JPEG, PNG, WebP, GIF, BMP or TIFF"


class PhotoRejected(ValueError):
    """A file that cannot be used as a photo. ``reason``: plain words first, what to do, then any detail."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- the words (all of them here)
def _empty() -> str:
    return "empty file (0 bytes); remove it or copy the picture again"


def _not_an_image(what: str) -> str:
    if what.startswith("an HEIC"):
        return (f"not a supported image (the file is {what}); export it as JPEG, or on the iPhone choose "
                "Settings > Camera > Formats > Most Compatible")
    return f"not an image (the file is {what}); remove it or replace it with a JPEG/PNG"


def _unsupported_format(fmt) -> str:
    return f"unsupported image format ({fmt}); save it as JPEG or PNG"


def _too_small(width: int, height: int, side: int) -> str:
    return f"too small ({width}x{height} pixels; at least {side}x{side} needed); remove it or use a larger copy"


def _too_many_pixels(size, max_pixels: int, limit_note: str) -> str:
    limit = f"the limit is {max_pixels / 1e6:.3g} megapixels" + (f", {limit_note}" if limit_note else "")
    if size is None:  # Pillow's own bomb guard fired before the size was known
        return f"too many pixels to open safely ({limit}); shrink it or remove it"
    width, height = size
    return (f"too many pixels ({width}x{height} = {width * height / 1e6:.3g} megapixels; {limit}); "
            "shrink it or remove it")


def _out_of_memory() -> str:
    return "too large to decode in the memory available; shrink it or remove it"


def _unusual_mode(mode: str) -> str:
    return f"unsupported colour mode ({mode}); save it as an ordinary RGB JPEG or PNG"


def _damaged(err: BaseException) -> str:
    """Plain words first ("cut short" when the file ends early), then Pillow's own words."""
    detail = str(err) or type(err).__name__
    lowered = detail.lower()
    if isinstance(err, EOFError) or "truncated" in lowered or "unexpected end" in lowered:
        return (f"this photo is cut short — the file is incomplete; copy or export it again, or remove it "
                f"(detail: corrupt or truncated image; Pillow: {detail})")
    return (f"this photo is damaged and cannot be read; export it again, or remove it "
            f"(detail: corrupt or truncated image; Pillow: {detail})")


# --------------------------------------------------------------------------- decoding
def decode_photo(data: bytes, *, max_pixels: int = 40_000_000, min_side: int = 16,
                 limit_note: str = "") -> tuple[np.ndarray, tuple[int, int]]:
    """(uint8 RGB pixels (H, W, 3) at full size and upright, their (width, height)). Raises PhotoRejected.

    `limit_note` says where `max_pixels` comes from (e.g. "set by QUASAR_MAX_IMAGE_PIXELS").
    """
    if not data:
        raise PhotoRejected(_empty())
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise PhotoRejected(_not_an_image(describe_bytes(data))) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRejected(_too_many_pixels(None, max_pixels, limit_note)) from None
    except Exception as err:  # Pillow's parsers raise many types on malformed headers.
        raise PhotoRejected(_damaged(err)) from None

    with image:
        if image.format not in SUPPORTED_FORMATS:
            raise PhotoRejected(_unsupported_format(image.format))
        width, height = image.size
        if width * height > max_pixels:
            raise PhotoRejected(_too_many_pixels((width, height), max_pixels, limit_note))
        if min(width, height) < min_side:
            raise PhotoRejected(_too_small(width, height, min_side))
        try:
            image.load()
            pixels = np.array(_to_rgb(_upright(image)), dtype=np.uint8)
        except PhotoRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoRejected(_too_many_pixels((width, height), max_pixels, limit_note)) from None
        except MemoryError:
            raise PhotoRejected(_out_of_memory()) from None
        except Exception as err:  # truncated data, broken streams, bad tables...
            raise PhotoRejected(_damaged(err)) from None
    return pixels, (int(pixels.shape[1]), int(pixels.shape[0]))


def _upright(image: Image.Image) -> Image.Image:
    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) == 1:
            return image  # nothing to do; avoid a full-size copy
        return ImageOps.exif_transpose(image)
    except Exception:
        # Broken EXIF should not cost the user a good picture; keep it as stored.
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        gray = _scale_to_uint8(np.asarray(image), mode)
        return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB", "1") and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        # Transparent areas become white, as in most viewers, not black.
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError:
        raise PhotoRejected(_unusual_mode(mode)) from None


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """High-bit-depth greyscale to 8-bit by scaling the range, never by clipping."""
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        scaled = values.astype(np.float64) / 257.0  # full 16-bit range onto 0..255
    else:
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if mode == "F" and low >= 0.0 and high <= 1.0:
            scaled = values * 255.0  # float image in 0..1
        elif low >= 0.0 and high <= 255.0:
            scaled = values
        elif low >= 0.0 and high <= 65535.0:
            scaled = values / 257.0  # 16-bit data held in a 32-bit mode
        else:
            scaled = (values - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"8BPS", "a Photoshop document (PSD)"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document"),
)


def describe_bytes(data: bytes) -> str:
    """What a file that is not a picture is: "a PDF document", "text", "an HEIC photo (the iPhone format)"..."""
    head = data[:512]
    for signature, what in _SIGNATURES:
        if head.startswith(signature):
            return what
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "an HEIC photo (the iPhone format)"
        return "a video or HEIF file"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "a web page (HTML)"
    if b"<svg" in lowered:
        return "an SVG drawing"
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data[:4096], final=False)
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        return "text"
    return "not in a picture format that can be read"


# --------------------------------------------------------------------------- THE resize
def resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """An (H, W, C) image resized to (height, width, C) float32: bilinear, antialiased when shrinking."""
    image = np.asarray(pixels)
    if image.ndim != 3:
        raise ValueError(f"pixels must be an (H, W, C) array, got shape {image.shape!r}.")
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a whole number of at least 1. Received: {name}={value!r}")
    if image.dtype != np.uint8:
        image = image.astype(np.float32, copy=False)  # uint8 is gathered as it is (no full-size float copy)
    h, w, c = image.shape
    rows = _weighted_sum(image.reshape(h, w * c), *_band(h, int(height))).reshape(int(height), w, c)
    columns = _weighted_sum(rows.transpose(1, 0, 2).reshape(w, int(height) * c), *_band(w, int(width)))
    return np.ascontiguousarray(columns.reshape(int(width), int(height), c).transpose(1, 0, 2), dtype=np.float32)


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """What every model sees: the photo as a ``size`` x ``size`` float32 RGB square (aspect not kept)."""
    return resize(pixels, size, size)


def _weighted_sum(matrix: np.ndarray, source: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """out[i] = sum_k weight[i, k] * matrix[source[i, k]], in float32, k in order."""
    out = weight[:, 0, None] * matrix[source[:, 0]]
    for k in range(1, source.shape[1]):
        out += weight[:, k, None] * matrix[source[:, k]]
    return out.astype(np.float32, copy=False)


@lru_cache(maxsize=512)
def _band(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(source rows (out, span), their weights (out, span) float32, each row summing to 1).

    Follows ComputeSpansCore in TensorFlow's scale_and_translate_op.cc (float32 arithmetic,
    half-pixel centres, spans clamped to the image), which tf.image.resize(antialias=True) runs.
    """
    scale = np.float32(out_size) / np.float32(in_size)
    inv_scale = np.float32(1.0 / float(scale))
    kernel_scale = np.float32(max(float(inv_scale), 1.0))  # upscaling only interpolates
    sample = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * inv_scale
    start = np.clip(np.ceil(sample - kernel_scale - np.float32(0.5)), 0, in_size - 1).astype(np.int64)
    end = np.clip(np.floor(sample + kernel_scale - np.float32(0.5)), 0, in_size - 1).astype(np.int64) + 1
    span = int((end - start).max())
    source = start[:, None] + np.arange(span)[None, :]
    distance = (source.astype(np.float32) + np.float32(0.5) - sample[:, None]) / kernel_scale
    weight = np.where(source < end[:, None], np.maximum(np.float32(0), np.float32(1) - np.abs(distance)), 0)
    weight = (weight / weight.sum(axis=1, keepdims=True)).astype(np.float32)
    source = np.minimum(source, in_size - 1)
    source.flags.writeable = weight.flags.writeable = False  # shared by every caller through the cache
    return source, weight
