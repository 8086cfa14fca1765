"""The on-disk feature cache: atomic writes from several processes, checksummed entries (a damaged
or foreign file is deleted and reported missing, never returned), LRU eviction within a budget,
and keys that change with every field of the FeatureSpec. No TensorFlow here."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os

import numpy as np
import pytest

from quasar_core.features import cache as cache_module
from quasar_core.features.cache import BUDGET_ENV, CACHE_ENV, FeatureCache, FeatureSpec

SPEC = FeatureSpec(weights_id="sha256-abc", image_size=32, precision="float32")
SHARED_KEYS = 40  # written by both processes at once
OWN_KEYS = 40  # written by one process only


def digest(number: int) -> str:
    return f"{number:064x}"


def features(number: int, writer: int = 0) -> np.ndarray:
    return np.random.default_rng([number, writer]).random(512).astype(np.float32)


def _writer(root: str, writer: int, start, rounds: int) -> None:
    """Runs in a spawned process: waits for the other, then writes shared and own keys, several times."""
    cache = FeatureCache(root)
    start.wait(timeout=60)
    for _ in range(rounds):
        for number in range(SHARED_KEYS):
            cache.put(digest(number), SPEC, features(number, writer))
        for number in range(OWN_KEYS):
            own = 1000 * (writer + 1) + number
            cache.put(digest(own), SPEC, features(own, writer))


@pytest.fixture
def cache(tmp_path):
    return FeatureCache(tmp_path / "features", max_bytes=10**9)


def entry_path(cache: FeatureCache, number: int, spec: FeatureSpec = SPEC):
    return cache._path(digest(number), spec)


# --------------------------------------------------------------------------- reading and writing


def test_an_entry_reads_back_exactly_and_counts_hits_and_misses(cache):
    assert cache.get(digest(1), SPEC) is None
    assert not cache.has(digest(1), SPEC)
    for dtype, shape in ((np.float32, (512,)), (np.float16, (2, 2, 512)), (np.float64, (3, 5))):
        value = np.random.default_rng(0).random(shape).astype(dtype)
        cache.put(digest(1), SPEC, value)
        got = cache.get(digest(1), SPEC)
        assert got.dtype == value.dtype and got.shape == value.shape
        np.testing.assert_array_equal(got, value)
        got[...] = 0  # a copy: changing it does not change the cache
        np.testing.assert_array_equal(cache.get(digest(1), SPEC), value)
    assert cache.has(digest(1), SPEC)
    assert (cache.hits, cache.misses) == (6, 1)
    assert cache.size_bytes() == sum(size for _, size, _ in cache.entries()) > 0


def test_two_processes_writing_at_once_leave_every_entry_whole(tmp_path):
    """Spawned writers race on the same keys and write their own: every entry is one writer's whole array."""
    root = tmp_path / "features"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=_writer, args=(str(root), writer, start, 3)) for writer in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]

    cache = FeatureCache(root)
    for number in range(SHARED_KEYS):
        got = cache.get(digest(number), SPEC)
        assert got is not None, number
        assert any(np.array_equal(got, features(number, writer)) for writer in (0, 1)), number
    for writer in (0, 1):
        for number in range(OWN_KEYS):
            own = 1000 * (writer + 1) + number
            np.testing.assert_array_equal(cache.get(digest(own), SPEC), features(own, writer))
    assert cache.misses == 0
    assert len(cache.entries()) == SHARED_KEYS + 2 * OWN_KEYS
    leftovers = [path for path in root.rglob("*") if path.is_file() and not path.name.endswith(".qnf")]
    assert leftovers == []  # no temporary file left behind


# --------------------------------------------------------------------------- damaged entries


def flip_a_byte(path, position):
    blob = bytearray(path.read_bytes())
    blob[position] ^= 0x01
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("damage", ["payload byte", "header byte", "checksum byte", "truncated", "one byte short",
                                    "empty", "foreign file", "foreign file with the magic"])
def test_a_damaged_or_foreign_entry_is_deleted_and_reported_missing(cache, damage):
    cache.put(digest(7), SPEC, features(7))
    path = entry_path(cache, 7)
    size = path.stat().st_size
    if damage == "payload byte":
        flip_a_byte(path, size // 2)
    elif damage == "header byte":
        flip_a_byte(path, 10)
    elif damage == "checksum byte":
        flip_a_byte(path, size - 1)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: size // 2])
    elif damage == "one byte short":
        path.write_bytes(path.read_bytes()[:-1])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "foreign file":
        path.write_bytes(b"PK\x03\x04 someone else's file" * 40)
    else:
        path.write_bytes(cache_module.MAGIC + os.urandom(size))
    assert cache.has(digest(7), SPEC)  # has() does not read the file: for estimates only
    misses = cache.misses
    assert cache.get(digest(7), SPEC) is None
    assert cache.misses == misses + 1 and cache.hits == 0
    assert not path.exists()  # deleted, so it is recomputed
    assert not cache.has(digest(7), SPEC)
    cache.put(digest(7), SPEC, features(7))  # and the recomputed value is trusted again
    np.testing.assert_array_equal(cache.get(digest(7), SPEC), features(7))


def test_a_damaged_entry_does_not_hide_the_others(cache):
    for number in range(3):
        cache.put(digest(number), SPEC, features(number))
    flip_a_byte(entry_path(cache, 1), 40)
    assert cache.get(digest(1), SPEC) is None
    for number in (0, 2):
        np.testing.assert_array_equal(cache.get(digest(number), SPEC), features(number))


# --------------------------------------------------------------------------- eviction


def test_eviction_removes_the_least_recently_read_first_and_keeps_the_budget(cache):
    for number in range(6):
        cache.put(digest(number), SPEC, features(number))
        os.utime(entry_path(cache, number), (1_000_000 + number, 1_000_000 + number))  # written in order
    entry = entry_path(cache, 0).stat().st_size
    assert cache.get(digest(0), SPEC) is not None  # read now: the most recently used
    assert cache.get(digest(1), SPEC) is not None
    freed = cache.evict(max_bytes=3 * entry)
    assert freed == 3 * entry
    assert cache.size_bytes() <= 3 * entry
    kept = {number for number in range(6) if cache.has(digest(number), SPEC)}
    assert kept == {0, 1, 5}  # 2, 3 and 4 were the least recently used
    assert cache.evict(max_bytes=3 * entry) == 0  # already within the budget
    assert cache.evict(max_bytes=1) == 3 * entry and cache.entries() == []


def test_the_default_budget_is_the_caches_own(tmp_path):
    small = FeatureCache(tmp_path / "small", max_bytes=1)
    small.put(digest(1), SPEC, features(1))
    small.put(digest(2), SPEC, features(2))
    assert small.evict() > 0 and small.entries() == []
    with pytest.raises(ValueError, match="at least 1"):
        FeatureCache(tmp_path, max_bytes=0)


def test_budget_and_folder_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert cache_module.budget_from_env() == cache_module.DEFAULT_BUDGET_BYTES
    monkeypatch.setenv(BUDGET_ENV, "1.5")
    assert FeatureCache(tmp_path).max_bytes == int(1.5 * 1024**2)
    for bad in ("0", "-3", "lots"):
        monkeypatch.setenv(BUDGET_ENV, bad)
        with pytest.raises(ValueError, match=repr(bad)):
            cache_module.budget_from_env()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_module.default_cache_dir(runs_root=tmp_path / "runs") == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    assert cache_module.default_cache_dir(runs_root=tmp_path / "runs") == tmp_path.resolve() / "features"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_module.default_cache_dir() == tmp_path / "xdg" / "quasar" / "features"


# --------------------------------------------------------------------------- keys


CHANGES = {"weights_id": "random-0", "image_size": 64, "precision": "bfloat16", "layer": "block4_pool",
           "view": 1, "augmentation": '{"seed": 1}'}


def test_every_field_of_the_spec_is_in_the_test():
    assert set(CHANGES) == {field.name for field in dataclasses.fields(FeatureSpec)}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_keys_differ_when_any_spec_field_differs(cache, field):
    other = dataclasses.replace(SPEC, **{field: CHANGES[field]})
    assert other.key() != SPEC.key()
    assert entry_path(cache, 3, other) != entry_path(cache, 3, SPEC)
    cache.put(digest(3), SPEC, features(3))
    assert cache.get(digest(3), other) is None and not cache.has(digest(3), other)
    assert cache.get(digest(4), SPEC) is None  # another photo: another key too
    assert FeatureSpec(**dataclasses.asdict(SPEC)).key() == SPEC.key()  # equal specs: equal keys


def test_with_view_keeps_the_rest_and_drops_the_augmentation_of_view_0():
    augmented = SPEC.with_view(2, "flip")
    assert (augmented.view, augmented.augmentation) == (2, "flip")
    assert dataclasses.replace(augmented, view=0, augmentation="") == SPEC
    assert SPEC.with_view(0, "flip") == SPEC
