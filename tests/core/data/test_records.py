"""Tests for quasar_core.data.records: Limits, Problem, DataReport, PhotoRef, Sample and Dataset.

A Dataset holds no pixels: each photo is decoded again from its PhotoRef (a file, a zip
member, or an upload's bytes). Every input is generated in tmp_path or in memory.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from quasar_core.data import (DataReport, Dataset, Limits, PhotoRef, Problem, Sample, decode_image, load_folder,
                              load_uploads, load_zip, resize_square)
from quasar_core.data.records import source_exists
from quasar_core.errors import DatasetError
from quasar_core.presets import suggest_image_size
from tests.hostile import encode, good_class, png, write_tree, zip_bytes

PETS = {**good_class("cat", 5, 0), **good_class("dog", 6, 10)}


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


def test_problem_kind_is_checked_quoting_it():
    with pytest.raises(ValueError, match="kind='error'"):
        Problem("a.png", "bad", "error")


# --------------------------------------------------------------------------- no pixels kept


def test_a_sample_holds_no_pixels_and_limits_store_none():
    assert [f.name for f in dataclasses.fields(Sample)] == ["name", "label", "original_size", "digest", "source"]
    assert "store_max_side" not in {f.name for f in dataclasses.fields(Limits)}
    with pytest.raises(TypeError):
        Limits(store_max_side=256)


def test_pixels_are_the_full_photo_decoded_again_from_its_file(tmp_path):
    files = {**PETS, "cat/big.png": png(40, (300, 200))}
    root = write_tree(tmp_path / "pets", files)
    dataset = load_folder(root)
    index = next(i for i, s in enumerate(dataset.samples) if s.name == "cat/big.png")
    pixels = dataset.pixels(index)
    assert pixels.shape == (200, 300, 3) and pixels.dtype == np.uint8  # full size: nothing stored downscaled
    assert np.array_equal(pixels, decode_image(files["cat/big.png"], "big", limits=Limits()).pixels)
    assert dataset.samples[index].original_size == (300, 200)


def test_pixels_of_a_photo_that_is_gone_say_to_load_again(tmp_path):
    root = write_tree(tmp_path / "pets", PETS)
    dataset = load_folder(root)
    (root / "cat" / "cat_0.png").unlink()
    with pytest.raises(DatasetError, match="cat/cat_0.png can no longer be read") as info:
        dataset.pixels(0)
    assert "load the photos again" in str(info.value)
    kept_none = Dataset([Sample("a/b.png", "a", (20, 20), "d", None)], ["a"], DataReport("x", {"a": 1}, []))
    with pytest.raises(DatasetError, match="a/b.png was not kept with the dataset"):
        kept_none.pixels(0)


# --------------------------------------------------------------------------- PhotoRef and Sample


def test_photo_ref_round_trip_reads_the_same_bytes(tmp_path):
    payload = png(3)
    (tmp_path / "a.png").write_bytes(payload)
    (tmp_path / "a.zip").write_bytes(zip_bytes({"cat/a.png": payload}))
    for ref in (PhotoRef(path=str(tmp_path / "a.png"), size=len(payload)),
                PhotoRef(path=str(tmp_path / "a.zip"), member="cat/a.png", size=len(payload))):
        restored = PhotoRef.from_dict(json.loads(json.dumps(ref.to_dict())))
        assert (restored.path, restored.member, restored.size) == (ref.path, ref.member, ref.size)
        assert restored.read() == ref.read() == payload
    in_memory = PhotoRef(data=payload)
    assert in_memory.read() == payload
    with pytest.raises(ValueError, match="cannot be saved by reference"):
        in_memory.to_dict()


def test_sample_round_trip(tmp_path):
    dataset = load_folder(write_tree(tmp_path / "pets", PETS))
    for sample in dataset.samples:
        restored = Sample.from_dict(json.loads(json.dumps(sample.to_dict())))
        assert restored.to_dict() == sample.to_dict()
        assert isinstance(restored.original_size, tuple) and restored.source.read() == sample.source.read()


# --------------------------------------------------------------------------- Dataset


def make_dataset(class_sizes: list[int], side: int = 20) -> Dataset:
    """Samples that say what their photo was (side x side) without any photo to read."""
    samples, counts = [], {}
    for c, size in enumerate(class_sizes):
        label = f"class{c:02d}"
        counts[label] = size
        for i in range(size):
            samples.append(Sample(f"{label}/{i}.png", label, (side, side), digest=f"{c}-{i}"))
    return Dataset(samples=samples, labels=sorted(counts), report=DataReport("made", counts, []))


def test_dataset_images_and_targets(tmp_path):
    dataset = load_folder(write_tree(tmp_path, PETS))
    assert len(dataset) == 11
    assert dataset.targets().dtype == np.int64
    assert dataset.targets().tolist() == [0] * 5 + [1] * 6
    batch = dataset.images(size=64)
    assert batch.shape == (11, 64, 64, 3) and batch.dtype == np.float32
    picked = dataset.images([10, 0], size=32)
    assert picked.shape == (2, 32, 32, 3)
    assert np.array_equal(picked[1], dataset.pixels(0).astype(np.float32))  # 32x32 source: unchanged
    assert dataset.targets([10, 0]).tolist() == [1, 0]
    assert dataset.images([], size=8).shape == (0, 8, 8, 3)
    with pytest.raises(ValueError, match="size=0"):
        dataset.images(size=0)


def test_images_are_resized_without_keeping_aspect():
    photo = encode(Image.new("RGB", (64, 16), (200, 200, 200)), "PNG")
    sample = Sample("a/b.png", "a", (64, 16), "d", PhotoRef(data=photo))
    dataset = Dataset([sample], ["a"], DataReport("x", {"a": 1}, []))
    out = dataset.images(size=16)
    assert out.shape == (1, 16, 16, 3) and np.allclose(out, 200, atol=1e-3)


def test_images_are_the_one_resize_of_the_full_photo(tmp_path):
    dataset = load_folder(write_tree(tmp_path, {**PETS, "dog/wide.png": png(50, (90, 40))}))
    index = next(i for i, s in enumerate(dataset.samples) if s.name == "dog/wide.png")
    assert np.array_equal(dataset.images([index], size=24)[0], resize_square(dataset.pixels(index), 24))


def test_dataset_round_trip_then_pixels_work(tmp_path):
    root = write_tree(tmp_path / "pets", PETS)
    (tmp_path / "pets.zip").write_bytes(zip_bytes(PETS))
    for dataset in (load_folder(root), load_zip(tmp_path / "pets.zip")):
        restored = Dataset.from_dict(json.loads(json.dumps(dataset.to_dict())))
        assert restored.to_dict() == dataset.to_dict()
        assert restored.labels == dataset.labels and restored.report == dataset.report
        assert [s.name for s in restored.samples] == [s.name for s in dataset.samples]
        for i in range(len(dataset)):
            assert np.array_equal(restored.pixels(i), dataset.pixels(i))
        assert np.array_equal(restored.images(size=16), dataset.images(size=16))


def test_uploads_held_in_memory_cannot_be_saved_by_reference():
    items = [(name.split("/")[1], payload, name.split("/")[0]) for name, payload in PETS.items()]
    dataset = load_uploads(items)
    with pytest.raises(ValueError, match="save the uploads to a folder"):
        dataset.to_dict()


def test_subset_relabels_and_recounts(tmp_path):
    dataset = load_folder(write_tree(tmp_path, {**PETS, **good_class("bird", 5, 30)}))
    assert dataset.labels == ["bird", "cat", "dog"]
    names = [s.name for s in dataset.samples]
    cats = [names.index(f"cat/cat_{i}.png") for i in range(5)]
    dogs = [names.index(f"dog/dog_{i}.png") for i in range(6)]
    # Keep cats and dogs only; call two of the dogs "puppy".
    chosen = dogs + cats  # any order: the subset is in class then name order
    subset = dataset.subset(chosen, labels={dogs[0]: "puppy", dogs[1]: "puppy"})
    assert subset.labels == ["cat", "dog", "puppy"]
    assert subset.report.counts == {"cat": 5, "dog": 4, "puppy": 2}
    assert subset.report.source == dataset.report.source
    assert subset.report.problems == dataset.report.problems
    assert [s.name for s in subset.samples][:5] == [f"cat/cat_{i}.png" for i in range(5)]
    assert {s.name for s in subset.samples if s.label == "puppy"} == {"dog/dog_0.png", "dog/dog_1.png"}
    assert subset.targets().tolist() == [0] * 5 + [1] * 4 + [2] * 2
    assert len(subset) == 11 and len(dataset) == 16  # the original is unchanged
    puppy = next(i for i, s in enumerate(subset.samples) if s.name == "dog/dog_0.png")
    assert np.array_equal(subset.pixels(puppy), dataset.pixels(dogs[0]))
    # Without new labels, only the counts change.
    only_cats = dataset.subset(cats)
    assert only_cats.labels == ["cat"] and only_cats.report.counts == {"cat": 5}


def test_source_exists_false_once_the_folder_is_deleted(tmp_path):
    root = write_tree(tmp_path / "pets", PETS)
    zipped = tmp_path / "pets.zip"
    zipped.write_bytes(zip_bytes(PETS))
    from_folder, from_zip = load_folder(root), load_zip(zipped)
    assert source_exists(from_folder) and source_exists(from_zip)
    shutil.rmtree(root)
    zipped.unlink()
    assert not source_exists(from_folder)
    assert not source_exists(from_zip)
    with pytest.raises(DatasetError, match="can no longer be read"):
        from_folder.pixels(0)
    # Uploads held in memory never go away.
    items = [(name.split("/")[1], payload, name.split("/")[0]) for name, payload in PETS.items()]
    assert source_exists(load_uploads(items))


def test_a_zip_that_was_replaced_or_deleted_is_not_read_from_a_stale_handle(tmp_path):
    zipped = tmp_path / "pets.zip"
    zipped.write_bytes(zip_bytes(PETS))
    dataset = load_zip(zipped)
    first = dataset.pixels(0)  # the zip is now open, shared by all its photos
    zipped.write_bytes(b"not a zip any more")
    with pytest.raises(DatasetError, match="cat/cat_0.png can no longer be read"):
        dataset.pixels(0)
    with zipfile.ZipFile(zipped, "w") as archive:  # the same photos zipped again, stored instead of deflated
        for name, payload in PETS.items():
            archive.writestr(name, payload)
    assert np.array_equal(dataset.pixels(0), first)
    replacement = tmp_path / "other.zip"
    replacement.write_bytes(zip_bytes({"cat/cat_0.png": png(99)}))
    replacement.replace(zipped)  # a new file under the old name, as an atomic save makes it
    assert np.array_equal(dataset.pixels(0), decode_image(png(99), "x", limits=Limits()).pixels)
    zipped.unlink()
    with pytest.raises(DatasetError, match="cat/cat_0.png can no longer be read"):
        dataset.pixels(0)


@pytest.mark.parametrize("side, expected", [(28, 96), (20, 64), (10, 64), (40, 128), (50, 160), (3000, 224)])
def test_suggest_image_size(side, expected):
    dataset = make_dataset([3, 3], side=side)
    assert dataset.median_source_side() == side
    assert suggest_image_size(dataset) == expected


def test_median_source_side_of_no_photos_is_an_error():
    with pytest.raises(ValueError, match="no samples"):
        make_dataset([]).median_source_side()


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
