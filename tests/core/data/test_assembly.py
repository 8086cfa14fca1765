"""Tests for quasar_core.data.assembly: the streaming check, duplicates, dataset checks and warnings.

The loaders (sources.py, zips.py) hand their files to ``build_dataset``; these tests go
through ``load_folder``, as users do. Every input is generated in tmp_path.
"""

from __future__ import annotations

import dataclasses
import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from quasar_core.data import DatasetRejected, Limits, load_dataset, load_folder, load_zip
from quasar_core.data.assembly import imbalance_warning
from quasar_core.errors import DatasetError, ResourceLimitError
from tests.hostile import encode, good_class, png, problem_for, write_tree, zip_bytes


# --------------------------------------------------------------------------- the streaming check


def test_loading_50_photos_keeps_no_pixels(tmp_path):
    files = {f"{label}/{label}_{i:02d}.png": png(1000 * c + i, (128, 128))
             for c, label in enumerate(("cat", "dog")) for i in range(25)}
    root = write_tree(tmp_path / "pets", files)
    load_folder(root)  # first imports and caches are not the dataset's memory
    tracemalloc.start()
    try:
        dataset = load_folder(root)
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(dataset) == 50 and dataset.report.counts == {"cat": 25, "dog": 25}
    for sample in dataset.samples:
        values = [getattr(sample, f.name) for f in dataclasses.fields(sample)]
        values += [getattr(sample.source, f.name) for f in dataclasses.fields(sample.source)]
        assert not any(isinstance(value, np.ndarray) for value in values), sample
        assert sample.source.data is None  # a file on disk is read again from disk, not held in memory
    assert not any(isinstance(value, np.ndarray) for value in vars(dataset).values())
    # 50 decoded 128x128 photos would be 2.4 MB; their names, digests and paths are a few KB.
    assert kept < 1024**2, kept


def test_on_progress_reaches_n_of_n(tmp_path):
    files = {**good_class("cat", 10, 0), **good_class("dog", 10, 100), "dog/broken.png": b"not a png",
             "cat/empty.jpg": b""}
    root = write_tree(tmp_path / "pets", files)
    (tmp_path / "pets.zip").write_bytes(zip_bytes(files))
    for load in (lambda seen: load_folder(root, on_progress=lambda done, total: seen.append((done, total))),
                 lambda seen: load_zip(tmp_path / "pets.zip", on_progress=lambda d, t: seen.append((d, t))),
                 lambda seen: load_dataset(root, on_progress=lambda d, t: seen.append((d, t)))):
        seen: list[tuple[int, int]] = []
        load(seen)
        assert seen[-1] == (22, 22)  # every file checked, the unusable ones too
        assert {total for _, total in seen} == {22}
        done = [d for d, _ in seen]
        assert done == sorted(done) and done[0] > 0


def test_samples_are_in_class_then_name_order(tmp_path):
    files = {**good_class("dog", 12, 100), **good_class("cat", 12, 0), **good_class("ant", 12, 200)}
    dataset = load_folder(write_tree(tmp_path, files))
    assert dataset.labels == ["ant", "cat", "dog"]
    assert [s.name for s in dataset.samples] == sorted(files, key=lambda n: (n.split("/")[0], n))
    assert dataset.targets().tolist() == [0] * 12 + [1] * 12 + [2] * 12


# --------------------------------------------------------------------------- duplicates


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


# --------------------------------------------------------------------------- dataset checks


def test_folder_with_one_class_is_refused_with_a_hint(tmp_path):
    write_tree(tmp_path / "pets", good_class("cat", 6, 0))
    with pytest.raises(DatasetError, match=r"Only one class \('cat'\)"):
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


def test_folder_too_many_images_names_limit_and_env_var(tmp_path, monkeypatch):
    root = write_tree(tmp_path, {**good_class("cat", 4, 0), **good_class("dog", 4, 10)})
    with pytest.raises(ResourceLimitError, match="QUASAR_MAX_IMAGES") as info:
        load_folder(root, limits=Limits(max_images=7, min_images_per_class=2))
    assert "limit is 7 images" in str(info.value)
    # Without explicit limits the environment variable the message names is honoured.
    monkeypatch.setenv("QUASAR_MAX_IMAGES", "6")
    with pytest.raises(ResourceLimitError, match="limit is 6 images"):
        load_dataset(root)


# --------------------------------------------------------------------------- warnings


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


def test_imbalance_warning_is_the_one_rule():
    assert imbalance_warning({"cat": 5, "dog": 15}) == (
        "the classes are unbalanced: 'dog' has 15 images but 'cat' only 5, so the model may favour 'dog'. "
        "Add pictures of 'cat' if you can.")
    assert imbalance_warning({"cat": 6, "dog": 17}) is None  # under three times as many
    assert imbalance_warning({"cat": 6, "dog": 18, "fish": 9}).startswith("the classes are unbalanced: 'dog' has 18")
    assert imbalance_warning({"cat": 40}) is None
    assert imbalance_warning({}) is None
