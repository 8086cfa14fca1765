"""VGG16, its weights and the pieces the classifier is assembled from: resolving and naming weights
(weights_file, weights_id: the feature cache's key), loading the base, and the layer helpers."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from quasar_core import backbone
from quasar_core.backbone import (KERAS_NOTOP_FILE, WEIGHTS_ENV, apply_stack, boundary_layer, clone_layer,
                                  conv_layers, copy_weights, load_vgg16, resolve_weights, weights_file, weights_id)
from quasar_core.errors import QuasarError, WeightsUnavailableError

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


def test_random_weights_are_drawn_from_the_seed(base):
    """The same from-scratch base in every process (workers of one job, repeated comparisons)."""
    again = load_vgg16("none", seed=0)
    for name in ("block1_conv1", "block5_conv3"):
        np.testing.assert_array_equal(again.get_layer(name).get_weights()[0], base.get_layer(name).get_weights()[0])


# --------------------------------------------------------------------------- naming weights


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


def test_weights_file_is_the_file_a_choice_stands_for(keras_home, tmp_path, monkeypatch):
    assert weights_file("none") is None
    assert weights_file("imagenet") is None  # not downloaded yet
    downloaded = keras_home / "models" / KERAS_NOTOP_FILE
    downloaded.parent.mkdir(parents=True)
    downloaded.write_bytes(b"stand-in")
    assert weights_file("imagenet") == str(downloaded)  # Keras' own download cache
    mine = tmp_path / "mine.weights.h5"
    mine.write_bytes(b"mine")
    assert weights_file(str(mine)) == str(mine.resolve())
    monkeypatch.setenv(WEIGHTS_ENV, str(mine))
    assert weights_file("imagenet") == str(mine.resolve())  # the variable wins


def test_weights_id_names_exactly_these_weights(keras_home, tmp_path):
    assert weights_id("none") == "random-0" and weights_id("none", seed=7) == "random-7"
    assert weights_id("imagenet") == "imagenet-keras"  # named once Keras has fetched it
    first, second = tmp_path / "a.weights.h5", tmp_path / "b.weights.h5"
    first.write_bytes(b"weights one")
    second.write_bytes(b"weights one")
    name = weights_id(str(first))
    assert name.startswith("sha256-") and len(name) == len("sha256-") + 20
    assert weights_id(str(second)) == name  # the content, not the path
    assert weights_id(str(first), seed=3) == name  # a seed means nothing for a file
    first.write_bytes(b"weights two, longer")
    os.utime(first, ns=(1, 1))
    assert weights_id(str(first)) != name  # a changed file is hashed again


def test_weights_id_needs_no_tensorflow(tmp_path, shapes):
    import subprocess
    import sys

    script = ("import sys; from quasar_core.backbone import weights_id; print(weights_id('none'));"
              "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=shapes.env(),
                          timeout=120)
    assert done.stdout.split() == ["random-0", "False", "False"], done.stderr[-2000:]


# --------------------------------------------------------------------------- layers


def test_random_base_takes_any_size_and_ends_in_512_channels(base):
    assert base.input_shape == (None, None, None, 3)
    names = [layer.name for layer in conv_layers(base)]
    assert names[0] == "block1_conv1" and names[-1] == "block5_pool" and len(names) == 18
    assert sum(name.endswith("_pool") for name in names) == 5
    for size in (32, 45):
        out = base(random_pixels(1, size), training=False)
        assert tuple(out.shape) == (1, size // 32, size // 32, 512)


def test_boundary_layer_names():
    assert boundary_layer(5) == "block5_pool"
    assert boundary_layer(4) == "block4_pool"
    assert boundary_layer(0) is None
    for bad in (-1, 6):
        with pytest.raises(ValueError, match=repr(bad)):
            boundary_layer(bad)


def test_clones_are_fresh_layers_that_copy_the_weights_and_leave_the_base_alone(base):
    import keras

    original = base.get_layer("block5_conv3")
    clone = clone_layer(original, dtype="bfloat16", trainable=False)
    assert clone is not original and clone.name == original.name and not clone.trainable
    assert clone.dtype_policy.compute_dtype == "bfloat16"
    before = [w.copy() for w in original.get_weights()]
    inputs = keras.Input((None, None, 256))
    tensor, pairs = apply_stack(base, inputs, start_after="block3_pool", stop_at="block5_pool")
    assert [o.name for _, o in pairs][0] == "block4_conv1" and pairs[-1][1].name == "block5_pool"
    assert all(c is not o for c, o in pairs) and all(c.trainable for c, _ in pairs)
    copy_weights(pairs)
    network = keras.Model(inputs, tensor)
    features = np.asarray(network(np.ones((1, 8, 8, 256), np.float32)))
    assert features.shape == (1, 2, 2, 512)
    network.get_layer("block5_conv3").set_weights([np.zeros_like(w) for w in before])
    for kept, now in zip(before, original.get_weights()):
        np.testing.assert_array_equal(kept, now)


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
