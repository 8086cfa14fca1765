"""Hostile inputs for the data loaders, made on the fly: no binary corpus is committed.

Shared by every layer that reads a user's photos, so the same bad files are fed to the
engine (tests/core/data/), the command line (tests/core/test_cli_hostile.py) and
the Upload page (tests/app/test_upload.py). Import it as ``from tests import hostile``.

``corpus_zip()`` is the one class-folder zip that holds good photos in four classes and
every bad case at once; ``CORPUS_SKIPPED``, ``CORPUS_WARNINGS``, ``CORPUS_DUPLICATES``,
``CORPUS_COUNTS`` and ``CORPUS_USED`` say what each loader must make of it. The zip bomb
and the one-class zip refuse a whole upload, so they come separately.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import unicodedata
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# --------------------------------------------------------------------------- image makers


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(seed: int, size=(32, 32), mode="RGB") -> Image.Image:
    """A picture unique to `seed`, so different seeds never collide as duplicates."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    values = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(values[:, :, 0] if channels == 1 else values)


def png(seed: int, size=(32, 32)) -> bytes:
    return encode(noise(seed, size), "PNG")


def jpeg(seed: int, size=(32, 32)) -> bytes:
    return encode(noise(seed, size), "JPEG", quality=95)


@functools.lru_cache(maxsize=None)
def huge_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height, all black: tiny on disk, enormous decoded."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    row = b"\x00" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    rows_per_piece = 1000
    pieces = [compressor.compress(row * rows_per_piece) for _ in range(height // rows_per_piece)]
    pieces.append(compressor.compress(row * (height % rows_per_piece)))
    pieces.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(pieces)) + chunk(b"IEND", b"")


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def corrupt_png(seed: int) -> bytes:
    damaged = bytearray(png(seed, (64, 64)))
    start = damaged.find(b"IDAT") + 20
    for i in range(start, start + 40):
        damaged[i] ^= 0x55
    return bytes(damaged)


def exif_rotated_jpeg() -> bytes:
    """40x20 stored, Orientation=6 (display rotated 90 degrees clockwise): left half red, right blue."""
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image, "JPEG", exif=exif, quality=95)


def animated_gif() -> bytes:
    first = Image.new("RGB", (32, 32), (255, 0, 0))
    second = Image.new("RGB", (32, 32), (0, 0, 255))
    return encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


def palette_with_transparency(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 4, (32, 32), dtype=np.uint8)).convert("P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    return encode(image, "PNG", transparency=0)


def sixteen_bit_png(value: int, size=(32, 32)) -> bytes:
    return encode(Image.fromarray(np.full((size[1], size[0]), value, dtype=np.uint16)), "PNG")


def cmyk_jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return encode(Image.fromarray(rng.integers(0, 256, (32, 32, 4), dtype=np.uint8), "CMYK"), "JPEG")


# --------------------------------------------------------------------------- folders and zips


def zip_bytes(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip holding exactly these member names (unsafe ones too); names ending in / are folders."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, payload in members.items():
            if name.endswith("/"):
                archive.writestr(zipfile.ZipInfo(name), b"")
            else:
                archive.writestr(zipfile.ZipInfo(name), payload, compress_type=compression)
    return buffer.getvalue()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, payload in files.items():
        target = root / relative
        if relative.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
    return root


def good_class(label: str, count: int, first_seed: int) -> dict[str, bytes]:
    return {f"{label}/{label}_{i}.png": png(first_seed + i) for i in range(count)}


def write_zip_bomb(path: Path, *, megabytes: int = 300) -> Path:
    """`megabytes` MB of zeros as cat/zeros.png beside 5 good photos, in a zip of about 1 MB.

    Streamed, so making it never holds the unpacked bytes in memory.
    """
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for i in range(5):
            archive.writestr(f"cat/ok_{i}.png", png(i))
        with archive.open("cat/zeros.png", "w", force_zip64=True) as member:
            block = bytes(1024**2)
            for _ in range(megabytes):
                member.write(block)
    return path


def one_class_zip() -> bytes:
    """Six good photos, all of class 'cat': nothing to tell apart."""
    return zip_bytes(good_class("cat", 6, 0))


# --------------------------------------------------------------------------- the engine's corpus

# file -> (bytes maker, words the reason must contain); all inside class "cat".
HOSTILE = {
    "cat/empty.jpg": (lambda: b"", "empty file"),
    "cat/notes.jpg": (lambda: b"shopping list: milk, eggs\n" * 20, "not an image (the file is text)"),
    "cat/truncated.jpg": (lambda: truncated(jpeg(900, (64, 64))), "corrupt or truncated"),
    "cat/truncated.png": (lambda: truncated(png(901, (64, 64))), "corrupt or truncated"),
    "cat/corrupt.png": (lambda: corrupt_png(902), "corrupt or truncated"),
    "cat/icon.ico": (lambda: encode(noise(903), "ICO"), "unsupported image format (ICO)"),
    "cat/layers.psd": (lambda: b"8BPS\x00\x01" + bytes(200), "Photoshop"),
    "cat/photo.heic": (lambda: b"\x00\x00\x00\x18ftypheic" + bytes(100), "HEIC"),
    "cat/tiny.png": (lambda: encode(Image.new("RGB", (1, 1), "red"), "PNG"), "too small (1x1"),
    "cat/huge.png": (lambda: huge_png(20000, 20000), "too many pixels"),
}

# Unusual but valid files that must be used (all different pictures).
VALID_ODDITIES = {
    "cat/cmyk.jpg": lambda: cmyk_jpeg(800),
    "cat/deep.png": lambda: encode(Image.fromarray(np.random.default_rng(801).integers(0, 65536, (32, 32), np.uint16)), "PNG"),
    "cat/palette.png": lambda: palette_with_transparency(802),
    "cat/rotated.jpg": exif_rotated_jpeg,
    "cat/animated.gif": animated_gif,
    "cat/alpha.png": lambda: encode(noise(803, mode="RGBA"), "PNG"),
    "cat/gray.bmp": lambda: encode(noise(804, mode="L"), "BMP"),
    "cat/photo.webp": lambda: encode(noise(805), "WEBP", lossless=True),
    "cat/scan.tiff": lambda: encode(noise(806), "TIFF"),
    "cat/no extension": lambda: png(807),
}


def hostile_corpus() -> dict[str, bytes]:
    """Two classes (cat, dog) with every bad file in cat, plus files that are silently ignored."""
    files = {**good_class("cat", 5, 0), **good_class("dog", 6, 100)}
    files.update({name: make() for name, (make, _) in HOSTILE.items()})
    files.update({name: make() for name, make in VALID_ODDITIES.items()})
    files["stray.png"] = png(700)  # not inside a class folder
    # Silently ignored: no Problem at all.
    files[".DS_Store"] = b"\x00\x00\x00\x01Bud1"
    files["cat/.hidden.png"] = png(701)
    files["cat/Thumbs.db"] = b"\xd0\xcf\x11\xe0" + bytes(100)
    files["dog/desktop.ini"] = b"[.ShellClassInfo]\n"
    files[".git/objects/x.png"] = png(702)
    return files


IGNORED_IN_CORPUS = (".DS_Store", "cat/.hidden.png", "cat/Thumbs.db", "dog/desktop.ini", ".git/objects/x.png")


def problem_for(report, file: str):
    """The first Problem a ``DataReport`` lists for `file` (failing when there is none)."""
    matches = [p for p in report.problems if p.file == file]
    assert matches, f"no problem reported for {file!r}; problems: {report.problems}"
    return matches[0]


def check_hostile_report(dataset, prefix: str = "") -> None:
    """Assert a loaded ``hostile_corpus()`` (folder or zip; `prefix` is a zip's top folder) is exactly
    what it must be: every bad file skipped with its reason and advice, the ignored ones never
    mentioned, every good or merely unusual photo used, and each one readable again."""
    report = dataset.report
    for name, (_, words) in HOSTILE.items():
        problem = problem_for(report, prefix + name)
        assert problem.kind == "skipped"
        assert words in problem.reason, (name, problem.reason)
        # Every reason also says what to do.
        advice = ("remove", "replace", "export", "shrink", "save")
        assert any(verb in problem.reason for verb in advice), problem.reason
    assert "not inside a class folder" in problem_for(report, prefix + "stray.png").reason
    reported = {p.file for p in report.problems}
    for ignored in IGNORED_IN_CORPUS:
        assert prefix + ignored not in reported
    used = {s.name for s in dataset.samples}
    for name in [*good_class("cat", 5, 0), *good_class("dog", 6, 100), *VALID_ODDITIES]:
        assert prefix + name in used, name
    assert report.counts == {"cat": 5 + len(VALID_ODDITIES), "dog": 6}
    assert len(report.skipped()) == len(HOSTILE) + 1
    # A dataset keeps no pixels: each photo is decoded again from where it was found.
    for index, sample in enumerate(dataset.samples):
        pixels = dataset.pixels(index)
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
        assert pixels.shape[:2] == sample.original_size[::-1]


# --------------------------------------------------------------------------- one corpus for every layer

# Class folders with awkward names: spaces around and an emoji, and a name macOS writes decomposed.
EMOJI_FOLDER, EMOJI_CLASS = " chat noir 🐈 ", "chat noir 🐈"
CAFE_FOLDER, CAFE_CLASS = unicodedata.normalize("NFD", "Café"), "Café"

# Zip-slip entries: each would land outside the extraction folder if it were ever written.
ZIP_SLIP = {
    "../evil-parent.png": "../evil-parent.png",
    "../../evil-grandparent.png": "../../evil-grandparent.png",
    "/tmp/evil-absolute.png": "/tmp/evil-absolute.png",
    "C:/evil-drive.png": "C:/evil-drive.png",
    "cat/../../evil-escape.png": "cat/../../evil-escape.png",
    "..\\evil-backslash.png": "../evil-backslash.png",  # reported with / as the separator
}

# Reported file -> the words its reason must contain. Every one is skipped and named.
CORPUS_SKIPPED: dict[str, str] = {
    **{name: words for name, (_, words) in HOSTILE.items()},
    "stray.png": "not inside a class folder",
    "dog/more photos.zip": "a zip inside the zip",
    **{shown: "unsafe path in the zip" for shown in ZIP_SLIP.values()},
    "cat/shared.png": "ambiguous",
    "dog/copy of shared.png": "ambiguous",
}

# Reported file -> words; these are warnings (the data is still used).
CORPUS_WARNINGS: dict[str, str] = {
    "bird/": "empty",
    "fish/": "empty",
}
# One warning for the whole corpus: every class has fewer than 20 photos, said in one sentence.
CORPUS_FEW_PHOTOS_WORDS = ("'Café'", "'cat'", "'chat noir 🐈'", "'dog'", "fewer than 20")
# And one more: 'cat' has three times as many photos as the smallest classes.
CORPUS_UNBALANCED_WORDS = ("unbalanced", "'cat' has 15")

# Reported file -> the file it repeats; used once.
CORPUS_DUPLICATES = {"dog/dog_0_again.png": "dog/dog_0.png"}

CORPUS_COUNTS = {CAFE_CLASS: 5, "cat": 5 + len(VALID_ODDITIES), EMOJI_CLASS: 5, "dog": 6}

# Names (as reported) of the photos that must be trained on.
CORPUS_USED = frozenset([
    *good_class("cat", 5, 0), *good_class("dog", 6, 100), *VALID_ODDITIES,
    *(f"{EMOJI_FOLDER}/{EMOJI_FOLDER}_{i}.png" for i in range(5)),
    *(f"{CAFE_FOLDER}/{CAFE_FOLDER}_{i}.png" for i in range(5)),
])

CORPUS_IGNORED = ("__MACOSX/cat/._cat_0.png", ".DS_Store", "cat/Thumbs.db", "dog/desktop.ini", "cat/.hidden.png")


def corpus_members() -> dict[str, bytes]:
    """Member name -> bytes of the one corpus zip (names exactly as stored, unsafe ones too)."""
    files = {
        **good_class("cat", 5, 0),
        **good_class("dog", 6, 100),
        **good_class(EMOJI_FOLDER, 5, 200),
        **good_class(CAFE_FOLDER, 5, 300),
    }
    files.update({name: make() for name, (make, _) in HOSTILE.items()})
    files.update({name: make() for name, make in VALID_ODDITIES.items()})
    files["stray.png"] = png(700)
    files["dog/more photos.zip"] = zip_bytes(good_class("horse", 5, 400))
    files.update({name: png(600 + i) for i, name in enumerate(ZIP_SLIP)})
    files["cat/shared.png"] = files["dog/copy of shared.png"] = png(500)
    files["dog/dog_0_again.png"] = files["dog/dog_0.png"]  # sorts after it: the original is kept
    files["bird/"] = b""
    files["fish/"] = b""
    files["fish/.DS_Store"] = b"\x00\x00\x00\x01Bud1"
    files["__MACOSX/cat/._cat_0.png"] = b"\x00\x05\x16\x07"
    files[".DS_Store"] = b"\x00\x00\x00\x01Bud1"
    files["cat/Thumbs.db"] = b"\xd0\xcf\x11\xe0" + bytes(100)
    files["dog/desktop.ini"] = b"[.ShellClassInfo]\n"
    files["cat/.hidden.png"] = png(701)
    return files


@functools.lru_cache(maxsize=None)
def corpus_zip() -> bytes:
    """The one hostile corpus as a zip of class folders (no top folder)."""
    return zip_bytes(corpus_members())


def slip_targets(base: Path) -> list[Path]:
    """Where each zip-slip entry would have landed had the zip been extracted into `base`."""
    targets = []
    for shown in ZIP_SLIP.values():
        if shown.startswith("C:/"):
            shown = shown[len("C:/"):]
        targets.append(Path(os.path.normpath(base / shown)))
    return targets


def check_corpus_report(report: dict, source: str = "corpus.zip") -> None:
    """Assert a data report (``DataReport.to_dict()``, as in a run's data_report.json) is exactly
    what the corpus must give: every bad file named with its reason, nothing else reported."""
    problems: dict[str, list[dict]] = {}
    for problem in report["problems"]:
        problems.setdefault(problem["file"], []).append(problem)

    def only(file: str, kind: str) -> str:
        found = problems.get(file, [])
        assert len(found) == 1 and found[0]["kind"] == kind, f"{file!r}: expected one {kind}, got {found}"
        return found[0]["reason"]

    for file, words in CORPUS_SKIPPED.items():
        reason = only(file, "skipped")
        assert words in reason, f"{file!r}: {words!r} not in {reason!r}"
    for file, words in CORPUS_WARNINGS.items():
        reason = only(file, "warning")
        assert words in reason, f"{file!r}: {words!r} not in {reason!r}"
    for file, original in CORPUS_DUPLICATES.items():
        reason = only(file, "duplicate")
        assert original in reason, f"{file!r}: {original!r} not in {reason!r}"
    about_all = [p["reason"] for p in problems.get(source, [])]
    assert all(p["kind"] == "warning" for p in problems.get(source, [])), problems.get(source)
    for words in (CORPUS_FEW_PHOTOS_WORDS, CORPUS_UNBALANCED_WORDS):
        matching = [reason for reason in about_all if all(word in reason for word in words)]
        assert len(matching) == 1, f"one warning with {words} expected in {about_all}"
    assert len(about_all) == 2, about_all
    unexpected = set(problems) - set(CORPUS_SKIPPED) - set(CORPUS_WARNINGS) - set(CORPUS_DUPLICATES) - {source}
    assert not unexpected, f"reported but not expected: {sorted(unexpected)}"
    assert report["counts"] == CORPUS_COUNTS, report["counts"]
    assert report["source"] == source, report["source"]
