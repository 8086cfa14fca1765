"""The int8 VGG16 feature pass (quasar_core.features.int8): weights reading, the ONNX graph
against numpy and Keras, int8 agreement, the on-disk cache, argument checks.

Fast by design: random He-initialised kernels at 32 px, the shipped calibration photos resized
with PIL as natural-looking inputs, one quantized model shared by the module. Only
test_real_weights reads QUASAR_VGG16_WEIGHTS (skipped when unset).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

h5py = pytest.importorskip("h5py")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from quasar_core.features import int8  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[3]
SIZE = 32


def random_weights(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-initialised kernels keep activations in a natural range through 13 ReLU convs."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, np.sqrt(2 / (9 * s[2])), s).astype(np.float32),
             rng.normal(0, 0.05, s[3]).astype(np.float32)) for s in int8.KERNEL_SHAPES]


def shipped_photos(size: int) -> np.ndarray:
    """The calibration photos, resized with PIL (not the engine's resize: these are just inputs)."""
    files = sorted(p for p in int8.CALIBRATION_DIR.iterdir() if p.suffix in (".jpg", ".png"))
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
                     for p in files])


def write_keras3(path: Path, pairs, order=None) -> Path:
    """A Keras 3 `.weights.h5` layout: layers/conv2d, layers/conv2d_1, ... (+ weightless pools)."""
    with h5py.File(path, "w") as f:
        f.create_group("layers/input_layer/vars")
        for i in order or range(len(pairs)):
            group = f.create_group(f"layers/conv2d{'_' + str(i) if i else ''}/vars")
            group["0"], group["1"] = pairs[i]
        for i in range(5):
            f.create_group(f"layers/max_pooling2d{'_' + str(i) if i else ''}/vars")
    return path


def numpy_features(pairs, images: np.ndarray) -> np.ndarray:
    """VGG16 + caffe preprocessing + global averages of block4_pool and block5_pool side by side, in float64
    numpy (im2col convolutions)."""
    x = images.astype(np.float64)[..., ::-1] - np.array(int8.BGR_MEAN)
    layer, pooled = 0, []
    for block, convs in enumerate(int8.BLOCKS, 1):
        for _ in range(convs):
            kernel, bias = pairs[layer]
            n, h, w, c = x.shape
            padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
            cols = np.stack([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=3)
            x = np.maximum(cols.reshape(n, h, w, 9 * c) @ kernel.reshape(9 * c, -1) + bias, 0)
            layer += 1
        n, h, w, c = x.shape
        x = x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
        if f"block{block}_pool" in int8.FEATURE_POOLS:
            pooled.append(x.mean(axis=(1, 2)))
    return np.concatenate(pooled, axis=1)


@pytest.fixture(scope="module")
def weights():
    return random_weights()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, weights) -> Path:
    return write_keras3(tmp_path_factory.mktemp("weights") / "random.weights.h5", weights)


@pytest.fixture(scope="module")
def photos():
    return shipped_photos(SIZE)


@pytest.fixture(scope="module")
def float_net(weights):
    return int8.Int8FeatureNetwork(int8.build_float_model(weights, image_size=SIZE).SerializeToString(), threads=2)


@pytest.fixture
def fast_calibration(monkeypatch, photos):
    """Calibrate on the even-numbered shipped photos without needing the engine's resize."""
    monkeypatch.setattr(int8, "calibration_images", lambda size: shipped_photos(size)[::2])


@pytest.fixture(scope="module")
def built(tmp_path_factory, weights_file, photos):
    """One int8 network built through the cache (the module's only in-process quantization)."""
    patch = pytest.MonkeyPatch()
    patch.setattr(int8, "calibration_images", lambda size: shipped_photos(size)[::2])
    models_dir = tmp_path_factory.mktemp("models")
    try:
        network = int8.load_int8_network(weights_path=weights_file, weights_id="random0",
                                         image_size=SIZE, models_dir=models_dir, threads=2)
    finally:
        patch.undo()
    return network, models_dir


# --- CPU and runtime -------------------------------------------------------------------------

def test_cpu_int8_instructions_reads_the_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni amx_int8\n\n"
                    "processor\t: 1\nflags\t\t: fpu sse avx2 avx512f avx512_vnni amx_int8\n")
    assert int8.cpu_int8_instructions(cpuinfo=info) == ["avx512_vnni", "amx_int8"]
    info.write_text("flags\t: fpu avx avx2\n")
    assert int8.cpu_int8_instructions(cpuinfo=info) == []
    assert int8.cpu_int8_instructions(cpuinfo=tmp_path / "missing") == []
    assert set(int8.cpu_int8_instructions()) <= set(int8.INT8_INSTRUCTIONS)


def test_runtime_available():
    assert int8.runtime_available() is True


def test_importing_the_module_imports_no_tensorflow_onnx_or_h5py():
    code = ("import sys; import quasar_core.features.int8; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'onnx', 'onnxruntime', 'h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- reading weights -------------------------------------------------------------------------

def test_keras3_layout_is_read_in_numeric_order(tmp_path, weights):
    # Written shuffled: conv2d_10 must come after conv2d_9, not after conv2d_1 as strings sort.
    path = write_keras3(tmp_path / "w.weights.h5", weights, order=[12, 3, 10, 0, 1, 11, 2, 9, 4, 8, 5, 7, 6])
    for (k, b), (k0, b0) in zip(int8.read_vgg16_weights(path), weights, strict=True):
        assert np.array_equal(k, k0) and np.array_equal(b, b0)


@pytest.mark.parametrize("style", ["download", "tf_keras"])
def test_legacy_layout(tmp_path, weights, style):
    """Keras' download stores block1_conv1/block1_conv1_W_1:0; tf.keras files block1_conv1/block1_conv1/kernel:0."""
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"input_1"] + [n.encode() for n in int8.LAYER_NAMES]
        f.create_group("input_1")
        for name, (kernel, bias) in zip(int8.LAYER_NAMES, weights):
            group = f.create_group(name)
            keys = ([f"{name}_W_1:0", f"{name}_b_1:0"] if style == "download"
                    else [f"{name}/kernel:0", f"{name}/bias:0"])
            group.attrs["weight_names"] = [k.encode() for k in keys]
            group[keys[0]], group[keys[1]] = kernel, bias
    for (k, b), (k0, b0) in zip(int8.read_vgg16_weights(path), weights, strict=True):
        assert np.array_equal(k, k0) and np.array_equal(b, b0)


def test_bad_weights_files_are_named(tmp_path, weights):
    with pytest.raises(ValueError, match="missing.h5"):
        int8.read_vgg16_weights(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="text.h5"):
        int8.read_vgg16_weights(tmp_path / "text.h5")
    with pytest.raises(ValueError, match="short.weights.h5.*13 conv layers"):
        int8.read_vgg16_weights(write_keras3(tmp_path / "short.weights.h5", weights[:12]))
    wrong = list(weights)
    wrong[4] = (np.zeros((3, 3, 128, 200), np.float32), np.zeros(200, np.float32))
    with pytest.raises(ValueError, match="wrong.weights.h5"):
        int8.read_vgg16_weights(write_keras3(tmp_path / "wrong.weights.h5", wrong))


# --- the float graph -------------------------------------------------------------------------

def test_float_model_matches_numpy(weights, photos, float_net):
    assert float_net.image_size == SIZE and float_net.precision == "float32"
    for net, images in ((float_net, photos[::8]),  # and a size that is no multiple of 32 (pools floor)
                        (int8.Int8FeatureNetwork(int8.build_float_model(weights, image_size=45).SerializeToString()),
                         shipped_photos(45)[::8])):
        expected = numpy_features(weights, images)
        np.testing.assert_allclose(net(images), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_float_model_matches_keras_vgg16(tmp_path, weights, photos, float_net):
    keras = pytest.importorskip("keras")
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    vgg.set_weights([w for pair in weights for w in pair])
    # Keras' own .weights.h5 numbering is read back in block order.
    vgg.save_weights(tmp_path / "saved.weights.h5")
    for name, (k, b) in zip(int8.LAYER_NAMES, int8.read_vgg16_weights(tmp_path / "saved.weights.h5")):
        k0, b0 = vgg.get_layer(name).get_weights()
        assert np.array_equal(k, k0) and np.array_equal(b, b0), name
    preprocessed = keras.applications.vgg16.preprocess_input(photos.copy())
    pools = keras.Model(vgg.inputs[0], [vgg.get_layer(name).output for name in int8.FEATURE_POOLS])
    expected = np.concatenate([keras.ops.convert_to_numpy(out).mean(axis=(1, 2)) for out in pools(preprocessed)], 1)
    np.testing.assert_allclose(float_net(photos), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_build_float_model_checks_arguments(weights):
    for size in (31, 0, -32, 2000, True, 32.0, "64"):
        with pytest.raises(ValueError, match="image_size"):
            int8.build_float_model(weights, image_size=size)
    with pytest.raises(ValueError, match="conv_weights"):
        int8.build_float_model(weights[:12], image_size=SIZE)
    with pytest.raises(ValueError, match="conv_weights"):
        int8.build_float_model([(k.T, b) for k, b in weights], image_size=SIZE)
    with pytest.raises(ValueError, match="conv_weights"):
        int8.build_float_model(5, image_size=SIZE)
    nan = [(k.copy(), b) for k, b in weights]
    nan[3][0][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        int8.build_float_model(nan, image_size=SIZE)


def test_a_model_of_any_size_is_opened_at_one(weights, photos, float_net):
    open_model = int8.build_float_model(weights, image_size=None).SerializeToString()
    with pytest.raises(ValueError, match="any image size"):
        int8.Int8FeatureNetwork(open_model)
    for size, images in ((SIZE, photos[::8]), (45, shipped_photos(45)[::8])):
        net = int8.Int8FeatureNetwork(open_model, image_size=size)
        assert net.image_size == size
        expected = numpy_features(weights, images)
        np.testing.assert_allclose(net(images), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    fixed = int8.build_float_model(weights, image_size=SIZE).SerializeToString()
    assert int8.Int8FeatureNetwork(fixed, image_size=SIZE).image_size == SIZE
    with pytest.raises(ValueError, match="takes 32 px images, not 64"):
        int8.Int8FeatureNetwork(fixed, image_size=64)
    with pytest.raises(ValueError, match="image_size"):
        int8.Int8FeatureNetwork(open_model, image_size=16)


# --- int8 ------------------------------------------------------------------------------------

def test_int8_agrees_with_float(built, float_net, photos):
    network, _ = built
    assert network.image_size == SIZE and network.precision == "int8"
    unseen = photos[1::2]  # calibration used the even-numbered photos
    assert int8.agreement(network(unseen), float_net(unseen)) >= 0.99
    flipped = unseen[:, ::-1]
    assert int8.agreement(network(flipped), float_net(flipped)) >= 0.99


def test_network_checks_its_input(built):
    network, _ = built
    for bad in (np.zeros((2, SIZE + 1, SIZE, 3)), np.zeros((SIZE, SIZE, 3)), np.zeros((1, SIZE, SIZE, 1)), [[1.0]]):
        with pytest.raises(ValueError, match="images must be an array"):
            network(bad)
    assert network(np.zeros((0, SIZE, SIZE, 3), np.float32)).shape == (0, int8.FEATURES)
    out = network(np.full((3, SIZE, SIZE, 3), 128, np.uint8))  # other dtypes are converted
    assert out.shape == (3, int8.FEATURES) and out.dtype == np.float32
    for threads in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            int8.Int8FeatureNetwork(network.model_path, threads=threads)


def test_quantize_model_checks_arguments(tmp_path, weights):
    import onnx

    path = tmp_path / "float.onnx"
    onnx.save(int8.build_float_model(weights, image_size=SIZE), str(path))
    good = np.zeros((2, SIZE, SIZE, 3), np.float32)
    with pytest.raises(ValueError, match="'u9s9'"):
        int8.quantize_model(path, tmp_path / "q.onnx", calibration_images=good, variant="u9s9")
    for bad in (good[0], good[..., :1], good[:0], [1, 2]):
        with pytest.raises(ValueError, match="calibration_images"):
            int8.quantize_model(path, tmp_path / "q.onnx", calibration_images=bad)
    with pytest.raises(ValueError, match="NaN"):
        int8.quantize_model(path, tmp_path / "q.onnx", calibration_images=np.full_like(good, np.nan))
    with pytest.raises(ValueError, match="the model takes"):
        int8.quantize_model(path, tmp_path / "q.onnx", calibration_images=np.zeros((2, 40, 40, 3), np.float32))


def test_agreement():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    assert int8.agreement(a, a) == pytest.approx(1.0)
    assert int8.agreement(a[:2], a[:2, ::-1]) == pytest.approx(0.0)
    for x, y in ((a, a[:2]), (a[0], a[0]), (a[:0], a[:0])):
        with pytest.raises(ValueError, match="features"):
            int8.agreement(x, y)


# --- the on-disk cache -----------------------------------------------------------------------

def cached_files(models_dir: Path) -> list[Path]:
    return sorted(p for p in models_dir.iterdir() if p.suffix == ".onnx")


def test_cache_file_is_named_by_its_checksum(built):
    network, models_dir = built
    files = cached_files(models_dir)
    assert files == [network.model_path]
    assert sorted(p.name for p in models_dir.iterdir()) == [files[0].name]  # no temporary leftovers
    name = files[0].name
    assert name.startswith(f"vgg16-random0-{int8.QUANT_VARIANT}-r{int8.RECIPE}-")
    assert name.endswith(hashlib.sha256(files[0].read_bytes()).hexdigest()[:16] + ".onnx")


def test_cache_is_reused(built, weights_file, photos, tmp_path, monkeypatch):
    network, models_dir = built
    copy = tmp_path / "models"
    copy.mkdir()
    (copy / network.model_path.name).write_bytes(network.model_path.read_bytes())
    monkeypatch.setattr(int8, "_build", lambda *a: pytest.fail("rebuilt a valid cached model"))
    again = int8.load_int8_network(weights_path=weights_file, weights_id="random0", image_size=SIZE, models_dir=copy)
    assert again.model_path == copy / network.model_path.name
    np.testing.assert_array_equal(again(photos[:4]), network(photos[:4]))
    # Another size opens the same model at that size (no second build) ...
    larger = int8.load_int8_network(weights_path=weights_file, weights_id="random0", image_size=64, models_dir=copy)
    assert larger.model_path == again.model_path and larger.image_size == 64
    assert larger(shipped_photos(64)[:2]).shape == (2, int8.FEATURES)
    # ... and other weights are another model.
    def would_build(*args):
        raise RuntimeError("would build")

    monkeypatch.setattr(int8, "_build", would_build)
    with pytest.raises(RuntimeError, match="would build"):
        int8.load_int8_network(weights_path=weights_file, weights_id="random1", image_size=SIZE, models_dir=copy)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_cache_file_is_detected(built, tmp_path, damage):
    network, _ = built
    data = bytearray(network.model_path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    damaged = tmp_path / network.model_path.name
    damaged.write_bytes(bytes(data))
    assert int8._load_valid(tmp_path, network.model_path.name[:-len("0123456789abcdef.onnx")]) is None
    assert not damaged.exists()


def test_truncated_cache_file_is_rebuilt(built, weights_file, photos, tmp_path, fast_calibration):
    network, _ = built
    damaged = tmp_path / network.model_path.name
    damaged.write_bytes(network.model_path.read_bytes()[:1000])
    rebuilt = int8.load_int8_network(weights_path=weights_file, weights_id="random0", image_size=SIZE, models_dir=tmp_path)
    assert cached_files(tmp_path) == [rebuilt.model_path]
    assert rebuilt.model_path.read_bytes() == network.model_path.read_bytes()  # the build is deterministic
    np.testing.assert_array_equal(rebuilt(photos[:4]), network(photos[:4]))


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from quasar_core.features import int8
    weights, models, work, me = sys.argv[1:5]
    calibration = np.load(Path(work, "calibration.npy"))
    int8.calibration_images = lambda size: calibration
    Path(work, f"ready-{me}").touch()
    deadline = time.time() + 60
    while len(list(Path(work).glob("ready-*"))) < 2 and time.time() < deadline:
        time.sleep(0.01)
    net = int8.load_int8_network(weights_path=weights, weights_id="random0", image_size=32, models_dir=models, threads=1)
    np.save(Path(work, f"features-{me}.npy"), net(np.load(Path(work, "probe.npy"))))
""")


def test_two_processes_building_at_once(built, weights_file, photos, tmp_path):
    network, _ = built
    work, models = tmp_path / "work", tmp_path / "models"
    work.mkdir()
    np.save(work / "calibration.npy", shipped_photos(int8.CALIBRATION_SIZE)[::2])  # as `built` calibrated
    np.save(work / "probe.npy", photos[:4])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(weights_file), str(models), str(work), str(i)],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for child in children:
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
    # Both wrote the same content under the same checksum name; nothing half-written is left.
    assert [p.name for p in models.iterdir()] == [network.model_path.name]
    assert (models / network.model_path.name).read_bytes() == network.model_path.read_bytes()
    for i in range(2):
        np.testing.assert_array_equal(np.load(work / f"features-{i}.npy"), network(photos[:4]))


def test_stale_build_folders_are_removed(tmp_path):
    old, fresh = tmp_path / ".build-old", tmp_path / ".build-fresh"
    for folder in (old, fresh):
        folder.mkdir()
        (folder / "float.onnx").write_bytes(b"x")
    os.utime(old, (0, 0))
    int8._remove_stale_builds(tmp_path)
    assert not old.exists() and fresh.exists()


def test_load_int8_network_checks_arguments(tmp_path, weights_file):
    good = dict(weights_path=weights_file, weights_id="random0", image_size=SIZE, models_dir=tmp_path)
    for weights_id in ("", "../up", "a/b", "a b", 5, None, "x" * 65):
        with pytest.raises(ValueError, match="weights_id"):
            int8.load_int8_network(**{**good, "weights_id": weights_id})
    for size in (16, "32", 32.5):
        with pytest.raises(ValueError, match="image_size"):
            int8.load_int8_network(**{**good, "image_size": size})
    with pytest.raises(ValueError, match="threads"):
        int8.load_int8_network(**good, threads=0)
    with pytest.raises(ValueError, match="nowhere.weights.h5"):
        int8.load_int8_network(**{**good, "weights_path": tmp_path / "nowhere.weights.h5"})


# --- the shipped calibration set and the real weights ----------------------------------------

def test_shipped_calibration_set():
    files = [p for p in int8.CALIBRATION_DIR.iterdir() if p.suffix in (".jpg", ".png")]
    assert len(files) == 32 and (int8.CALIBRATION_DIR / "README.md").is_file()
    assert sum(p.stat().st_size for p in int8.CALIBRATION_DIR.iterdir()) < 300_000
    pytest.importorskip("quasar_core.data.images", reason="the engine's resize_square is not there yet")
    images = int8.calibration_images(48)
    assert images.shape == (32, 48, 48, 3) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 255 and images.std() > 20


def test_real_weights(tmp_path):
    path = os.environ.get("QUASAR_VGG16_WEIGHTS")
    if not path:
        pytest.skip("QUASAR_VGG16_WEIGHTS is not set")
    pytest.importorskip("quasar_core.data.images", reason="the engine's resize_square is not there yet")
    network = int8.load_int8_network(weights_path=path, weights_id="imagenet", image_size=64, models_dir=tmp_path)
    reference = int8.float_network(weights_path=path, image_size=64)
    images = shipped_photos(64)
    assert int8.agreement(network(images), reference(images)) >= 0.99


def test_quantizing_prints_no_advice_and_leaves_logging_as_it_was(tmp_path, weights, capfd):
    """ORT's "consider pre-processing" lines went to the root logger, so the command line printed them."""
    import logging

    import onnx

    path = tmp_path / "float.onnx"
    onnx.save(int8.build_float_model(weights, image_size=SIZE), str(path))
    root = logging.getLogger()
    handlers, filters = list(root.handlers), list(root.filters)
    int8.quantize_model(path, tmp_path / "q.onnx", calibration_images=shipped_photos(SIZE)[:4])
    assert (tmp_path / "q.onnx").is_file()
    assert "pre-processing" not in "".join(capfd.readouterr())
    assert root.handlers == handlers and root.filters == filters
