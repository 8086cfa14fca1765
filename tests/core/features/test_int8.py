"""The int8 VGG16 feature pass (quasar_core.features.int8): the CPU and runtime checks, the ONNX Runtime
session, int8 agreement with float, the on-disk cache of the quantized model, argument checks.

One quantized model is shared by the module (`built`). Only test_real_weights reads QUASAR_VGG16_WEIGHTS
(skipped when unset).
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

pytest.importorskip("h5py")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from quasar_core.features import int8, int8_quantize, vgg16_onnx  # noqa: E402
from tests.core.features.support import (REPO_ROOT, SIZE, heavy_modules_after_importing,  # noqa: E402
                                         numpy_features, random_weights, shipped_photos, write_keras3)


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
    model = vgg16_onnx.build_float_model(weights, image_size=SIZE)
    return int8.Int8FeatureNetwork(model.SerializeToString(), threads=2)


@pytest.fixture
def fast_calibration(monkeypatch, photos):
    """Calibrate on the even-numbered shipped photos without needing the engine's resize."""
    monkeypatch.setattr(int8_quantize, "calibration_images", lambda size: shipped_photos(size)[::2])


@pytest.fixture(scope="module")
def built(tmp_path_factory, weights_file, photos):
    """One int8 network built through the cache (the module's only in-process quantization)."""
    patch = pytest.MonkeyPatch()
    patch.setattr(int8_quantize, "calibration_images", lambda size: shipped_photos(size)[::2])
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
    assert heavy_modules_after_importing("quasar_core.features.int8") == "[]"


# --- the session -----------------------------------------------------------------------------

def test_a_model_of_any_size_is_opened_at_one(weights, photos, float_net):
    open_model = vgg16_onnx.build_float_model(weights, image_size=None).SerializeToString()
    with pytest.raises(ValueError, match="any image size"):
        int8.Int8FeatureNetwork(open_model)
    for size, images in ((SIZE, photos[::8]), (45, shipped_photos(45)[::8])):
        net = int8.Int8FeatureNetwork(open_model, image_size=size)
        assert net.image_size == size
        expected = numpy_features(weights, images)
        np.testing.assert_allclose(net(images), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    fixed = vgg16_onnx.build_float_model(weights, image_size=SIZE).SerializeToString()
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
    assert network(np.zeros((0, SIZE, SIZE, 3), np.float32)).shape == (0, vgg16_onnx.FEATURES)
    out = network(np.full((3, SIZE, SIZE, 3), 128, np.uint8))  # other dtypes are converted
    assert out.shape == (3, vgg16_onnx.FEATURES) and out.dtype == np.float32
    for threads in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            int8.Int8FeatureNetwork(network.model_path, threads=threads)


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
    assert name.startswith(f"vgg16-random0-{int8_quantize.QUANT_VARIANT}-r{int8.RECIPE}-")
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
    assert larger(shipped_photos(64)[:2]).shape == (2, vgg16_onnx.FEATURES)
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
    from quasar_core.features import int8, int8_quantize
    weights, models, work, me = sys.argv[1:5]
    calibration = np.load(Path(work, "calibration.npy"))
    int8_quantize.calibration_images = lambda size: calibration
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
    np.save(work / "calibration.npy", shipped_photos(int8_quantize.CALIBRATION_SIZE)[::2])  # as `built` calibrated
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


# --- the real weights ----------------------------------------------------------------------

def test_real_weights(tmp_path):
    path = os.environ.get("QUASAR_VGG16_WEIGHTS")
    if not path:
        pytest.skip("QUASAR_VGG16_WEIGHTS is not set")
    pytest.importorskip("quasar_core.data.images", reason="the engine's resize_square is not there yet")
    network = int8.load_int8_network(weights_path=path, weights_id="imagenet", image_size=64, models_dir=tmp_path)
    reference = int8.float_network(weights_path=path, image_size=64)
    images = shipped_photos(64)
    assert int8.agreement(network(images), reference(images)) >= 0.99
