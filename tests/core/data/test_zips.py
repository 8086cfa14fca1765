"""Tests for quasar_core.data.zips: zips of class folders, read in place, safe against hostile zips.

Every input is generated in tmp_path or in memory; no binary corpus is committed.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from quasar_core.data import Dataset, Limits, decode_image, load_zip
from quasar_core.errors import DatasetError, ResourceLimitError
from tests import hostile
from tests.hostile import (check_hostile_report, encode, good_class, hostile_corpus, noise, png, problem_for,
                           write_zip_bomb, zip_bytes)

PETS = {**good_class("cat", 5, 0), **good_class("dog", 5, 10)}


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
    payload = zip_bytes(PETS)
    (tmp_path / "a.zip").write_bytes(payload)
    with open(tmp_path / "a.zip", "rb") as handle:
        from_handle = load_zip(handle)
    results = [load_zip(payload), load_zip(tmp_path / "a.zip"), load_zip(str(tmp_path / "a.zip")), from_handle,
               load_zip(io.BytesIO(payload), name="x.zip")]
    assert from_handle.report.source == "a.zip"
    for dataset in results:
        assert dataset.report.counts == {"cat": 5, "dog": 5}
        assert [s.digest for s in dataset.samples] == [s.digest for s in results[0].samples]


def test_zip_members_are_read_again_after_loading(tmp_path):
    path = tmp_path / "pets.zip"
    path.write_bytes(zip_bytes({f"pets/{name}": payload for name, payload in PETS.items()}))
    dataset = load_zip(path)
    restored = Dataset.from_dict(json.loads(json.dumps(dataset.to_dict())))
    for index, sample in enumerate(dataset.samples):
        # Found again by (zip, member): the member's name as stored, top folder included.
        assert Path(sample.source.path) == path.resolve() and sample.source.data is None
        assert sample.source.member == sample.name and sample.name.startswith("pets/")
        expected = decode_image(PETS[sample.name.removeprefix("pets/")], "x", limits=Limits()).pixels
        assert np.array_equal(dataset.pixels(index), expected)
        assert np.array_equal(restored.pixels(index), expected)
    # A zip given as bytes or a file object has no path to go back to: its photos keep their bytes.
    for in_memory in (load_zip(path.read_bytes()), load_zip(io.BytesIO(path.read_bytes()), name="pets.zip")):
        assert all(s.source.path is None and s.source.data == PETS[s.name.removeprefix("pets/")]
                   for s in in_memory.samples)
        assert np.array_equal(in_memory.pixels(0), dataset.pixels(0))


def test_zip_empty_class_folder_and_windows_separators():
    members = {**good_class("cat", 5, 0), "bird/": b""}
    members.update({f"dog\\dog_{i}.png": png(10 + i) for i in range(5)})
    dataset = load_zip(zip_bytes(members))
    assert dataset.report.counts == {"cat": 5, "dog": 5}
    assert problem_for(dataset.report, "bird/").kind == "warning"


def test_zip_windows_separators_and_utf8_names_are_read_again_from_disk(tmp_path):
    placeholder, real = "cafXY", "café"
    members = {**good_class(placeholder, 5, 0), **{f"dog\\dog_{i}.png": png(10 + i) for i in range(5)}}
    path = tmp_path / "mixed.zip"
    path.write_bytes(zip_bytes(members).replace(placeholder.encode(), real.encode()))
    dataset = load_zip(path)
    assert dataset.labels == ["café", "dog"]
    for index in range(len(dataset)):
        assert dataset.pixels(index).shape == (32, 32, 3)


def test_zip_utf8_names_without_the_utf8_flag_are_read_as_utf8():
    # Archivers on macOS/Linux write UTF-8 names without setting the flag; zipfile reads cp437.
    placeholder, real = "cafXY", "café"
    assert len(placeholder.encode()) == len(real.encode())
    members = {**good_class(placeholder, 5, 0), **good_class("dog", 5, 10)}
    raw = zip_bytes(members).replace(placeholder.encode(), real.encode())
    dataset = load_zip(raw)
    assert dataset.labels == ["café", "dog"]


def test_zip_nested_zip_is_skipped():
    members = {**PETS, "cat/more.zip": zip_bytes({"x/a.png": png(1)})}
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
    members = dict(PETS)
    hostile = ["../evil.png", "/abs.png", "C:/windows.png", "cat/../../escape.png", "..\\dotdot.png"]
    members.update({name: png(900 + i) for i, name in enumerate(hostile)})
    dataset = load_zip(zip_bytes(members))
    for name in hostile:
        shown = name.replace("\\", "/")
        assert problem_for(dataset.report, shown).reason.startswith("unsafe path in the zip")
    assert dataset.report.counts == {"cat": 5, "dog": 5}
    assert not (tmp_path / "evil.png").exists() and not Path("/abs.png").exists()


def test_reading_photos_again_from_a_zip_on_disk_writes_nothing(tmp_path):
    path = tmp_path / "pets.zip"
    path.write_bytes(zip_bytes(PETS))
    dataset = load_zip(path)
    with pytest.MonkeyPatch.context() as patch:
        real_open = builtins.open

        def guarded_open(file, mode="r", *args, **kwargs):
            if any(flag in mode for flag in "wax+"):
                raise AssertionError(f"tried to write {file!r}")
            return real_open(file, mode, *args, **kwargs)

        patch.setattr(builtins, "open", guarded_open)
        patch.setattr(io, "open", guarded_open)
        assert dataset.images(size=8).shape == (10, 8, 8, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pets.zip"]


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
    members = dict(PETS)
    members["cat/noise.bmp"] = encode(noise(3, (600, 600)), "BMP")  # ~1 MB, barely compressible
    with pytest.raises(ResourceLimitError, match="QUASAR_MAX_EXTRACTED_MB"):
        load_zip(zip_bytes(members), limits=Limits(max_extracted_bytes=512 * 1024))


def test_zip_member_lying_about_its_size_is_skipped():
    members = {**PETS, "cat/liar.png": bytes(5 * 1024**2)}
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
    payload = zip_bytes(PETS)
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
        load_zip(zip_bytes(PETS), limits=limits)
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
