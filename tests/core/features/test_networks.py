"""The shared feature networks: one per key, reused; the whole float32 base is used as it is (no copy
of its weights); the numbers are Keras' VGG16 + average pooling on preprocessed photos."""

from __future__ import annotations

import numpy as np

from quasar_core.backbone import FEATURE_LAYERS
import pytest

from quasar_core.features import networks
from quasar_core.features.networks import keras_network


def pixels(n=3, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


@pytest.fixture
def built(monkeypatch):
    """A fresh registry (the shared one is restored afterwards) and a record of every weight copy."""
    copies = []
    real_copy = networks.copy_weights
    monkeypatch.setattr(networks, "_NETWORKS", {})
    monkeypatch.setattr(networks, "copy_weights", lambda pairs: copies.append(len(pairs)) or real_copy(pairs))
    return copies


def test_one_network_per_key_reused(base, built):
    whole = keras_network(base)
    assert keras_network(base, precision="float32") is whole
    assert keras_network(base, precision="float32", stop_at="block5_pool", pooled=True) is whole
    bottom = keras_network(base, stop_at="block4_pool", pooled=False)
    assert bottom is not whole and keras_network(base, stop_at="block4_pool", pooled=False) is bottom
    assert len(networks._NETWORKS) == 2


def test_the_whole_float32_base_is_not_copied(base, built):
    keras_network(base)
    assert built == []  # no clone, no copied weights: the shared base runs read-only
    keras_network(base, stop_at="block4_pool", pooled=False)
    assert built == [len([layer for layer in base.layers[1:] if layer.name <= "block4_pool"])]


def test_any_image_size_through_one_network(base):
    network = keras_network(base)
    for size in (32, 48, 64):
        assert network(pixels(2, size)).shape == (2, 1024)


def test_output_equals_keras_vgg16_and_average_pooling_on_preprocessed_input(base):
    import keras

    images = pixels(3, 64, seed=1)
    pools = keras.Model(base.inputs[0], [base.get_layer(name).output for name in FEATURE_LAYERS])
    expected = np.concatenate([np.asarray(out).mean(axis=(1, 2))
                               for out in pools(keras.applications.vgg16.preprocess_input(images.copy()))], axis=1)
    got = keras_network(base)(images)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_boundary_activations_and_the_top_compose_to_the_whole(base):
    import keras

    images = pixels(2, 64, seed=3)
    bottom = keras_network(base, stop_at="block4_pool", pooled=False)(images)
    inner = keras.Model(base.inputs[0], base.get_layer("block4_pool").output)
    expected = np.asarray(inner(keras.applications.vgg16.preprocess_input(images.copy())))
    assert bottom.shape == (2, 4, 4, 512)
    np.testing.assert_allclose(bottom, expected, rtol=1e-5, atol=1e-5)
    top = keras_network(base, start_after="block4_pool")(bottom)
    np.testing.assert_allclose(top, keras_network(base)(images), rtol=1e-5, atol=1e-6)


def test_bfloat16_is_close_to_float32_and_leaves_the_base_alone(base):
    before = [w.copy() for w in base.get_layer("block1_conv1").get_weights()]
    images = pixels(4, 32, seed=2)
    exact = keras_network(base)(images)
    fast = keras_network(base, precision="bfloat16")(images)
    assert fast.dtype == np.float32  # the outputs are float32 whatever the arithmetic
    assert not np.array_equal(fast, exact)  # it really ran in bfloat16
    assert np.linalg.norm(fast - exact) / np.linalg.norm(exact) < 0.03
    for kept, now in zip(before, base.get_layer("block1_conv1").get_weights()):
        assert now.dtype == np.float32
        np.testing.assert_array_equal(kept, now)


@pytest.mark.parametrize("precision", ["int8", "float16", "auto"])
def test_only_float_precisions_run_in_keras(base, precision):
    with pytest.raises(ValueError, match=repr(precision)):
        keras_network(base, precision=precision)


def test_the_registry_is_bounded(monkeypatch):
    monkeypatch.setattr(networks, "_NETWORKS", {})
    monkeypatch.setattr(networks, "_build", lambda *args: object())
    bases = [object() for _ in range(networks.MAX_NETWORKS + 2)]
    made = [keras_network(b) for b in bases]
    assert len(networks._NETWORKS) == networks.MAX_NETWORKS
    assert keras_network(bases[-1]) is made[-1]  # the newest are kept
    assert keras_network(bases[0]) is not made[0]  # the oldest went first
    networks.clear()
    assert networks._NETWORKS == {}


def test_a_network_is_not_reused_for_another_base_with_the_same_id(base, monkeypatch):
    """id() of a freed base may be given to the next one: the registry checks it is the same base."""
    network = keras_network(base)
    key = next(key for key, (ref, held) in networks._NETWORKS.items() if held is network)
    networks._NETWORKS[key] = (lambda: None, network)  # as if the base it was built for were gone
    assert keras_network(base) is not network
    assert keras_network(base) is keras_network(base)
