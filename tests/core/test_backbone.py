"""VGG16, its weights and the frozen feature networks built from it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from quasar_core import backbone
from quasar_core.backbone import (
    WEIGHTS_ENV,
    boundary_layer,
    feature_network,
    load_vgg16,
    preprocess,
    resolve_precision,
    resolve_weights,
)
from quasar_core.config import TrainConfig
from quasar_core.errors import QuasarError, WeightsUnavailableError
from quasar_core.training import assemble_model, build_head

# What keras.utils.get_file raises when the machine has no network (Keras 3: a plain Exception).
OFFLINE_MESSAGE = ("URL fetch failure on https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
                   "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5: None -- [Errno -2] Name or service not known")


def random_pixels(n=4, size=32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.float32)


# --------------------------------------------------------------------------- resolving weights


@pytest.mark.parametrize("choice", ["none", "None", " NONE "])
def test_none_means_random_weights(choice):
    assert resolve_weights(choice) is None


def test_imagenet_without_the_env_variable_means_keras_download(monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert resolve_weights("imagenet") == "imagenet"
    assert resolve_weights("ImageNet") == "imagenet"


def test_imagenet_with_the_env_variable_means_that_file(monkeypatch, tmp_path):
    weights = tmp_path / "vgg16.weights.h5"
    weights.write_bytes(b"stand-in")
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    assert resolve_weights("imagenet") == str(weights.resolve())


def test_env_variable_pointing_nowhere_says_how_to_fix_it(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere.weights.h5"
    monkeypatch.setenv(WEIGHTS_ENV, str(missing))
    with pytest.raises(WeightsUnavailableError) as raised:
        resolve_weights("imagenet")
    message = str(raised.value)
    assert str(missing) in message
    assert WEIGHTS_ENV in message and "unset" in message


def test_missing_weights_file_names_the_ways_out(tmp_path):
    missing = tmp_path / "missing.weights.h5"
    with pytest.raises(WeightsUnavailableError) as raised:
        resolve_weights(str(missing))
    message = str(raised.value)
    assert str(missing) in message
    assert "'imagenet'" in message and "'none'" in message and ".weights.h5" in message
    assert isinstance(raised.value, QuasarError)


def test_a_file_that_is_not_h5_is_refused(tmp_path):
    wrong = tmp_path / "weights.bin"
    wrong.write_bytes(b"\0" * 16)
    with pytest.raises(WeightsUnavailableError, match="weights.bin"):
        resolve_weights(str(wrong))


def test_an_existing_h5_path_is_resolved(tmp_path, monkeypatch):
    weights = tmp_path / "mine.weights.h5"
    weights.write_bytes(b"stand-in")
    monkeypatch.chdir(tmp_path)
    assert resolve_weights("mine.weights.h5") == str(weights.resolve())


@pytest.mark.parametrize("bad", ["", "   ", None, 5])
def test_blank_or_non_text_weights_are_a_value_error(bad):
    with pytest.raises(ValueError, match="weights"):
        resolve_weights(bad)


# --------------------------------------------------------------------------- loading


def offline_get_file(calls, error):
    def get_file(*args, **kwargs):
        calls.append(kwargs.get("origin") or (args[1] if len(args) > 1 else args))
        raise error

    return get_file


@pytest.mark.parametrize("error", [Exception(OFFLINE_MESSAGE), OSError(101, "Network is unreachable")],
                         ids=["keras-url-fetch-failure", "oserror"])
def test_imagenet_offline_raises_weights_unavailable_not_a_crash(monkeypatch, error):
    import keras
    from keras.src.utils import file_utils

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    calls = []
    # keras.applications.VGG16 downloads through keras.src.utils.file_utils.get_file.
    monkeypatch.setattr(file_utils, "get_file", offline_get_file(calls, error))
    monkeypatch.setattr(keras.utils, "get_file", offline_get_file(calls, error))
    with pytest.raises(WeightsUnavailableError) as raised:
        load_vgg16("imagenet")
    assert calls, "the download was never attempted: the test did not exercise the offline path"
    message = str(raised.value)
    assert "offline" in message and "internet" in message
    assert WEIGHTS_ENV in message  # way out 1: a local copy
    assert "'none'" in message  # way out 2: train from scratch
    assert raised.value.__cause__ is error


@pytest.mark.parametrize("content", [b"not an h5 file" * 8, None], ids=["garbage", "other-model"])
def test_a_file_of_the_wrong_kind_raises_weights_unavailable(tmp_path, content):
    import keras

    path = tmp_path / "wrong.weights.h5"
    if content is None:
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(path)
    else:
        path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Keras lists the layers it could not fill
        with pytest.raises(WeightsUnavailableError, match="VGG16 notop") as raised:
            load_vgg16(str(path))
    assert str(path) in str(raised.value)


def test_random_base_takes_any_size_and_ends_in_512_channels(base):
    assert base.input_shape == (None, None, None, 3)
    names = [layer.name for layer in backbone.conv_layers(base)]
    assert names[0] == "block1_conv1" and names[-1] == "block5_pool"
    assert sum(name.endswith("_pool") for name in names) == 5
    for size in (32, 45):
        out = base(random_pixels(1, size), training=False)
        assert tuple(out.shape) == (1, size // 32, size // 32, 512)


# --------------------------------------------------------------------------- preprocessing


def test_numpy_preprocess_equals_keras_preprocess_input():
    import keras

    pixels = random_pixels()
    expected = keras.applications.vgg16.preprocess_input(pixels.copy())
    np.testing.assert_allclose(preprocess(pixels), expected, atol=1e-4)


def test_preprocess_conv_inside_the_model_equals_keras_preprocess_input(base):
    import keras

    config = TrainConfig(weights="none", image_size=32)
    features = np.random.default_rng(0).random((6, 512)).astype(np.float32)
    head = build_head(config, 3, features=features)
    tensor = keras.Input((512,))
    for layer in head:  # built as fit() builds it
        tensor = layer(tensor)
    model = assemble_model(base, config, head, 3)
    layer = model.get_layer("vgg16_preprocess")
    assert not layer.trainable
    pixels = random_pixels(3, 32, seed=1)
    expected = keras.applications.vgg16.preprocess_input(pixels.copy())
    np.testing.assert_allclose(np.asarray(layer(pixels)), expected, rtol=0, atol=1e-4)
    # ... and feeds a VGG16 whose weights are the base's.
    for name in ("block1_conv1", "block5_conv3"):
        for copied, original in zip(model.get_layer(name).get_weights(), base.get_layer(name).get_weights()):
            np.testing.assert_array_equal(copied, original)


# --------------------------------------------------------------------------- feature networks


def test_feature_network_equals_the_base_on_preprocessed_images(base):
    pixels = random_pixels(2, 64)
    network = feature_network(base, precision="float32")
    np.testing.assert_allclose(np.asarray(network(preprocess(pixels))), np.asarray(base(preprocess(pixels))),
                               rtol=1e-5, atol=1e-6)


def test_feature_network_is_frozen_and_leaves_the_base_alone(base):
    before = [w.copy() for w in base.get_layer("block5_conv3").get_weights()]
    network = feature_network(base, start_after="block3_pool", stop_at="block5_pool")
    assert network.trainable_weights == []
    assert network.input_shape == (None, None, None, 256)
    assert all(layer is not base.get_layer(layer.name) for layer in network.layers[1:-1])
    network.get_layer("block5_conv3").set_weights([np.zeros_like(w) for w in before])
    for kept, now in zip(before, base.get_layer("block5_conv3").get_weights()):
        np.testing.assert_array_equal(kept, now)


def test_bottom_and_top_networks_compose_to_the_whole(base):
    pixels = preprocess(random_pixels(2, 64, seed=3))
    whole = feature_network(base, precision="float32")(pixels)
    bottom = feature_network(base, stop_at="block4_pool", precision="float32")(pixels)
    top = feature_network(base, start_after="block4_pool", precision="float32")(bottom)
    np.testing.assert_allclose(np.asarray(top), np.asarray(whole), rtol=1e-5, atol=1e-6)


def test_bfloat16_features_are_close_to_float32(base):
    pixels = preprocess(random_pixels(4, 64, seed=2))
    exact = np.asarray(feature_network(base, precision="float32")(pixels))
    fast_network = feature_network(base, precision="bfloat16")
    fast = fast_network(pixels)
    assert fast.dtype == "float32"  # the outputs are float32 whatever the compute precision
    assert fast_network.get_layer("block1_conv1").compute_dtype == "bfloat16"
    fast = np.asarray(fast)
    assert np.abs(exact).max() > 0
    assert not np.array_equal(fast, exact)  # it really computed in bfloat16
    relative = np.linalg.norm(fast - exact) / np.linalg.norm(exact)
    assert relative < 0.03, relative


# --------------------------------------------------------------------------- small helpers


def test_boundary_layer_names():
    assert boundary_layer(5) == "block5_pool"
    assert boundary_layer(4) == "block4_pool"
    assert boundary_layer(0) is None
    for bad in (-1, 6):
        with pytest.raises(ValueError, match=repr(bad)):
            boundary_layer(bad)


def test_resolve_precision(monkeypatch):
    assert resolve_precision("float32") == "float32"
    assert resolve_precision("bfloat16") == "bfloat16"
    monkeypatch.setattr(backbone, "cpu_supports_bfloat16", lambda: True)
    assert resolve_precision("auto") == "bfloat16"
    monkeypatch.setattr(backbone, "cpu_supports_bfloat16", lambda: False)
    assert resolve_precision("auto") == "float32"
    with pytest.raises(ValueError, match="'float16'"):
        resolve_precision("float16")


def test_bfloat16_support_is_read_from_cpu_flags(monkeypatch):
    real_read_text = Path.read_text

    def fake_cpuinfo(flags):
        def read_text(self, *args, **kwargs):
            if str(self) == "/proc/cpuinfo":
                return f"processor\t: 0\nflags\t\t: fpu sse2 avx2{flags}\n"
            return real_read_text(self, *args, **kwargs)

        return read_text

    monkeypatch.setattr(Path, "read_text", fake_cpuinfo(" avx512f avx512_bf16"))
    assert backbone.cpu_supports_bfloat16()
    monkeypatch.setattr(Path, "read_text", fake_cpuinfo(" amx_bf16 amx_tile"))
    assert backbone.cpu_supports_bfloat16()
    monkeypatch.setattr(Path, "read_text", fake_cpuinfo(" avx512f"))
    assert not backbone.cpu_supports_bfloat16()
