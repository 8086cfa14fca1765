"""VGG16's conv base as ONNX (quasar_core.features.vgg16_onnx): weights reading, the graph against numpy and
Keras, argument checks. The graph runs in int8.Int8FeatureNetwork, the engine's ONNX Runtime session.
"""

from __future__ import annotations

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from quasar_core.features import int8, vgg16_onnx  # noqa: E402
from tests.core.features.support import (SIZE, heavy_modules_after_importing, numpy_features,  # noqa: E402
                                         random_weights, shipped_photos, write_keras3)


@pytest.fixture(scope="module")
def weights():
    return random_weights()


@pytest.fixture(scope="module")
def photos():
    return shipped_photos(SIZE)


@pytest.fixture(scope="module")
def float_net(weights):
    model = vgg16_onnx.build_float_model(weights, image_size=SIZE)
    return int8.Int8FeatureNetwork(model.SerializeToString(), threads=2)


def test_importing_the_module_imports_no_tensorflow_onnx_or_h5py():
    assert heavy_modules_after_importing("quasar_core.features.vgg16_onnx") == "[]"


# --- reading weights -------------------------------------------------------------------------

def test_keras3_layout_is_read_in_numeric_order(tmp_path, weights):
    # Written shuffled: conv2d_10 must come after conv2d_9, not after conv2d_1 as strings sort.
    path = write_keras3(tmp_path / "w.weights.h5", weights, order=[12, 3, 10, 0, 1, 11, 2, 9, 4, 8, 5, 7, 6])
    for (k, b), (k0, b0) in zip(vgg16_onnx.read_vgg16_weights(path), weights, strict=True):
        assert np.array_equal(k, k0) and np.array_equal(b, b0)


@pytest.mark.parametrize("style", ["download", "tf_keras"])
def test_legacy_layout(tmp_path, weights, style):
    """Keras' download stores block1_conv1/block1_conv1_W_1:0; tf.keras files block1_conv1/block1_conv1/kernel:0."""
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"input_1"] + [n.encode() for n in vgg16_onnx.LAYER_NAMES]
        f.create_group("input_1")
        for name, (kernel, bias) in zip(vgg16_onnx.LAYER_NAMES, weights):
            group = f.create_group(name)
            keys = ([f"{name}_W_1:0", f"{name}_b_1:0"] if style == "download"
                    else [f"{name}/kernel:0", f"{name}/bias:0"])
            group.attrs["weight_names"] = [k.encode() for k in keys]
            group[keys[0]], group[keys[1]] = kernel, bias
    for (k, b), (k0, b0) in zip(vgg16_onnx.read_vgg16_weights(path), weights, strict=True):
        assert np.array_equal(k, k0) and np.array_equal(b, b0)


def test_bad_weights_files_are_named(tmp_path, weights):
    with pytest.raises(ValueError, match="missing.h5"):
        vgg16_onnx.read_vgg16_weights(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="text.h5"):
        vgg16_onnx.read_vgg16_weights(tmp_path / "text.h5")
    with pytest.raises(ValueError, match="short.weights.h5.*13 conv layers"):
        vgg16_onnx.read_vgg16_weights(write_keras3(tmp_path / "short.weights.h5", weights[:12]))
    wrong = list(weights)
    wrong[4] = (np.zeros((3, 3, 128, 200), np.float32), np.zeros(200, np.float32))
    with pytest.raises(ValueError, match="wrong.weights.h5"):
        vgg16_onnx.read_vgg16_weights(write_keras3(tmp_path / "wrong.weights.h5", wrong))


# --- the float graph -------------------------------------------------------------------------

def test_float_model_matches_numpy(weights, photos, float_net):
    assert float_net.image_size == SIZE and float_net.precision == "float32"
    odd_size = int8.Int8FeatureNetwork(vgg16_onnx.build_float_model(weights, image_size=45).SerializeToString())
    for net, images in ((float_net, photos[::8]),  # and a size that is no multiple of 32 (pools floor)
                        (odd_size, shipped_photos(45)[::8])):
        expected = numpy_features(weights, images)
        np.testing.assert_allclose(net(images), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_float_model_matches_keras_vgg16(tmp_path, weights, photos, float_net):
    keras = pytest.importorskip("keras")
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    vgg.set_weights([w for pair in weights for w in pair])
    # Keras' own .weights.h5 numbering is read back in block order.
    vgg.save_weights(tmp_path / "saved.weights.h5")
    for name, (k, b) in zip(vgg16_onnx.LAYER_NAMES, vgg16_onnx.read_vgg16_weights(tmp_path / "saved.weights.h5")):
        k0, b0 = vgg.get_layer(name).get_weights()
        assert np.array_equal(k, k0) and np.array_equal(b, b0), name
    preprocessed = keras.applications.vgg16.preprocess_input(photos.copy())
    pools = keras.Model(vgg.inputs[0], [vgg.get_layer(name).output for name in vgg16_onnx.FEATURE_POOLS])
    expected = np.concatenate([keras.ops.convert_to_numpy(out).mean(axis=(1, 2)) for out in pools(preprocessed)], 1)
    np.testing.assert_allclose(float_net(photos), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_build_float_model_checks_arguments(weights):
    for size in (31, 0, -32, 2000, True, 32.0, "64"):
        with pytest.raises(ValueError, match="image_size"):
            vgg16_onnx.build_float_model(weights, image_size=size)
    with pytest.raises(ValueError, match="conv_weights"):
        vgg16_onnx.build_float_model(weights[:12], image_size=SIZE)
    with pytest.raises(ValueError, match="conv_weights"):
        vgg16_onnx.build_float_model([(k.T, b) for k, b in weights], image_size=SIZE)
    with pytest.raises(ValueError, match="conv_weights"):
        vgg16_onnx.build_float_model(5, image_size=SIZE)
    nan = [(k.copy(), b) for k, b in weights]
    nan[3][0][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        vgg16_onnx.build_float_model(nan, image_size=SIZE)

