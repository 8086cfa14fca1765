"""Load a user's labelled images (folder, zip or uploads) into memory, safely.

One sub-folder per class, like Keras ``image_dataset_from_directory``. Every file is
checked and decoded once; files that cannot be used are listed in a ``DataReport``
with the reason in plain words, and the usable ones are kept downscaled in memory.
Zip archives are read member by member in memory and never extracted to disk.

Loaders given ``limits=None`` use ``Limits.from_env()``, so the QUASAR_* variables
that error messages point to really do change the limits.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import math
import os
import re
import stat
import struct
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from quasar_core.errors import DatasetError, QuasarError, ResourceLimitError

__all__ = [
    "Limits",
    "Sample",
    "Problem",
    "DataReport",
    "Dataset",
    "Split",
    "ImageRejected",
    "DatasetRejected",
    "load_folder",
    "load_zip",
    "load_uploads",
    "load_dataset",
    "decode_image",
    "suggest_image_size",
    "split_dataset",
]

MB = 1024**2
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF"})
# Phones save JPEGs with a second (depth/preview) picture; Pillow calls those MPO.
IGNORED_FILE_NAMES = frozenset({"thumbs.db", "desktop.ini"})
IGNORED_FOLDER_NAMES = frozenset({"__macosx"})
IMAGE_SIZE_CANDIDATES = (64, 96, 128, 160, 224)
IMBALANCE_RATIO = 3.0
FEW_IMAGES_PER_CLASS = 20
# A member this big that shrank more than this is a zip bomb, not a photo.
BOMB_MEMBER_BYTES = 10 * MB
BOMB_RATIO = 200
PROBLEM_KINDS = ("skipped", "duplicate", "warning")

NOT_IN_A_CLASS_FOLDER = "not inside a class folder; move it into the folder of its class"
BLANK_CLASS_FOLDER = "its class folder name is blank; rename the folder"
ZIP_IN_FOLDER = "a zip inside the folder; unzip it and put its pictures in class folders"
ZIP_IN_ZIP = "a zip inside the zip; unzip it and upload its folders"
UNSAFE_ZIP_PATH = "unsafe path in the zip (it points outside the zip's folder); remove it"


class ImageRejected(QuasarError):
    """One file cannot be used as a training image; ``reason`` says why and what to do."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class DatasetRejected(DatasetError):
    """A ``DatasetError`` that also carries the report, so the caller can list what was skipped."""

    def __init__(self, message: str, report: "DataReport"):
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class Limits:
    """Resource limits, all enforced before any pixel is decoded."""

    max_upload_bytes: int = 200 * MB
    max_extracted_bytes: int = 1024**3
    max_images: int = 3000
    max_image_pixels: int = 40_000_000
    min_image_side: int = 16
    min_images_per_class: int = 5
    store_max_side: int = 256

    def __post_init__(self):
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Limits.{name} must be a whole number of at least 1. Received: {name}={value!r}")

    @classmethod
    def from_env(cls) -> "Limits":
        """Defaults overridden by QUASAR_MAX_UPLOAD_MB, QUASAR_MAX_IMAGES,
        QUASAR_MAX_IMAGE_PIXELS and QUASAR_MAX_EXTRACTED_MB when they are set."""
        overrides = {}
        for var, field_name, scale in (
            ("QUASAR_MAX_UPLOAD_MB", "max_upload_bytes", MB),
            ("QUASAR_MAX_EXTRACTED_MB", "max_extracted_bytes", MB),
            ("QUASAR_MAX_IMAGES", "max_images", None),
            ("QUASAR_MAX_IMAGE_PIXELS", "max_image_pixels", None),
        ):
            raw = os.environ.get(var)
            if raw is None or not raw.strip():
                continue
            overrides[field_name] = _parse_env_number(var, raw, scale)
        return cls(**overrides)


def _parse_env_number(var: str, raw: str, scale: int | None) -> int:
    text = raw.strip().replace("_", "")
    try:
        # Megabytes may be fractional ("0.5"); counts must be whole numbers.
        number = float(text) if scale else int(text)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number <= 0:
        kind = "a number of megabytes above 0" if scale else "a whole number above 0"
        raise ValueError(f"{var}={raw!r} is not valid: expected {kind}.")
    value = int(number * scale) if scale else int(number)
    if value < 1:
        raise ValueError(f"{var}={raw!r} is not valid: it is less than one byte.")
    return value


# --------------------------------------------------------------------------- records


@dataclass
class Sample:
    name: str
    label: str
    pixels: np.ndarray
    original_size: tuple[int, int]
    digest: str


@dataclass
class Problem:
    file: str
    reason: str
    kind: str  # "skipped" | "duplicate" | "warning"

    def __post_init__(self):
        if self.kind not in PROBLEM_KINDS:
            raise ValueError(f"Problem.kind must be one of {PROBLEM_KINDS}. Received: kind={self.kind!r}")


@dataclass
class DataReport:
    source: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def skipped(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "skipped"]

    def duplicates(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "duplicate"]

    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "warning"]

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "counts": dict(self.counts),
            "problems": [{"file": p.file, "reason": p.reason, "kind": p.kind} for p in self.problems],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DataReport":
        return cls(
            source=str(d["source"]),
            counts={str(k): int(v) for k, v in d.get("counts", {}).items()},
            problems=[Problem(str(p["file"]), str(p["reason"]), str(p["kind"])) for p in d.get("problems", [])],
        )

    def summary_lines(self) -> list[str]:
        total = sum(self.counts.values())
        per_class = ", ".join(f"{label} {count}" for label, count in self.counts.items())
        lines = [f"{self.source}: {total} usable images in {len(self.counts)} classes ({per_class})."]
        sections = (
            (self.skipped(), "file was skipped", "files were skipped"),
            (self.duplicates(), "duplicate was used once", "duplicates were used once"),
        )
        for problems, one, many in sections:
            if problems:
                lines.append(f"{len(problems)} {one if len(problems) == 1 else many}:")
                lines.extend(f"  {p.file}: {p.reason}" for p in problems)
        for p in self.warnings():
            about = "" if p.file == self.source else f"{p.file}: "  # a warning about the data as a whole
            lines.append(f"Warning: {about}{p.reason}")
        return lines


@dataclass
class Dataset:
    samples: list[Sample]
    labels: list[str]
    report: DataReport

    def __len__(self) -> int:
        return len(self.samples)

    def _indices(self, indices) -> np.ndarray:
        if indices is None:
            return np.arange(len(self.samples), dtype=np.int64)
        return np.asarray(indices, dtype=np.int64).reshape(-1)

    def targets(self, indices=None) -> np.ndarray:
        index_of = {label: i for i, label in enumerate(self.labels)}
        return np.array([index_of[self.samples[i].label] for i in self._indices(indices)], dtype=np.int64)

    def images(self, indices=None, *, size: int) -> np.ndarray:
        """Each sample resized to ``size`` x ``size`` (aspect not kept, like Keras)."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"`size` must be a whole number of at least 1. Received: size={size!r}")
        chosen = self._indices(indices)
        out = np.empty((len(chosen), size, size, 3), dtype=np.uint8)
        for row, i in enumerate(chosen):
            pixels = self.samples[i].pixels
            if pixels.shape[:2] == (size, size):
                out[row] = pixels
            else:
                resized = Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
                out[row] = np.asarray(resized)
        return out

    def median_source_side(self) -> float:
        if not self.samples:
            raise ValueError("The dataset has no samples, so it has no median image side.")
        return float(np.median([min(s.original_size) for s in self.samples]))


def suggest_image_size(dataset: Dataset) -> int:
    """Training side length: enough to upscale small sources ~3x, never above VGG16's 224."""
    wanted = 3 * dataset.median_source_side()
    for candidate in IMAGE_SIZE_CANDIDATES:
        if candidate >= wanted:
            return candidate
    return IMAGE_SIZE_CANDIDATES[-1]


# --------------------------------------------------------------------------- decoding


def decode_image(data: bytes, name: str, *, limits: Limits) -> tuple[np.ndarray, tuple[int, int], str]:
    """Check and decode one image file.

    Returns the stored pixels (uint8 RGB, max side ``limits.store_max_side``), the
    original ``(width, height)`` after EXIF orientation, and the sha256 digest of the
    full-size RGB pixels. Raises ``ImageRejected`` with a plain-language reason.
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
        # Both checks use the header only, so a huge or tiny image costs nothing to refuse.
        if width * height > limits.max_image_pixels:
            raise ImageRejected(_too_many_pixels_reason((width, height), limits))
        if min(width, height) < limits.min_image_side:
            side = limits.min_image_side
            raise ImageRejected(
                f"too small ({width}x{height} pixels; at least {side}x{side} needed); remove it or use a larger copy"
            )
        try:
            image.load()  # Animated GIF/WebP: the first frame only.
            rgb = _to_rgb(_apply_exif_orientation(image))
            original_size = rgb.size
            digest = hashlib.sha256(f"{rgb.width}x{rgb.height}x3:".encode() + rgb.tobytes()).hexdigest()
            longest = max(rgb.size)
            if longest > limits.store_max_side:
                scale = limits.store_max_side / longest
                stored_size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
                # Stored once and reused for every training size, so spend on quality here.
                rgb = rgb.resize(stored_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            pixels = np.array(rgb, dtype=np.uint8)
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(_too_many_pixels_reason((width, height), limits)) from None
        except MemoryError:
            raise ImageRejected("too large to decode in the memory available; shrink it or remove it") from None
        except Exception as err:  # truncated data, broken streams, bad tables...
            raise ImageRejected(_corrupt_reason(err)) from None
    return pixels, original_size, digest


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


# --------------------------------------------------------------------------- loading


@dataclass
class _Entry:
    """A file to decode: its name as the user knows it, its class, and how to get its bytes."""

    name: str
    label: str
    size: int
    read: Callable[[], bytes]


def _clean_class_name(raw: str) -> str:
    # macOS writes names decomposed (NFD); "Café" typed on Windows is composed (NFC).
    return unicodedata.normalize("NFC", raw).strip()


def _is_ignored(parts: list[str]) -> bool:
    if any(part.startswith(".") or part.lower() in IGNORED_FOLDER_NAMES for part in parts):
        return True
    return bool(parts) and parts[-1].lower() in IGNORED_FILE_NAMES


def _file_too_large_reason(size: int, limits: Limits) -> str:
    return (
        f"file too large ({size / MB:.1f} MB; files over {limits.max_upload_bytes / MB:.0f} MB are not read, "
        "set by QUASAR_MAX_UPLOAD_MB); shrink it or remove it"
    )


def _check_image_count(count: int, limits: Limits, source: str) -> None:
    if count > limits.max_images:
        raise ResourceLimitError(
            f"{source} has {count} files in its class folders; the limit is {limits.max_images} images "
            "(set by QUASAR_MAX_IMAGES). Use fewer images per class, or raise the limit."
        )


def load_folder(path, *, limits: Limits | None = None) -> Dataset:
    """Load ``path/<class>/<image>`` (images in deeper sub-folders belong to their top class folder)."""
    limits = limits if limits is not None else Limits.from_env()
    root = Path(path)
    source = str(path)
    if not root.is_dir():
        raise DatasetError(f"The folder {source!r} does not exist. Give the folder that holds one folder per class.")

    problems: list[Problem] = []
    class_folders: dict[str, str] = {}  # label -> folder name as the user sees it
    entries: list[_Entry] = []
    visited: set[str] = set()
    # Symlinked class folders are common in prepared datasets; the visited set stops link loops.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real_dir = os.path.realpath(dirpath)
        if real_dir in visited:
            dirnames[:] = []
            continue
        visited.add(real_dir)
        dirnames[:] = sorted(d for d in dirnames if not _is_ignored([d]))
        relative_dir = Path(dirpath).relative_to(root).parts
        if len(relative_dir) == 1:
            class_folders.setdefault(_clean_class_name(relative_dir[0]), relative_dir[0])
        for filename in sorted(filenames):
            parts = [*relative_dir, filename]
            if _is_ignored(parts):
                continue
            name = "/".join(parts)
            file_path = Path(dirpath, filename)
            if len(parts) == 1:
                problems.append(Problem(name, NOT_IN_A_CLASS_FOLDER, "skipped"))
                continue
            label = _clean_class_name(parts[0])
            if not label:
                problems.append(Problem(name, BLANK_CLASS_FOLDER, "skipped"))
                continue
            if filename.lower().endswith(".zip"):
                problems.append(Problem(name, ZIP_IN_FOLDER, "skipped"))
                continue
            try:
                status = file_path.stat()
            except OSError as err:
                problems.append(Problem(name, f"could not be read ({err.strerror or err}); check the file", "skipped"))
                continue
            if not stat.S_ISREG(status.st_mode):  # a pipe or device would block or never end
                problems.append(Problem(name, "not a regular file; replace it with a picture file", "skipped"))
                continue
            size = status.st_size
            entries.append(_Entry(name, label, size, _file_reader(file_path, limits.max_upload_bytes)))

    _check_image_count(len(entries), limits, source)
    hint = None
    if len(class_folders) == 1:
        (only,) = class_folders.values()
        hint = f"If {only!r} holds your class folders, choose that folder instead."
    return _build_dataset(source, entries, set(class_folders), problems, limits, single_class_hint=hint)


def _file_reader(file_path: Path, cap: int) -> Callable[[], bytes]:
    def read() -> bytes:
        with open(file_path, "rb") as handle:
            return handle.read(cap + 1)  # bounded: the file may have grown since stat()

    return read


def load_uploads(
    items: Iterable[tuple[str, bytes, str]], *, limits: Limits | None = None, source: str = "uploads"
) -> Dataset:
    """Load ``(file_name, data, class_name)`` triples, e.g. from a browser upload."""
    limits = limits if limits is not None else Limits.from_env()
    problems: list[Problem] = []
    entries: list[_Entry] = []
    total_bytes = 0
    for file_name, data, class_name in items:
        label = _clean_class_name(str(class_name))
        if not label:
            raise DatasetError(f"The file {file_name!r} has a blank class name. Give every class a name.")
        file_name = str(file_name).replace("\\", "/")
        total_bytes += len(data)
        if total_bytes > limits.max_upload_bytes:
            raise ResourceLimitError(
                f"The uploads add up to more than {limits.max_upload_bytes / MB:.0f} MB, the upload limit "
                "(set by QUASAR_MAX_UPLOAD_MB). Upload fewer or smaller pictures."
            )
        if _is_ignored([p for p in file_name.split("/") if p]):
            continue
        name = f"{label}/{file_name}"
        if file_name.lower().endswith(".zip"):
            problems.append(Problem(name, "a zip file; upload it as a zip of class folders instead", "skipped"))
            continue
        entries.append(_Entry(name, label, len(data), (lambda data=bytes(data): data)))
    _check_image_count(len(entries), limits, source)
    return _build_dataset(source, entries, set(), problems, limits)


def load_dataset(path, *, limits: Limits | None = None) -> Dataset:
    """A folder of class folders, or a ``.zip`` of them."""
    location = Path(path)
    if location.is_dir():
        return load_folder(location, limits=limits)
    if location.is_file() and location.suffix.lower() == ".zip":
        return load_zip(location, limits=limits)
    if not location.exists():
        raise DatasetError(f"{str(path)!r} does not exist. Give a folder of class folders or a .zip of them.")
    raise DatasetError(
        f"{str(path)!r} is neither a folder nor a .zip file. Give a folder of class folders or a .zip of them."
    )


# --------------------------------------------------------------------------- zip


def load_zip(source, *, limits: Limits | None = None, name: str | None = None) -> Dataset:
    """Load a zip of class folders (optionally all under one top folder), reading members in memory."""
    limits = limits if limits is not None else Limits.from_env()
    if isinstance(source, (str, os.PathLike)):
        zip_path = Path(source)
        name = name or zip_path.name
        if not zip_path.is_file():
            raise DatasetError(f"The zip {name!r} does not exist. Check the file name.")
        size = zip_path.stat().st_size
        _check_archive_size(size, name, limits)
        with open(zip_path, "rb") as handle:
            return _load_zip_file(handle, size, name, limits)
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "upload.zip"
        _check_archive_size(len(source), name, limits)
        return _load_zip_file(io.BytesIO(bytes(source)), len(source), name, limits)
    if hasattr(source, "read"):
        name = name or Path(str(getattr(source, "name", "") or "upload.zip")).name
        handle, size = _seekable_copy(source, name, limits)
        return _load_zip_file(handle, size, name, limits)
    raise ValueError(f"`source` must be a path, bytes or a binary file object. Received: source={source!r}")


def _seekable_copy(source: BinaryIO, name: str, limits: Limits) -> tuple[BinaryIO, int]:
    try:
        start = source.tell()
        source.seek(0, io.SEEK_END)
        size = source.tell() - start
        source.seek(start)
    except (AttributeError, OSError, ValueError):
        # Not seekable: read at most one byte over the limit to know it is too big.
        data = source.read(limits.max_upload_bytes + 1)
        _check_archive_size(len(data), name, limits)
        return io.BytesIO(data), len(data)
    _check_archive_size(size, name, limits)
    if start:
        return io.BytesIO(source.read()), size
    return source, size


def _check_archive_size(size: int, name: str, limits: Limits) -> None:
    if size > limits.max_upload_bytes:
        raise ResourceLimitError(
            f"{name} is {size / MB:.1f} MB; the upload limit is {limits.max_upload_bytes / MB:.0f} MB "
            "(set by QUASAR_MAX_UPLOAD_MB). Upload a smaller zip, or raise the limit."
        )


def _max_zip_entries(limits: Limits) -> int:
    # Room for folder entries and macOS "._" companions next to every image.
    return 10 * limits.max_images + 1000


# Average size allowed per central-directory record: real ones are ~100 bytes.
CENTRAL_DIRECTORY_BYTES_PER_ENTRY = 256


def _central_directory_size(handle: BinaryIO, size: int) -> tuple[int, int] | None:
    """(entry count, directory bytes) from the end-of-central-directory record, read before
    zipfile parses the directory: millions of tiny entries would otherwise fill memory."""
    tail_length = min(size, 22 + 65535)
    handle.seek(size - tail_length)
    tail = handle.read(tail_length)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    count, directory_bytes = struct.unpack("<HI", tail[at + 10 : at + 16])
    if count != 0xFFFF and directory_bytes != 0xFFFFFFFF:
        return count, directory_bytes
    locator = tail[at - 20 : at] if at >= 20 else b""
    if not locator.startswith(b"PK\x06\x07"):
        return None
    (record_offset,) = struct.unpack("<Q", locator[8:16])
    if record_offset + 56 > size:
        return None
    handle.seek(record_offset)
    record = handle.read(56)
    if not record.startswith(b"PK\x06\x06"):
        return None
    count, directory_bytes = struct.unpack("<QQ", record[32:48])
    return count, directory_bytes


def _member_path(info: zipfile.ZipInfo) -> str:
    name = info.filename
    if not info.flag_bits & 0x800:
        # No UTF-8 flag: zipfile decoded as cp437, but macOS and Linux zippers write UTF-8 anyway.
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name.replace("\\", "/")


_DRIVE = re.compile(r"^[A-Za-z]:")


def _is_unsafe(path: str) -> bool:
    return path.startswith("/") or bool(_DRIVE.match(path)) or ".." in path.split("/")


def _load_zip_file(handle: BinaryIO, size: int, name: str, limits: Limits) -> Dataset:
    not_a_zip = DatasetError(f"{name} is not a zip file, or it is damaged. Zip the class folders again and retry.")
    directory = _central_directory_size(handle, size)
    if directory is None:
        raise not_a_zip
    entry_count, directory_bytes = directory
    max_entries = _max_zip_entries(limits)
    # The count can lie, so the directory's byte size is bounded too.
    if entry_count > max_entries or directory_bytes > max_entries * CENTRAL_DIRECTORY_BYTES_PER_ENTRY:
        shown = max(entry_count, directory_bytes // CENTRAL_DIRECTORY_BYTES_PER_ENTRY)
        raise ResourceLimitError(
            f"{name} holds about {shown} entries; at most {max_entries} are read for a limit of "
            f"{limits.max_images} images (set by QUASAR_MAX_IMAGES). Use fewer images, or raise the limit."
        )
    handle.seek(0)
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise not_a_zip from None

    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        _refuse_zip_bomb(members, name, limits)

        problems: list[Problem] = []
        folders: list[list[str]] = []
        files: list[tuple[list[str], zipfile.ZipInfo, str]] = []
        for info in archive.infolist():
            path = _member_path(info)
            if _is_unsafe(path):
                problems.append(Problem(path, UNSAFE_ZIP_PATH, "skipped"))
                continue
            parts = [p for p in path.split("/") if p not in ("", ".")]
            if not parts or _is_ignored(parts):
                continue
            if info.is_dir():
                folders.append(parts)
            else:
                files.append((parts, info, path))

        # Zipping a folder puts everything under one top folder: look inside it for the classes
        # (files lying directly in that top folder are then outside any class folder).
        tops = {parts[0] for parts, _, _ in files}
        if len(tops) == 1 and any(len(parts) >= 3 for parts, _, _ in files):
            (top,) = tops
            files = [(parts[1:], info, path) for parts, info, path in files]
            folders = [parts[1:] for parts in folders if parts[0] == top and len(parts) > 1]

        class_folders = {_clean_class_name(parts[0]) for parts in folders}
        entries: list[_Entry] = []
        for parts, info, path in files:
            if path.lower().endswith(".zip"):
                problems.append(Problem(path, ZIP_IN_ZIP, "skipped"))
                continue
            if len(parts) == 1:
                problems.append(Problem(path, NOT_IN_A_CLASS_FOLDER, "skipped"))
                continue
            label = _clean_class_name(parts[0])
            class_folders.add(label)
            if not label:
                problems.append(Problem(path, BLANK_CLASS_FOLDER, "skipped"))
                continue
            if info.flag_bits & 0x1:
                problems.append(Problem(path, "password-protected; zip it again without a password", "skipped"))
                continue
            entries.append(_Entry(path, label, info.file_size, _member_reader(archive, info)))
        class_folders.discard("")

        _check_image_count(len(entries), limits, name)
        return _build_dataset(name, entries, class_folders, problems, limits)


def _refuse_zip_bomb(members: list[zipfile.ZipInfo], name: str, limits: Limits) -> None:
    """Refuse from the central directory alone, before a single member is decompressed."""
    declared = sum(info.file_size for info in members)
    if declared > limits.max_extracted_bytes:
        raise ResourceLimitError(
            f"{name} would unpack to {declared / MB:.0f} MB; the limit is {limits.max_extracted_bytes / MB:.0f} MB "
            "(set by QUASAR_MAX_EXTRACTED_MB). Upload fewer images, or raise the limit."
        )
    for info in members:
        if info.file_size > BOMB_MEMBER_BYTES and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
            raise ResourceLimitError(
                f"{name} was refused: {info.filename!r} unpacks from {info.compress_size / MB:.2f} MB to "
                f"{info.file_size / MB:.0f} MB, which only a zip bomb does. Zip the images again from their folders."
            )


def _member_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with archive.open(info) as member:
                # zipfile stops at the declared size and checks the CRC, so a lying header
                # cannot make this read grow past what the bomb check already allowed.
                return member.read(info.file_size)
        except NotImplementedError as err:
            raise _UnreadableFile(
                f"uses a compression method that cannot be read ({err}); zip it again with standard settings"
            ) from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as err:
            raise _UnreadableFile(f"damaged inside the zip ({err}); zip the folder again") from None

    return read


class _UnreadableFile(Exception):
    """Internal: a file's bytes could not be had; the message is the Problem reason."""


# --------------------------------------------------------------------------- assembly


def _build_dataset(
    source: str,
    entries: list[_Entry],
    class_folders: set[str],
    problems: list[Problem],
    limits: Limits,
    *,
    single_class_hint: str | None = None,
) -> Dataset:
    decoded: list[Sample] = []
    labels_with_files: set[str] = set()
    for entry in sorted(entries, key=lambda e: e.name):
        labels_with_files.add(entry.label)
        if entry.size > limits.max_upload_bytes:
            problems.append(Problem(entry.name, _file_too_large_reason(entry.size, limits), "skipped"))
            continue
        try:
            data = entry.read()
        except _UnreadableFile as err:
            problems.append(Problem(entry.name, str(err), "skipped"))
            continue
        except OSError as err:
            reason = f"could not be read ({err.strerror or err}); check the file's permissions"
            problems.append(Problem(entry.name, reason, "skipped"))
            continue
        if len(data) > limits.max_upload_bytes:
            problems.append(Problem(entry.name, _file_too_large_reason(len(data), limits), "skipped"))
            continue
        try:
            pixels, original_size, digest = decode_image(data, entry.name, limits=limits)
        except ImageRejected as rejected:
            problems.append(Problem(entry.name, rejected.reason, "skipped"))
            continue
        decoded.append(Sample(entry.name, entry.label, pixels, original_size, digest))

    samples = _drop_duplicates(decoded, problems)

    for label in sorted(class_folders - labels_with_files):
        problems.append(Problem(f"{label}/", "an empty class folder, so it was ignored. Put pictures in it or "
                                "remove it.", "warning"))

    counts = {label: 0 for label in sorted(labels_with_files)}
    for sample in samples:
        counts[sample.label] += 1
    report = DataReport(source=source, counts=counts, problems=problems)
    _check_dataset(report, limits, single_class_hint)
    _add_dataset_warnings(report)
    labels = sorted(counts)
    ordered = sorted(samples, key=lambda s: (labels.index(s.label), s.name))
    return Dataset(samples=ordered, labels=labels, report=report)


def _drop_duplicates(decoded: list[Sample], problems: list[Problem]) -> list[Sample]:
    by_digest: dict[str, list[Sample]] = {}
    for sample in decoded:
        by_digest.setdefault(sample.digest, []).append(sample)
    kept: list[Sample] = []
    for copies in by_digest.values():
        classes = sorted({s.label for s in copies})
        if len(classes) > 1:
            quoted = _join_words([repr(c) for c in classes])
            for sample in copies:
                problems.append(Problem(
                    sample.name,
                    f"the same picture is in classes {quoted}; it was left out because its label is ambiguous "
                    "— keep it in one class",
                    "skipped",
                ))
            continue
        first, *others = copies
        kept.append(first)
        problems.extend(Problem(s.name, f"same picture as {first.name}; used once", "duplicate") for s in others)
    return kept


def _join_words(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _check_dataset(report: DataReport, limits: Limits, single_class_hint: str | None) -> None:
    counts, source = report.counts, report.source
    skipped_note = ""
    if report.skipped():
        skipped_note = f" {len(report.skipped())} files were skipped; the report says why."
    if sum(counts.values()) == 0:
        raise DatasetRejected(
            f"No usable images were found in {source}. Put the pictures in one folder per class "
            f"(for example cat/ and dog/), as JPEG or PNG files.{skipped_note}",
            report,
        )
    if len(counts) < 2:
        (only,) = counts
        hint = f" {single_class_hint}" if single_class_hint else ""
        raise DatasetRejected(
            f"Only one class ({only!r}) was found in {source}; at least 2 are needed to learn to tell classes apart. "
            f"Add a folder of pictures for each other class.{hint}",
            report,
        )
    needed = limits.min_images_per_class
    too_small = [label for label, count in counts.items() if count < needed]
    if too_small:
        sentences = []
        for label in too_small:
            has = f"has only {counts[label]} usable images" if counts[label] else "has no usable images"
            sentences.append(
                f"Class {label!r} {has} ({needed} needed). Add more pictures of {label} or remove the folder."
            )
        raise DatasetRejected(" ".join(sentences) + skipped_note, report)


def _add_dataset_warnings(report: DataReport) -> None:
    """Warnings about the data as a whole, each a full sentence that says what to do.

    A warning about one class is filed under its folder ("Bag/") and does not name the class
    again; one that several classes share is said once, filed under the source.
    """
    counts = report.counts
    largest = max(counts, key=counts.get)
    smallest = min(counts, key=counts.get)
    if counts[largest] >= IMBALANCE_RATIO * counts[smallest]:
        report.problems.append(Problem(
            report.source,
            f"the classes are unbalanced: {largest!r} has {counts[largest]} images but {smallest!r} only "
            f"{counts[smallest]}, so the model may favour {largest!r}. Add pictures of {smallest!r} if you can.",
            "warning",
        ))
    few = {label: count for label, count in counts.items() if count < FEW_IMAGES_PER_CLASS}
    unreliable = f"results are unreliable with fewer than {FEW_IMAGES_PER_CLASS} per class"
    if len(few) == 1:
        ((label, count),) = few.items()
        report.problems.append(Problem(
            f"{label}/",
            f"only {count} usable {_images(count)}; {unreliable}. Add more pictures of this class if you can.",
            "warning",
        ))
    elif few:
        if len(set(few.values())) == 1:
            count = next(iter(few.values()))
            have = f"{_join_words([repr(label) for label in few])} have only {count} usable {_images(count)} each"
        else:
            have = "few usable images in " + _join_words([f"{label!r} ({count})" for label, count in few.items()])
        report.problems.append(Problem(
            report.source, f"{have}; {unreliable}. Add more pictures of these classes if you can.", "warning"
        ))


def _images(count: int) -> str:
    return "image" if count == 1 else "images"


# --------------------------------------------------------------------------- split


@dataclass(frozen=True, eq=False)
class Split:
    """Indices into ``dataset.samples``, sorted, read-only."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __post_init__(self):
        for part in ("train", "val", "test"):
            indices = np.sort(np.asarray(getattr(self, part), dtype=np.int64).reshape(-1))
            indices.setflags(write=False)
            object.__setattr__(self, part, indices)

    def __eq__(self, other):
        if not isinstance(other, Split):
            return NotImplemented
        return all(np.array_equal(getattr(self, p), getattr(other, p)) for p in ("train", "val", "test"))

    def to_dict(self) -> dict:
        return {"train": self.train.tolist(), "val": self.val.tolist(), "test": self.test.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Split":
        return cls(train=np.asarray(d["train"]), val=np.asarray(d["val"]), test=np.asarray(d["test"]))


def _check_fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"`{name}` must be a number from 0 up to (not including) 1. Received: {name}={value!r}")
    if not (0.0 <= float(value) < 1.0):
        raise ValueError(f"`{name}` must be from 0 up to (not including) 1. Received: {name}={value!r}")
    return float(value)


def _allocate(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(n_val, n_test) for a class of n images: rounded shares, at least one each from
    3 images up, and always at least one image left for training."""
    n_val = math.floor(n * val_fraction + 0.5)
    n_test = math.floor(n * test_fraction + 0.5)
    min_val = 1 if n >= 3 and val_fraction > 0 else 0
    min_test = 1 if n >= 3 and test_fraction > 0 else 0
    if n == 2 and val_fraction > 0:
        min_val = 1  # two images: one to train on, one to check on
    n_val, n_test = max(n_val, min_val), max(n_test, min_test)
    # The minimums add up to less than n, so this always ends with a training image left.
    while n - n_val - n_test < 1:
        if n_test > min_test and (n_test >= n_val or n_val == min_val):
            n_test -= 1
        else:
            n_val -= 1
    return n_val, n_test


def split_dataset(dataset: Dataset, *, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0) -> Split:
    """Stratified, seeded train/validation/test split.

    Done per class by hand rather than with scikit-learn's ``train_test_split``, whose
    stratification can leave a small class with no validation or test image at all.
    """
    val_fraction = _check_fraction("val_fraction", val_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            "`val_fraction` + `test_fraction` must be below 1 to leave images to train on. "
            f"Received: val_fraction={val_fraction!r}, test_fraction={test_fraction!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a whole number of at least 0. Received: seed={seed!r}")

    rng = np.random.default_rng(int(seed))
    targets = dataset.targets()
    train, val, test = [], [], []
    for label_index in range(len(dataset.labels)):
        members = np.flatnonzero(targets == label_index)
        if members.size == 0:
            continue
        shuffled = rng.permutation(members)
        n_val, n_test = _allocate(len(shuffled), val_fraction, test_fraction)
        val.append(shuffled[:n_val])
        test.append(shuffled[n_val : n_val + n_test])
        train.append(shuffled[n_val + n_test :])

    def joined(parts):
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    return Split(train=joined(train), val=joined(val), test=joined(test))
