"""Photos as pixels: checking and decoding one file, and THE one resize every model input goes through.

``resize`` is bilinear with antialiasing, numerically the same as
``tf.image.resize(..., antialias=True)`` and so as the ``keras.layers.Resizing(antialias=True)``
layer inside every saved model: a photo is seen the same way in training, in the app's
Predict, by Grad-CAM and by an exported model given a raw 4000x3000 phone photo. It is
written in numpy (a sparse matrix per axis, as TensorFlow's ScaleAndTranslate computes it) so
that a training run does not have to import TensorFlow to resize.
"""

from __future__ import annotations

import codecs
import hashlib
import io
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from quasar_core.data.limits import ImageRejected, Limits

SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF"})
# Phones save JPEGs with a second (depth/preview) picture; Pillow calls those MPO.


class DecodedImage(NamedTuple):
    pixels: np.ndarray  # uint8 RGB, full size, EXIF orientation applied
    original_size: tuple[int, int]  # (width, height)
    digest: str  # sha256 of the RGB pixels and their shape


def decode_image(data: bytes, name: str, *, limits: Limits) -> DecodedImage:
    """Check and decode one image file; raises ``ImageRejected`` with a plain-language reason.

    The header is checked first (format, pixel count, smallest side), so a huge or tiny image
    costs nothing to refuse. Animated GIF/WebP: the first frame.
    """
    if not data:
        raise ImageRejected("empty file (0 bytes); remove it or copy the picture again")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        what = _describe_unknown_bytes(data)
        if what.startswith("an HEIC"):
            raise ImageRejected(
                f"not a supported image (the file is {what}); export it as JPEG, or on the iPhone choose "
                "Settings > Camera > Formats > Most Compatible"
            ) from None
        raise ImageRejected(f"not an image (the file is {what}); remove it or replace it with a JPEG/PNG") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected(_too_many_pixels_reason(None, limits)) from None
    except Exception as err:  # Pillow's parsers raise many types on malformed headers.
        raise ImageRejected(_corrupt_reason(err)) from None

    with image:
        if image.format not in SUPPORTED_FORMATS:
            raise ImageRejected(f"unsupported image format ({image.format}); save it as JPEG or PNG")
        width, height = image.size
        if width * height > limits.max_image_pixels:
            raise ImageRejected(_too_many_pixels_reason((width, height), limits))
        if min(width, height) < limits.min_image_side:
            side = limits.min_image_side
            raise ImageRejected(
                f"too small ({width}x{height} pixels; at least {side}x{side} needed); remove it or use a larger copy"
            )
        try:
            image.load()
            rgb = _to_rgb(_apply_exif_orientation(image))
            pixels = np.array(rgb, dtype=np.uint8)
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(_too_many_pixels_reason((width, height), limits)) from None
        except MemoryError:
            raise ImageRejected("too large to decode in the memory available; shrink it or remove it") from None
        except Exception as err:  # truncated data, broken streams, bad tables...
            raise ImageRejected(_corrupt_reason(err)) from None
    h, w = pixels.shape[:2]
    digest = hashlib.sha256(f"{w}x{h}x3:".encode() + pixels.tobytes()).hexdigest()
    return DecodedImage(pixels, (w, h), digest)


# --------------------------------------------------------------------------- THE resize


def resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """An (H, W, C) image resized to (height, width, C) float32: bilinear, antialiased when shrinking."""
    image = np.asarray(pixels)
    if image.ndim != 3:
        raise ValueError(f"pixels must be an (H, W, C) array, got shape {image.shape!r}.")
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a whole number of at least 1. Received: {name}={value!r}")
    h, w, c = image.shape
    rows = (_weights(h, int(height)) @ image.reshape(h, w * c).astype(np.float32, copy=False)).reshape(height, w, c)
    cols = _weights(w, int(width)) @ rows.transpose(1, 0, 2).reshape(w, height * c)
    return np.ascontiguousarray(cols.reshape(width, height, c).transpose(1, 0, 2), dtype=np.float32)


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """What every model sees: the photo as a ``size`` x ``size`` float32 RGB square (aspect not kept)."""
    return resize(pixels, size, size)


def fit_within(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """A uint8 copy no larger than ``max_side`` on its longer side, aspect kept (thumbnails)."""
    h, w = np.asarray(pixels).shape[:2]
    if max(h, w) <= max_side:
        return np.asarray(pixels, dtype=np.uint8)
    scale = max_side / max(h, w)
    out = resize(pixels, max(1, round(h * scale)), max(1, round(w * scale)))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@lru_cache(maxsize=512)
def _weights(in_size: int, out_size: int):
    """The (out, in) sparse matrix of a triangle kernel scaled by the shrink factor, rows summing to 1.

    Follows ComputeSpansCore in TensorFlow's scale_and_translate_op.cc (float32 arithmetic,
    half-pixel centres, spans clamped to the image), which tf.image.resize(antialias=True) runs.
    """
    import scipy.sparse

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
    rows = np.repeat(np.arange(out_size), span)
    return scipy.sparse.csr_matrix((weight.ravel(), (rows, np.minimum(source, in_size - 1).ravel())),
                                   shape=(out_size, in_size), dtype=np.float32)


# --------------------------------------------------------------------------- decoding details


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
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
        raise ImageRejected(f"unsupported colour mode ({mode}); save it as an ordinary RGB JPEG or PNG") from None


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


def _too_many_pixels_reason(size: tuple[int, int] | None, limits: Limits) -> str:
    limit = f"the limit is {limits.max_image_pixels / 1e6:.3g} megapixels, set by QUASAR_MAX_IMAGE_PIXELS"
    if size is None:  # Pillow's own bomb guard fired before the size was known to us
        return f"too many pixels to open safely ({limit}); shrink it or remove it"
    width, height = size
    megapixels = width * height / 1e6
    return f"too many pixels ({width}x{height} = {megapixels:.3g} megapixels; {limit}); shrink it or remove it"


def _corrupt_reason(err: BaseException) -> str:
    detail = str(err) or type(err).__name__
    return f"corrupt or truncated image (Pillow: {detail}); re-export it or remove it"


_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"8BPS", "a Photoshop document (PSD)"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document"),
)


def _describe_unknown_bytes(data: bytes) -> str:
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
