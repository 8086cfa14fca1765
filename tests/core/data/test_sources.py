"""Tests for quasar_core.data.sources: folders of class folders, uploads, and load_dataset.

Every input is generated in tmp_path or in memory; no binary corpus is committed.
"""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from quasar_core.data import Limits, decode_image, load_dataset, load_folder, load_uploads
from quasar_core.errors import DatasetError, ResourceLimitError
from quasar_core.presets import suggest_image_size
from tests.hostile import (check_hostile_report, good_class, hostile_corpus, png, problem_for, write_tree,
                           zip_bytes)

REPO_ROOT = Path(__file__).resolve().parents[3]
FASHION_SOURCE = REPO_ROOT.parent / "shared" / "datasets" / "fashion-mnist"


# --------------------------------------------------------------------------- folders


def test_folder_hostile_corpus(tmp_path):
    root = write_tree(tmp_path / "pets", hostile_corpus())
    dataset = load_folder(root)
    check_hostile_report(dataset)
    assert dataset.labels == ["cat", "dog"]
    assert dataset.report.source == str(root)
    rotated = next(i for i, s in enumerate(dataset.samples) if s.name == "cat/rotated.jpg")
    assert dataset.pixels(rotated).shape == (40, 20, 3)


def test_folder_photos_are_found_again_by_their_path(tmp_path):
    files = {**good_class("cat", 5, 0), **good_class("dog", 5, 10)}
    root = write_tree(tmp_path / "pets", files)
    dataset = load_folder(root)
    for index, sample in enumerate(dataset.samples):
        ref = sample.source
        assert Path(ref.path) == (root / sample.name).resolve() and Path(ref.path).is_absolute()
        assert ref.member is None and ref.data is None and ref.size == len(files[sample.name])
        assert np.array_equal(dataset.pixels(index), decode_image(files[sample.name], "x", limits=Limits()).pixels)


def test_folder_source_is_named_as_given(tmp_path):
    root = write_tree(tmp_path / "upload-3f2a", {**good_class("cat", 5, 0), **good_class("dog", 5, 10)})
    dataset = load_folder(root, source="your uploads")
    assert dataset.report.source == "your uploads"
    assert dataset.report.summary_lines()[0].startswith("your uploads: 10 usable images in 2 classes")
    with pytest.raises(DatasetError, match="The folder 'your uploads' does not exist") as info:
        load_folder(tmp_path / "gone", source="your uploads")
    assert str(tmp_path) not in str(info.value)  # the server's folder is not shown to the user
    write_tree(tmp_path / "one", good_class("cat", 6, 0))
    with pytest.raises(DatasetError, match=r"Only one class \('cat'\) was found in your uploads"):
        load_folder(tmp_path / "one", source="your uploads")


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
    assert all(dataset.pixels(i).shape == (32, 32, 3) for i in range(len(dataset)))  # read again by those paths


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


def test_uploads_keep_their_bytes_to_be_read_again():
    payloads = {f"img{i}.png": png(i) for i in range(5)}
    items = [(name, payload, "cat") for name, payload in payloads.items()]
    items += [(f"img{i}.png", png(10 + i), "dog") for i in range(5)]
    dataset = load_uploads(items)
    assert dataset.report.source == "uploads"
    for index, sample in enumerate(dataset.samples):
        assert sample.source.path is None and sample.source.data is not None
        if sample.label == "cat":
            assert sample.source.data == payloads[sample.name.split("/", 1)[1]]
        assert dataset.pixels(index).shape == (32, 32, 3)


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
