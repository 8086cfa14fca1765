"""Tests for quasar_core.data: loading, checking, de-duplicating and splitting images.

Every input is generated in tmp_path or in memory; no binary corpus is committed.
"""

from __future__ import annotations

import builtins
import io
import json
import math
import os
import struct
import time
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from quasar_core.data import (
    DataReport,
    Dataset,
    DatasetRejected,
    ImageRejected,
    Limits,
    Problem,
    Sample,
    Split,
    decode_image,
    load_dataset,
    load_folder,
    load_uploads,
    load_zip,
    split_dataset,
    suggest_image_size,
)
from quasar_core.errors import DatasetError, QuasarError, ResourceLimitError
from tests import hostile
from tests.hostile import (
    HOSTILE,
    IGNORED_IN_CORPUS,
    VALID_ODDITIES,
    animated_gif,
    encode,
    exif_rotated_jpeg,
    good_class,
    hostile_corpus,
    huge_png,
    noise,
    png,
    sixteen_bit_png,
    write_tree,
    write_zip_bomb,
    zip_bytes,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FASHION_SOURCE = REPO_ROOT.parent / "shared" / "datasets" / "fashion-mnist"


LIMIT_VARIABLES = ("QUASAR_MAX_UPLOAD_MB", "QUASAR_MAX_IMAGES", "QUASAR_MAX_IMAGE_PIXELS", "QUASAR_MAX_EXTRACTED_MB")


@pytest.fixture(autouse=True)
def default_limits(monkeypatch):
    """Loaders read the QUASAR_* limits from the environment; tests start from the defaults."""
    for var in LIMIT_VARIABLES:
        monkeypatch.delenv(var, raising=False)


def problem_for(report: DataReport, file: str) -> Problem:
    matches = [p for p in report.problems if p.file == file]
    assert matches, f"no problem reported for {file!r}; problems: {report.problems}"
    return matches[0]


# --------------------------------------------------------------------------- the hostile corpus


def check_hostile_report(dataset: Dataset, prefix: str = "") -> None:
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
    for sample in dataset.samples:
        assert sample.pixels.dtype == np.uint8 and sample.pixels.ndim == 3 and sample.pixels.shape[2] == 3


# --------------------------------------------------------------------------- Limits


def test_limits_defaults_and_env(monkeypatch):
    assert Limits.from_env() == Limits()
    monkeypatch.setenv("QUASAR_MAX_UPLOAD_MB", "50")
    monkeypatch.setenv("QUASAR_MAX_IMAGES", "100")
    monkeypatch.setenv("QUASAR_MAX_IMAGE_PIXELS", "1000000")
    monkeypatch.setenv("QUASAR_MAX_EXTRACTED_MB", "0.5")
    limits = Limits.from_env()
    assert limits.max_upload_bytes == 50 * 1024**2
    assert limits.max_images == 100
    assert limits.max_image_pixels == 1_000_000
    assert limits.max_extracted_bytes == 512 * 1024
    assert limits.min_images_per_class == Limits().min_images_per_class


@pytest.mark.parametrize("var, raw", [
    ("QUASAR_MAX_IMAGES", "lots"),
    ("QUASAR_MAX_IMAGES", "-3"),
    ("QUASAR_MAX_IMAGES", "2.5"),
    ("QUASAR_MAX_UPLOAD_MB", "0"),
    ("QUASAR_MAX_UPLOAD_MB", "nan"),
    ("QUASAR_MAX_IMAGE_PIXELS", "1e99x"),
    ("QUASAR_MAX_EXTRACTED_MB", "inf"),
])
def test_limits_from_env_rejects_bad_values_quoting_them(monkeypatch, var, raw):
    monkeypatch.setenv(var, raw)
    with pytest.raises(ValueError, match=var) as info:
        Limits.from_env()
    assert repr(raw) in str(info.value)


def test_limits_field_check_quotes_value():
    with pytest.raises(ValueError, match="max_images=0"):
        Limits(max_images=0)


# --------------------------------------------------------------------------- decode_image


def reject_reason(data: bytes, limits: Limits | None = None) -> str:
    with pytest.raises(ImageRejected) as info:
        decode_image(data, "x", limits=limits or Limits())
    assert isinstance(info.value, QuasarError)
    return info.value.reason


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


def test_stored_pixels_are_downscaled_keeping_aspect():
    pixels, size, _ = decode_image(png(3, (600, 300)), "wide.png", limits=Limits())
    assert size == (600, 300)
    assert pixels.shape == (128, 256, 3)
    small, _, _ = decode_image(png(3, (600, 300)), "wide.png", limits=Limits(store_max_side=100))
    assert small.shape == (50, 100, 3)


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


# --------------------------------------------------------------------------- folders


def test_folder_hostile_corpus(tmp_path):
    root = write_tree(tmp_path / "pets", hostile_corpus())
    dataset = load_folder(root)
    check_hostile_report(dataset)
    assert dataset.labels == ["cat", "dog"]
    assert dataset.report.source == str(root)
    rotated = next(s for s in dataset.samples if s.name == "cat/rotated.jpg")
    assert rotated.pixels.shape == (40, 20, 3)


def test_folder_files_in_nested_subfolders_belong_to_their_class(tmp_path):
    files = {**good_class("cat", 5, 0), **good_class("dog", 5, 10)}
    files["cat/2023/summer/extra.png"] = png(99)
    dataset = load_folder(write_tree(tmp_path, files))
    assert dataset.report.counts == {"cat": 6, "dog": 5}
    assert any(s.name == "cat/2023/summer/extra.png" and s.label == "cat" for s in dataset.samples)


def test_folder_empty_class_folder_is_a_warning(tmp_path):
    files = {**good_class("cat", 5, 0), **good_class("dog", 5, 10), "bird/": b"", "fish/.DS_Store": b"x"}
    dataset = load_folder(write_tree(tmp_path, files))
    assert dataset.labels == ["cat", "dog"]
    for folder in ("bird/", "fish/"):
        warning = problem_for(dataset.report, folder)
        assert warning.kind == "warning" and "empty" in warning.reason


def test_folder_unicode_space_and_emoji_class_names(tmp_path):
    decomposed_cafe = unicodedata.normalize("NFD", "Café")
    files = {
        **good_class("  chat noir 🐈 ", 5, 0),
        **good_class("狗", 5, 10),
        **good_class(decomposed_cafe, 5, 20),
    }
    dataset = load_folder(write_tree(tmp_path, files))
    assert dataset.labels == sorted(["chat noir 🐈", "狗", "Café"])
    assert dataset.report.counts["chat noir 🐈"] == 5
    assert any(s.name.startswith("  chat noir 🐈 /") for s in dataset.samples)  # the path as on disk
    assert json.loads(json.dumps(dataset.report.to_dict(), ensure_ascii=False))["counts"]["Café"] == 5


def test_folder_same_picture_in_two_classes_is_left_out(tmp_path):
    files = {**good_class("cat", 5, 0), **good_class("dog", 5, 10)}
    files["cat/shared.png"] = png(500)
    files["dog/copy of shared.png"] = png(500)
    dataset = load_folder(write_tree(tmp_path, files))
    assert dataset.report.counts == {"cat": 5, "dog": 5}
    for name in ("cat/shared.png", "dog/copy of shared.png"):
        problem = problem_for(dataset.report, name)
        assert problem.kind == "skipped"
        assert "classes 'cat' and 'dog'" in problem.reason and "ambiguous" in problem.reason
    assert all(s.name not in ("cat/shared.png", "dog/copy of shared.png") for s in dataset.samples)


def test_folder_duplicates_within_a_class_are_used_once(tmp_path):
    files = good_class("cat", 5, 0) | good_class("dog", 5, 10)
    files["cat/again.png"] = files["cat/cat_0.png"]
    files["cat/again.bmp"] = encode(Image.open(io.BytesIO(files["cat/cat_0.png"])), "BMP")
    dataset = load_folder(write_tree(tmp_path, files))
    assert dataset.report.counts == {"cat": 5, "dog": 5}
    # The first in name order is kept, so the result does not depend on the file system.
    assert sorted(p.file for p in dataset.report.duplicates()) == ["cat/again.png", "cat/cat_0.png"]
    for problem in dataset.report.duplicates():
        assert problem.reason == "same picture as cat/again.bmp; used once"
    assert len({s.digest for s in dataset.samples}) == len(dataset)


def test_folder_with_one_class_is_refused_with_a_hint(tmp_path):
    write_tree(tmp_path / "pets", good_class("cat", 6, 0))
    with pytest.raises(DatasetError, match=r"Only one class \('cat'\)") as info:
        load_folder(tmp_path / "pets")
    with pytest.raises(DatasetError, match=r"If 'pets' holds your class folders"):
        load_folder(tmp_path)  # the user chose the folder above the class folders


def test_folder_small_class_is_refused_naming_class_and_counts(tmp_path):
    files = {**good_class("cat", 6, 0), **good_class("dog", 3, 10), "dog/broken.jpg": b"not a jpeg"}
    with pytest.raises(DatasetError) as info:
        load_folder(write_tree(tmp_path, files))
    message = str(info.value)
    assert "Class 'dog' has only 3 usable images (5 needed). Add more pictures of dog or remove the folder." in message
    assert isinstance(info.value, DatasetRejected)
    assert problem_for(info.value.report, "dog/broken.jpg").kind == "skipped"
    assert info.value.report.counts == {"cat": 6, "dog": 3}


def test_folder_class_with_nothing_usable_is_refused(tmp_path):
    files = {**good_class("cat", 6, 0), "dog/a.jpg": b"", "dog/b.jpg": b"text"}
    with pytest.raises(DatasetError, match="Class 'dog' has no usable images"):
        load_folder(write_tree(tmp_path, files))


def test_folder_with_nothing_usable_is_refused(tmp_path):
    files = {"readme.txt": b"hello", "cat/a.jpg": b""}
    with pytest.raises(DatasetError, match="No usable images were found"):
        load_folder(write_tree(tmp_path, files))
    with pytest.raises(DatasetError, match="does not exist"):
        load_folder(tmp_path / "missing")


def test_folder_imbalance_and_few_images_are_warnings(tmp_path):
    files = {**good_class("cat", 5, 0), **good_class("dog", 15, 100)}
    report = load_folder(write_tree(tmp_path, files)).report
    warnings = report.warnings()
    assert any("unbalanced" in w.reason and "'dog' has 15" in w.reason for w in warnings)
    # Both classes have few photos: said once, in one sentence about the data as a whole.
    [few] = [w for w in warnings if "unreliable" in w.reason]
    assert few.file == report.source
    assert few.reason == ("few usable images in 'cat' (5) and 'dog' (15); results are unreliable with fewer "
                          "than 20 per class. Add more pictures of these classes if you can.")


def test_few_images_warning_names_each_class_once(tmp_path):
    # One class with few photos: filed under its folder, which already names it.
    report = load_folder(write_tree(tmp_path / "one", {**good_class("cat", 7, 0), **good_class("dog", 20, 100)})).report
    [few] = [w for w in report.warnings() if "unreliable" in w.reason]
    assert few.file == "cat/"
    assert few.reason == ("only 7 usable images; results are unreliable with fewer than 20 per class. "
                          "Add more pictures of this class if you can.")
    # Several with the same count: one sentence, each class named once.
    files = {**good_class("Bag", 8, 0), **good_class("Sneaker", 8, 100), **good_class("Trouser", 8, 200)}
    report = load_folder(write_tree(tmp_path / "three", files)).report
    assert [w.reason for w in report.warnings()] == [
        "'Bag', 'Sneaker' and 'Trouser' have only 8 usable images each; results are unreliable with fewer than "
        "20 per class. Add more pictures of these classes if you can."]
    assert report.warnings()[0].file == report.source
    assert report.summary_lines()[-1] == "Warning: " + report.warnings()[0].reason


def test_folder_too_many_images_names_limit_and_env_var(tmp_path, monkeypatch):
    root = write_tree(tmp_path, {**good_class("cat", 4, 0), **good_class("dog", 4, 10)})
    with pytest.raises(ResourceLimitError, match="QUASAR_MAX_IMAGES") as info:
        load_folder(root, limits=Limits(max_images=7, min_images_per_class=2))
    assert "limit is 7 images" in str(info.value)
    # Without explicit limits the environment variable the message names is honoured.
    monkeypatch.setenv("QUASAR_MAX_IMAGES", "6")
    with pytest.raises(ResourceLimitError, match="limit is 6 images"):
        load_dataset(root)


def test_folder_unreadable_and_oversized_files_are_skipped(tmp_path):
    root = write_tree(tmp_path, {**good_class("cat", 5, 0), **good_class("dog", 5, 10)})
    os.symlink(tmp_path / "nowhere.png", root / "cat" / "dangling.png")
    (root / "dog" / "big.png").write_bytes(png(77, (300, 300)))
    dataset = load_folder(root, limits=Limits(max_upload_bytes=100_000))
    assert "could not be read" in problem_for(dataset.report, "cat/dangling.png").reason
    assert "file too large" in problem_for(dataset.report, "dog/big.png").reason
    assert dataset.report.counts == {"cat": 5, "dog": 5}


def test_folder_symlinked_class_folders_are_followed_without_looping(tmp_path):
    elsewhere = write_tree(tmp_path / "elsewhere", good_class("dog", 5, 10))
    root = write_tree(tmp_path / "pets", good_class("cat", 5, 0))
    os.symlink(elsewhere / "dog", root / "dog")
    os.symlink(root, root / "cat" / "loop")  # a link back up must not recurse forever
    os.mkfifo(root / "cat" / "pipe.png")  # opening a pipe would block
    dataset = load_folder(root)
    assert dataset.report.counts == {"cat": 5, "dog": 5}
    assert "not a regular file" in problem_for(dataset.report, "cat/pipe.png").reason


def test_folder_zip_inside_is_skipped(tmp_path):
    files = {**good_class("cat", 5, 0), **good_class("dog", 5, 10), "cat/more.zip": zip_bytes({"x/a.png": png(1)})}
    dataset = load_folder(write_tree(tmp_path, files))
    assert "a zip inside the folder" in problem_for(dataset.report, "cat/more.zip").reason


# --------------------------------------------------------------------------- zips


def test_zip_hostile_corpus_under_one_top_folder(tmp_path):
    corpus = {f"pets/{name}": payload for name, payload in hostile_corpus().items()}
    corpus["__MACOSX/pets/cat/._cat_0.png"] = b"\x00\x05\x16\x07"
    dataset = load_zip(zip_bytes(corpus), name="pets.zip")
    assert dataset.report.source == "pets.zip"
    check_hostile_report(dataset, prefix="pets/")
    assert not any("__MACOSX" in p.file for p in dataset.report.problems)


def test_zip_hostile_corpus_without_top_folder(tmp_path):
    path = tmp_path / "pets.zip"
    path.write_bytes(zip_bytes(hostile_corpus()))
    dataset = load_zip(path)
    assert dataset.report.source == "pets.zip"
    check_hostile_report(dataset)


def test_zip_accepts_bytes_path_and_file_objects(tmp_path):
    payload = zip_bytes({**good_class("cat", 5, 0), **good_class("dog", 5, 10)})
    (tmp_path / "a.zip").write_bytes(payload)
    with open(tmp_path / "a.zip", "rb") as handle:
        from_handle = load_zip(handle)
    results = [load_zip(payload), load_zip(tmp_path / "a.zip"), load_zip(str(tmp_path / "a.zip")), from_handle,
               load_zip(io.BytesIO(payload), name="x.zip")]
    assert from_handle.report.source == "a.zip"
    for dataset in results:
        assert dataset.report.counts == {"cat": 5, "dog": 5}
        assert [s.digest for s in dataset.samples] == [s.digest for s in results[0].samples]


def test_zip_empty_class_folder_and_windows_separators():
    members = {**good_class("cat", 5, 0), "bird/": b""}
    members.update({f"dog\\dog_{i}.png": png(10 + i) for i in range(5)})
    dataset = load_zip(zip_bytes(members))
    assert dataset.report.counts == {"cat": 5, "dog": 5}
    assert problem_for(dataset.report, "bird/").kind == "warning"


def test_zip_utf8_names_without_the_utf8_flag_are_read_as_utf8():
    # Archivers on macOS/Linux write UTF-8 names without setting the flag; zipfile reads cp437.
    placeholder, real = "cafXY", "café"
    assert len(placeholder.encode()) == len(real.encode())
    members = {**good_class(placeholder, 5, 0), **good_class("dog", 5, 10)}
    raw = zip_bytes(members).replace(placeholder.encode(), real.encode())
    dataset = load_zip(raw)
    assert dataset.labels == ["café", "dog"]


def test_zip_nested_zip_is_skipped():
    members = {**good_class("cat", 5, 0), **good_class("dog", 5, 10), "cat/more.zip": zip_bytes({"x/a.png": png(1)})}
    dataset = load_zip(zip_bytes(members))
    problem = problem_for(dataset.report, "cat/more.zip")
    assert problem.reason == "a zip inside the zip; unzip it and upload its folders"
    assert dataset.report.counts == {"cat": 5, "dog": 5}


def test_zip_the_one_corpus_that_the_cli_and_the_upload_page_also_read():
    dataset = load_zip(hostile.corpus_zip(), name="corpus.zip")
    hostile.check_corpus_report(dataset.report.to_dict())
    assert {s.name for s in dataset.samples} == hostile.CORPUS_USED
    assert dataset.labels == sorted(hostile.CORPUS_COUNTS)


@pytest.fixture
def nothing_written(monkeypatch, tmp_path):
    """Fail on any attempt to open a file for writing, and run in an empty directory."""
    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+"):
            raise AssertionError(f"tried to write {file!r}")
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise AssertionError(f"tried to write {path!r}")
        return real_os_open(path, flags, *args, **kwargs)

    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    yield workdir
    assert list(workdir.iterdir()) == []


def test_zip_slip_entries_are_skipped_and_nothing_written(nothing_written, tmp_path):
    members = {**good_class("cat", 5, 0), **good_class("dog", 5, 10)}
    hostile = ["../evil.png", "/abs.png", "C:/windows.png", "cat/../../escape.png", "..\\dotdot.png"]
    members.update({name: png(900 + i) for i, name in enumerate(hostile)})
    dataset = load_zip(zip_bytes(members))
    for name in hostile:
        shown = name.replace("\\", "/")
        assert problem_for(dataset.report, shown).reason.startswith("unsafe path in the zip")
    assert dataset.report.counts == {"cat": 5, "dog": 5}
    assert not (tmp_path / "evil.png").exists() and not Path("/abs.png").exists()


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> Path:
    """300 MB of zeros inside a ~300 KB zip, streamed so the test never holds it in memory."""
    path = write_zip_bomb(tmp_path_factory.mktemp("bomb") / "bomb.zip", megabytes=300)
    assert path.stat().st_size < 2 * 1024**2
    return path


def test_zip_bomb_is_refused_quickly_without_writing(zip_bomb, nothing_written):
    start = time.perf_counter()
    with pytest.raises(ResourceLimitError, match="zip bomb"):
        load_zip(zip_bomb)
    with pytest.raises(ResourceLimitError, match="zip bomb"):
        load_zip(zip_bomb.read_bytes())
    assert time.perf_counter() - start < 2.0


def test_zip_declared_size_over_the_limit_is_refused():
    members = {**good_class("cat", 5, 0), **good_class("dog", 5, 10)}
    members["cat/noise.bmp"] = encode(noise(3, (600, 600)), "BMP")  # ~1 MB, barely compressible
    with pytest.raises(ResourceLimitError, match="QUASAR_MAX_EXTRACTED_MB"):
        load_zip(zip_bytes(members), limits=Limits(max_extracted_bytes=512 * 1024))


def test_zip_member_lying_about_its_size_is_skipped():
    members = {**good_class("cat", 5, 0), **good_class("dog", 5, 10), "cat/liar.png": bytes(5 * 1024**2)}
    raw = bytearray(zip_bytes(members))
    # Declare 100 bytes where 5 MB are stored, in both the local and the central header.
    name = b"cat/liar.png"
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = 0
        while (at := raw.find(signature, at)) >= 0:
            name_offset = 30 if signature == b"PK\x03\x04" else 46
            if raw[at + name_offset : at + name_offset + len(name)] == name:
                struct.pack_into("<I", raw, at + size_offset, 100)
            at += 4
    dataset = load_zip(bytes(raw))
    assert "damaged inside the zip" in problem_for(dataset.report, "cat/liar.png").reason
    assert dataset.report.counts == {"cat": 5, "dog": 5}


def test_zip_over_the_upload_limit_is_refused_before_reading(tmp_path, monkeypatch):
    payload = zip_bytes({**good_class("cat", 5, 0), **good_class("dog", 5, 10)})
    path = tmp_path / "big.zip"
    path.write_bytes(payload)

    def must_not_open(*args, **kwargs):
        raise AssertionError("the zip was opened although it is over the limit")

    monkeypatch.setattr(zipfile, "ZipFile", must_not_open)
    limits = Limits(max_upload_bytes=1000)
    for source in (path, payload, io.BytesIO(payload)):
        with pytest.raises(ResourceLimitError, match="QUASAR_MAX_UPLOAD_MB"):
            load_zip(source, limits=limits)


def test_zip_with_too_many_images_or_entries_is_refused():
    limits = Limits(max_images=8, min_images_per_class=2)
    with pytest.raises(ResourceLimitError, match="QUASAR_MAX_IMAGES"):
        load_zip(zip_bytes({**good_class("cat", 5, 0), **good_class("dog", 5, 10)}), limits=limits)
    entries = {f"cat/d{i}/": b"" for i in range(1100)}  # limit is 10 * 8 + 1000 entries
    with pytest.raises(ResourceLimitError, match="about 1100 entries"):
        load_zip(zip_bytes(entries), limits=limits)
    # A count that lies low does not help: the directory's byte size gives it away.
    raw = bytearray(zip_bytes({f"cat/d{i}/": b"" for i in range(6000)}))
    end = raw.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", raw, end + 8, 3, 3)
    with pytest.raises(ResourceLimitError, match="QUASAR_MAX_IMAGES"):
        load_zip(bytes(raw), limits=limits)


def test_not_a_zip_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "holiday.zip"
    path.write_bytes(b"this is not a zip file at all" * 10)
    with pytest.raises(DatasetError, match="holiday.zip is not a zip file"):
        load_zip(path)
    with pytest.raises(DatasetError, match="photos.zip"):
        load_zip(png(1), name="photos.zip")
    with pytest.raises(DatasetError, match="does not exist"):
        load_zip(tmp_path / "missing.zip")


# --------------------------------------------------------------------------- uploads and dispatch


def test_uploads_use_class_names_and_report_problems():
    items = [(f"img{i}.png", png(i), " cat ") for i in range(5)]
    items += [(f"img{i}.png", png(10 + i), "dog 🐕") for i in range(5)]
    items += [("notes.jpg", b"just text", "dog 🐕"), ("Thumbs.db", b"x", "cat")]
    dataset = load_uploads(items, source="browser")
    assert dataset.labels == ["cat", "dog 🐕"]
    assert dataset.report.source == "browser"
    assert "not an image" in problem_for(dataset.report, "dog 🐕/notes.jpg").reason
    assert {s.name for s in dataset.samples} >= {"cat/img0.png", "dog 🐕/img0.png"}


def test_uploads_blank_class_and_size_limit():
    with pytest.raises(DatasetError, match="blank class name"):
        load_uploads([("a.png", png(1), "   ")])
    items = [(f"{i}.png", png(i, (64, 64)), "cat") for i in range(10)]
    with pytest.raises(ResourceLimitError, match="QUASAR_MAX_UPLOAD_MB"):
        load_uploads(items, limits=Limits(max_upload_bytes=20_000))


def test_load_dataset_dispatches(tmp_path):
    files = {**good_class("cat", 5, 0), **good_class("dog", 5, 10)}
    folder = write_tree(tmp_path / "pets", files)
    (tmp_path / "pets.ZIP").write_bytes(zip_bytes(files))
    (tmp_path / "pets.rar").write_bytes(b"Rar!")
    assert load_dataset(folder).report.counts == {"cat": 5, "dog": 5}
    assert load_dataset(tmp_path / "pets.ZIP").report.counts == {"cat": 5, "dog": 5}
    with pytest.raises(DatasetError, match="neither a folder nor a .zip"):
        load_dataset(tmp_path / "pets.rar")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")


# --------------------------------------------------------------------------- Dataset and report


def make_dataset(class_sizes: list[int], side: int = 20) -> Dataset:
    samples, counts = [], {}
    for c, size in enumerate(class_sizes):
        label = f"class{c:02d}"
        counts[label] = size
        for i in range(size):
            pixels = np.full((min(side, 32),) * 2 + (3,), c, np.uint8)  # stored copy; the source was side x side
            samples.append(Sample(f"{label}/{i}.png", label, pixels, (side, side), digest=f"{c}-{i}"))
    return Dataset(samples=samples, labels=sorted(counts), report=DataReport("made", counts, []))


def test_dataset_images_and_targets(tmp_path):
    dataset = load_folder(write_tree(tmp_path, {**good_class("cat", 5, 0), **good_class("dog", 6, 10)}))
    assert len(dataset) == 11
    assert dataset.targets().dtype == np.int64
    assert dataset.targets().tolist() == [0] * 5 + [1] * 6
    batch = dataset.images(size=64)
    assert batch.shape == (11, 64, 64, 3) and batch.dtype == np.uint8
    picked = dataset.images([10, 0], size=32)
    assert picked.shape == (2, 32, 32, 3)
    assert np.array_equal(picked[1], dataset.samples[0].pixels)  # 32x32 source: unchanged
    assert dataset.targets([10, 0]).tolist() == [1, 0]
    assert dataset.images([], size=8).shape == (0, 8, 8, 3)
    with pytest.raises(ValueError, match="size=0"):
        dataset.images(size=0)


def test_images_are_resized_without_keeping_aspect():
    sample = Sample("a/b.png", "a", np.full((10, 40, 3), 200, np.uint8), (40, 10), "d")
    dataset = Dataset([sample], ["a"], DataReport("x", {"a": 1}, []))
    out = dataset.images(size=16)
    assert out.shape == (1, 16, 16, 3) and np.all(out == 200)


@pytest.mark.parametrize("side, expected", [(28, 96), (20, 64), (10, 64), (40, 128), (50, 160), (3000, 224)])
def test_suggest_image_size(side, expected):
    dataset = make_dataset([3, 3], side=side)
    assert dataset.median_source_side() == side
    assert suggest_image_size(dataset) == expected


def test_report_round_trip_and_summary(tmp_path):
    files = {**good_class("cat", 5, 0), **good_class("dog", 16, 100), "cat/bad.jpg": b"", "cat/again.png": png(0)}
    report = load_folder(write_tree(tmp_path, files)).report
    restored = DataReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert restored == report
    lines = report.summary_lines()
    assert lines[0].endswith("21 usable images in 2 classes (cat 5, dog 16).")
    text = "\n".join(lines)
    assert "1 file was skipped:" in text and "cat/bad.jpg: empty file" in text
    assert "1 duplicate was used once:" in text
    assert "Warning:" in text


# --------------------------------------------------------------------------- split


def check_split(dataset: Dataset, split: Split, val_fraction: float, test_fraction: float) -> None:
    parts = [split.train, split.val, split.test]
    for part in parts:
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)  # sorted, no repeats
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(dataset)))  # complete and disjoint
    targets = dataset.targets()
    for label_index in range(len(dataset.labels)):
        n = int(np.sum(targets == label_index))
        n_train, n_val, n_test = (int(np.sum(targets[p] == label_index)) for p in parts)
        assert n_train >= 1
        if n >= 3:
            assert n_val >= (1 if val_fraction > 0 else 0)
            assert n_test >= (1 if test_fraction > 0 else 0)
        if test_fraction == 0:
            assert n_test == 0
        # Stratified: each class's share is its rounded fraction, moved by at most the minimums.
        assert abs(n_val - n * val_fraction) <= 1.5
        assert abs(n_test - n * test_fraction) <= 1.5


@settings(max_examples=60, deadline=None)
@given(
    class_sizes=st.lists(st.integers(5, 60), min_size=2, max_size=6),
    val_fraction=st.floats(0.0, 0.45),
    test_fraction=st.floats(0.0, 0.45),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_is_stratified_seeded_disjoint_and_complete(class_sizes, val_fraction, test_fraction, seed):
    assume(val_fraction + test_fraction < 0.95)
    dataset = make_dataset(class_sizes)
    split = split_dataset(dataset, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    check_split(dataset, split, val_fraction, test_fraction)
    assert split_dataset(dataset, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed) == split


@settings(max_examples=40, deadline=None)
@given(class_sizes=st.lists(st.integers(1, 6), min_size=1, max_size=5), seed=st.integers(0, 1000))
def test_split_tiny_classes_still_train_on_every_class(class_sizes, seed):
    dataset = make_dataset(class_sizes)
    split = split_dataset(dataset, val_fraction=0.3, test_fraction=0.3, seed=seed)
    targets = dataset.targets()
    assert sorted(np.concatenate([split.train, split.val, split.test]).tolist()) == list(range(len(dataset)))
    assert set(targets[split.train].tolist()) == set(range(len(class_sizes)))
    for label_index, n in enumerate(class_sizes):
        if n >= 3:
            assert np.sum(targets[split.val] == label_index) >= 1
            assert np.sum(targets[split.test] == label_index) >= 1


def test_split_defaults_seeds_and_round_trip():
    dataset = make_dataset([40, 40, 40])
    split = split_dataset(dataset)
    assert (len(split.train), len(split.val), len(split.test)) == (84, 18, 18)
    assert split_dataset(dataset, seed=1) != split
    no_test = split_dataset(dataset, test_fraction=0)
    assert no_test.test.size == 0 and no_test.test.dtype == np.int64
    restored = Split.from_dict(json.loads(json.dumps(split.to_dict())))
    assert restored == split
    with pytest.raises(ValueError):
        split.train[0] = 5  # read-only, like the frozen dataclass around it


@pytest.mark.parametrize("kwargs, quoted", [
    ({"val_fraction": -0.1}, "val_fraction=-0.1"),
    ({"val_fraction": 1.0}, "val_fraction=1.0"),
    ({"test_fraction": "0.2"}, "test_fraction='0.2'"),
    ({"test_fraction": math.nan}, "test_fraction=nan"),
    ({"val_fraction": 0.6, "test_fraction": 0.5}, "val_fraction=0.6, test_fraction=0.5"),
    ({"seed": "zero"}, "seed='zero'"),
    ({"seed": -1}, "seed=-1"),
])
def test_split_rejects_bad_arguments_quoting_them(kwargs, quoted):
    with pytest.raises(ValueError) as info:
        split_dataset(make_dataset([10, 10]), **kwargs)
    assert quoted in str(info.value)


# --------------------------------------------------------------------------- bundled sample


def test_bundled_sample_loads():
    from quasar_core.sample import SAMPLE_DIR, load_sample

    if not SAMPLE_DIR.is_dir():
        pytest.skip("sample_data/fashion is not generated")
    dataset = load_sample()
    assert dataset.labels == ["Ankle boot", "Bag", "Sneaker", "T-shirt", "Trouser"]
    assert set(dataset.report.counts.values()) == {60}
    assert dataset.report.problems == []
    assert suggest_image_size(dataset) == 96  # 28-px Fashion-MNIST


def test_sample_script_holdout_never_overlaps_the_sample(tmp_path):
    if not (FASHION_SOURCE / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST source files are not available")
    import importlib.util

    script_path = REPO_ROOT / "scripts" / "make_sample_dataset.py"
    spec = importlib.util.spec_from_file_location("make_sample_dataset", script_path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    _, labels = script.read_fashion_mnist(FASHION_SOURCE)
    for label in script.CLASSES:
        sample = script.choose(labels, label, 0, script.SAMPLE_POOL_END, 60, 0)
        holdout = script.choose(labels, label, script.SAMPLE_POOL_END, len(labels), 60, 0)
        assert sample.max() < script.SAMPLE_POOL_END <= holdout.min()
        assert np.array_equal(sample, script.choose(labels, label, 0, script.SAMPLE_POOL_END, 60, 0))
    assert script.main(["--source", str(FASHION_SOURCE), "--holdout", str(tmp_path), "--per-class", "2"]) == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png"))[:2] == [
        "Ankle boot/Ankle boot_000.png", "Ankle boot/Ankle boot_001.png"]
    assert len(list(tmp_path.rglob("*.png"))) == 10
