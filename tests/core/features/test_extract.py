"""The feature pass: cached photos are not even decoded, augmented views are the same whatever the
batch, cancelling returns None, progress reaches the total, and the networks come from
network_provider. A counting stand-in network keeps most tests free of VGG16."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from quasar_core.config import Augmentation
from quasar_core.data.images import resize_square
from quasar_core.features import extract, networks
from quasar_core.features.cache import FeatureCache, FeatureSpec
from quasar_core.features.extract import (FeaturePass, augmentation_id, batch_size_for, local_weights,
                                          network_provider, view_seed)
from quasar_core.progress import TrainingHooks

SIZE = 32
SPEC = FeatureSpec("random-0", SIZE, "float32")
AUGMENTATION = Augmentation(flip=True, rotation=0.1, zoom=0.2, contrast=0.2, views=3)


class CountingNetwork:
    """Stands in for VGG16: a photo's features are its resized pixels, flattened; counts what it ran."""

    def __init__(self):
        self.layers_asked = []
        self.batches = []

    def provider(self, layer):
        self.layers_asked.append(layer)
        return self

    def __call__(self, images):
        self.batches.append(len(images))
        return np.asarray(images, np.float32).reshape(len(images), -1).copy()

    @property
    def photos(self):
        return sum(self.batches)


@pytest.fixture
def decodes(dataset, monkeypatch):
    """Counts every photo decoded from its source (per dataset index)."""
    counted = []
    real = type(dataset).pixels

    def pixels(index):
        counted.append(int(index))
        return real(dataset, index)

    monkeypatch.setattr(dataset, "pixels", pixels)
    return counted


def feature_pass(network, cache=None, **kwargs):
    return FeaturePass(spec=SPEC, network_for=network.provider, cache=cache, **kwargs)


def test_cache_hits_skip_decoding_and_a_second_pass_computes_nothing(dataset, decodes, tmp_path):
    cache = FeatureCache(tmp_path / "features")
    network = CountingNetwork()
    first = feature_pass(network, cache)
    half = np.arange(0, len(dataset), 2)
    out = first.features(dataset, half)
    assert out.shape == (1, len(half), SIZE * SIZE * 3) and out.dtype == np.float32
    assert first.computed == len(half) and sorted(decodes) == half.tolist()
    np.testing.assert_array_equal(out[0, 3], resize_square(dataset.pixels(half[3]), SIZE).reshape(-1))
    decodes.clear()

    everything = np.arange(len(dataset))
    second = feature_pass(network, cache)
    both = second.features(dataset, everything)
    assert second.computed == len(dataset) - len(half)  # only the photos not cached yet
    assert sorted(decodes) == sorted(set(everything) - set(half))
    np.testing.assert_array_equal(both[0, half], out[0])
    decodes.clear()

    asked = len(network.layers_asked)
    third = feature_pass(network, cache)
    again = third.features(dataset, everything[::-1])
    assert third.computed == 0 and decodes == []  # nothing decoded, nothing computed
    assert len(network.layers_asked) == asked  # the network was not even asked for
    np.testing.assert_array_equal(again[0], both[0, ::-1])


def test_the_cache_keeps_layers_views_and_precisions_apart(dataset, tmp_path):
    cache = FeatureCache(tmp_path / "features")
    network = CountingNetwork()
    feature_pass(network, cache).features(dataset, [0, 1])
    other = FeaturePass(spec=FeatureSpec("random-0", SIZE, "bfloat16"), network_for=network.provider, cache=cache)
    other.features(dataset, [0, 1])
    assert other.computed == 2
    deeper = feature_pass(network, cache)
    deeper.features(dataset, [0, 1], layer="block4_pool")
    assert deeper.computed == 2 and network.layers_asked[-1] == "block4_pool"
    augmented = feature_pass(network, cache, augmentation=AUGMENTATION, seed=0)
    augmented.features(dataset, [0, 1], views=2)
    assert augmented.computed == 2  # view 0 from the cache, view 1 computed
    reseeded = feature_pass(network, cache, augmentation=AUGMENTATION, seed=1)
    reseeded.features(dataset, [0, 1], views=2)
    assert reseeded.computed == 2  # another seed makes other views


def test_augmented_views_are_the_same_whatever_the_batch(dataset, monkeypatch):
    everything = feature_pass(CountingNetwork(), augmentation=AUGMENTATION, seed=3).features(
        dataset, np.arange(len(dataset)), views=3)
    monkeypatch.setattr(extract, "MAX_BATCH", 2)
    assert batch_size_for(SIZE) == 2
    chosen = np.array([5, 17, 2])
    network = CountingNetwork()
    few = feature_pass(network, augmentation=AUGMENTATION, seed=3).features(dataset, chosen, views=3)
    assert network.batches == [2, 2, 2, 2, 1]  # 9 photo-views, two at a time, in another order
    np.testing.assert_allclose(few, everything[:, chosen], atol=1e-4)
    np.testing.assert_array_equal(everything[0], feature_pass(CountingNetwork()).features(
        dataset, np.arange(len(dataset)))[0])  # view 0 is the photo itself
    for view in (1, 2):
        assert not np.allclose(everything[view], everything[0])  # really augmented
    assert not np.allclose(everything[1], everything[2])
    other_seed = feature_pass(CountingNetwork(), augmentation=AUGMENTATION, seed=4).features(dataset, chosen, views=2)
    assert not np.allclose(other_seed[1], few[1])


def test_view_seeds_depend_on_photo_view_and_seed_only():
    seeds = {view_seed(d, v, s) for d in ("aa", "bb") for v in (1, 2) for s in (0, 1)}
    assert len(seeds) == 8 and all(0 <= seed < 2**31 for seed in seeds)
    assert view_seed("aa", 1, 0) == view_seed("aa", 1, 0)
    assert augmentation_id(AUGMENTATION, 0) != augmentation_id(AUGMENTATION, 1)
    assert augmentation_id(AUGMENTATION, 0) != augmentation_id(Augmentation(views=3), 0)


def test_views_need_an_augmentation(dataset):
    with pytest.raises(ValueError, match="augmentation"):
        feature_pass(CountingNetwork()).features(dataset, [0], views=2)


def test_progress_reaches_the_total_of_photos_to_compute(dataset, monkeypatch, tmp_path):
    monkeypatch.setattr(extract, "MAX_BATCH", 5)
    cache = FeatureCache(tmp_path / "features")
    feature_pass(CountingNetwork(), cache).features(dataset, [0, 1, 2])
    reports = []
    network = CountingNetwork()
    done = feature_pass(network, cache, hooks=TrainingHooks(on_progress=reports.append)).features(
        dataset, np.arange(len(dataset)))
    assert done is not None and network.photos == len(dataset) - 3
    assert [p.step for p in reports] == [5, 10, 15, 20, 21]
    assert all(p.phase == "features" and p.total_steps == 21 for p in reports)
    assert reports[-1].fraction == 1.0 and reports[-1].eta_seconds == pytest.approx(0.0)
    assert all(p.rate is None or p.rate > 0 for p in reports)


def test_cancel_returns_none(dataset, monkeypatch, tmp_path):
    monkeypatch.setattr(extract, "MAX_BATCH", 4)
    cancel = threading.Event()
    cancel.set()
    network = CountingNetwork()
    assert feature_pass(network, cancel=cancel).features(dataset, np.arange(len(dataset))) is None
    assert network.batches == []  # stopped before the first batch

    cancel = threading.Event()
    cache = FeatureCache(tmp_path / "features")
    network = CountingNetwork()
    stopped = feature_pass(network, cache, cancel=cancel, hooks=TrainingHooks(on_progress=lambda p: cancel.set()))
    assert stopped.features(dataset, np.arange(len(dataset))) is None
    assert network.batches == [4] and stopped.computed == 4  # at the next batch
    assert len(cache.entries()) == 4  # what was computed is kept for next time
    resumed = feature_pass(CountingNetwork(), cache)
    resumed.features(dataset, np.arange(len(dataset)))
    assert resumed.computed == len(dataset) - 4


def test_cached_count(dataset, tmp_path):
    cache = FeatureCache(tmp_path / "features")
    network = CountingNetwork()
    assert feature_pass(network, None).cached_count(dataset) == 0
    assert feature_pass(network, cache).cached_count(dataset) == 0
    feature_pass(network, cache, augmentation=AUGMENTATION).features(dataset, [0, 1, 2], views=2)
    assert feature_pass(network, cache).cached_count(dataset) == 3
    assert feature_pass(network, cache, augmentation=AUGMENTATION).cached_count(dataset, views=2) == 6
    assert feature_pass(network, cache, augmentation=AUGMENTATION).cached_count(dataset, views=3) == 6
    assert feature_pass(network, cache).cached_count(dataset, layer="block4_pool") == 0


def test_a_preallocated_output_is_filled(dataset, tmp_path):
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32,
                                    shape=(1, 4, SIZE * SIZE * 3))
    returned = feature_pass(CountingNetwork()).features(dataset, [3, 2, 1, 0], out=out)
    assert returned is out
    np.testing.assert_array_equal(out[0, 0], resize_square(dataset.pixels(3), SIZE).reshape(-1))
    assert feature_pass(CountingNetwork()).features(dataset, []).shape[:2] == (1, 0)


def test_batch_size_is_bounded_by_memory():
    assert batch_size_for(32) == extract.MAX_BATCH
    sizes = [batch_size_for(s) for s in (32, 128, 224, 512, 4096)]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 1
    for size in (224, 512):
        assert 2 * size * size * 64 * 4 * batch_size_for(size) <= extract.PASS_BUDGET_BYTES


# --------------------------------------------------------------------------- the networks it is given


def test_network_provider_shares_the_keras_networks(base, base_loader, monkeypatch, tmp_path):
    from quasar_core.features import precision

    network_for = network_provider(weights="none", image_size=SIZE, precision="float32", base_loader=base_loader,
                                   cache=None)
    assert network_for(extract.POOLED) is networks.keras_network(base, precision="float32")
    boundary = network_for("block4_pool")
    assert boundary is networks.keras_network(base, precision="float32", stop_at="block4_pool", pooled=False)
    assert boundary(np.zeros((1, SIZE, SIZE, 3), np.float32)).shape == (1, SIZE // 16, SIZE // 16, 512)

    built = []
    monkeypatch.setattr(extract, "local_weights", lambda weights, loader: "/weights/vgg16.h5")
    from quasar_core.features import int8
    monkeypatch.setattr(int8, "load_int8_network", lambda **kwargs: built.append(kwargs) or "int8 network")
    monkeypatch.setattr(precision, "cpu_supports_bfloat16", lambda: True)  # even so: float32 beside int8
    cache = FeatureCache(tmp_path / "cache" / "features")
    network_for = network_provider(weights="none", image_size=SIZE, precision="int8", base_loader=base_loader,
                                   cache=cache)
    assert network_for(extract.POOLED) == "int8 network"
    assert network_for(extract.POOLED) == "int8 network"  # opened once: the int8 check and the pass share it
    assert built == [{"weights_path": "/weights/vgg16.h5", "weights_id": "random-0", "image_size": SIZE,
                      "models_dir": tmp_path / "cache" / "int8-models"}]
    # Boundary activations for fine-tuning stay float32 (TensorFlow's bf16 was slower, precision.float_beside).
    assert network_for("block4_pool") is boundary


def test_int8_needs_a_weights_file(base_loader):
    with pytest.raises(ValueError, match="weights file"):
        local_weights("none", base_loader)


def test_the_pass_through_vgg16_equals_the_network_on_resized_photos(dataset, base, base_loader):
    network_for = network_provider(weights="none", image_size=SIZE, precision="float32", base_loader=base_loader,
                                   cache=None)
    features = FeaturePass(spec=SPEC, network_for=network_for, cache=None).features(dataset, [0, 9, 20])
    assert features.shape == (1, 3, 1024)
    expected = networks.keras_network(base)(dataset.images([0, 9, 20], size=SIZE))
    np.testing.assert_allclose(features[0], expected, rtol=1e-5, atol=1e-6)


def test_the_int8_check_leaves_its_photos_features_in_the_cache(dataset, monkeypatch, tmp_path):
    from quasar_core.features import int8

    cache = FeatureCache(tmp_path / "cache" / "features")
    spec = FeatureSpec("random-0", SIZE, "int8")
    quantized = CountingNetwork()
    opened = []

    def float_network(*, weights_path, image_size):
        opened.append((weights_path, image_size))
        return lambda images: np.asarray(images, np.float32).reshape(len(images), -1) * 2.0  # same directions

    monkeypatch.setattr(extract, "local_weights", lambda weights, loader: "/weights/vgg16.h5")
    monkeypatch.setattr(int8, "float_network", float_network)

    def check(int8_pass):
        return extract.int8_agreement(dataset, np.arange(4), int8_pass=int8_pass, weights="none", image_size=SIZE,
                                      base_loader=None, cache=cache)

    assert check(FeaturePass(spec=spec, network_for=quantized.provider, cache=cache)) == pytest.approx(1.0)
    assert quantized.photos == 4 and opened == [("/weights/vgg16.h5", SIZE)]
    # The feature pass that follows reads those 4 from the cache and computes the other photos only.
    later = FeaturePass(spec=spec, network_for=quantized.provider, cache=cache)
    later.features(dataset, np.arange(len(dataset)))
    assert later.computed == len(dataset) - 4 and quantized.photos == len(dataset)
    # The same photos again: the result is remembered, nothing is computed or opened.
    assert check(FeaturePass(spec=spec, network_for=quantized.provider, cache=cache)) == pytest.approx(1.0)
    assert quantized.photos == len(dataset) and len(opened) == 1
    with pytest.raises(ValueError, match="int8 features at 32 px"):
        extract.int8_agreement(dataset, np.arange(5), int8_pass=feature_pass(CountingNetwork(), cache), weights="none",
                               image_size=SIZE, base_loader=None, cache=cache)
