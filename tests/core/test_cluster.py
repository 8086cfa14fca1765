"""The feature pass on Ray (quasar_core.cluster, with cluster_worker.py and cluster_ray.py): a local Ray cluster
started here (two worker processes on this machine) computes the same features as the single-process pass —
float within 1e-5, int8 identical — into the same cache, and the run trained from them equals the local run's
model; a photo that cannot be read is named; a worker that dies is restarted by Ray and its photos retried;
`--cluster` without Ray says how to install it.

Kept short: 3 classes x 8 shapes at 40 px, 32 px features, random weights (float: weights "none"; int8: a random
VGG16 weights file, as tests/core/features/support.py makes one).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from quasar_core import backbone, cluster
from quasar_core.cluster_ray import ray_available
from quasar_core.config import TrainConfig
from quasar_core.features.cache import FeatureCache, FeatureSpec
from quasar_core.features.extract import POOLED, FeaturePass, augmentation_id, network_provider

RAY_MISSING = "ray[data] is not installed (pip install -r requirements-cluster.txt runs these tests)"
needs_ray = pytest.mark.skipif(not ray_available(), reason=RAY_MISSING)
SIZE = 32


# --------------------------------------------------------------------------- without Ray


def test_cluster_flag_without_ray_says_how_to_install(monkeypatch, capsys, shapes_folder, tmp_path):
    from quasar_core import cli

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    for argv in (["train", str(shapes_folder), "--out", str(tmp_path / "run"), "--cluster", "auto"],
                 ["features", str(shapes_folder), "--cluster", "ray://head:10001"]):
        assert cli.main(argv) == 2
        error = capsys.readouterr().err
        assert "needs Ray" in error and "pip install 'quasar-nexus[cluster]'" in error
        assert "requirements-cluster.txt" in error and "usable images" not in error  # said before any photo is read
    assert not (tmp_path / "run").exists()


def test_features_command_fills_the_cache_here_without_a_cluster(monkeypatch, capsys, shapes_folder, tmp_path):
    from quasar_core import cli

    monkeypatch.setenv("QUASAR_CACHE_DIR", str(tmp_path / "features"))
    assert cli.main(["features", str(shapes_folder), "--weights", "none", "--image-size", str(SIZE),
                     "--precision", "float32", "--preset", "quick"]) == 0
    out = capsys.readouterr()
    assert "24 photo views computed on this machine" in out.err and "are in the feature cache" in out.out
    assert len(FeatureCache(tmp_path / "features").entries()) == 24


# --------------------------------------------------------------------------- a local Ray cluster


@pytest.fixture(scope="module")
def ray_cluster():
    """Two worker processes on this machine (a Ray instance of 2 CPUs started here), left at the end."""
    if not ray_available():
        pytest.skip(RAY_MISSING)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory, shapes):
    """The shapes as a folder of class folders, loaded (a copy this module may change)."""
    from quasar_core.data import load_dataset

    folder = shapes.write_folder(tmp_path_factory.mktemp("cluster-photos") / "data")
    return load_dataset(folder)


def local_views(dataset, config: TrainConfig, precision: str, cache=None) -> np.ndarray:
    """The single-process pass (extract.FeaturePass), as a training runs it: (views, n, 1024)."""
    spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, precision)
    network_for = network_provider(weights=config.weights, image_size=config.image_size, precision=precision,
                                   base_loader=backbone.base_loader(config.weights, seed=config.seed), cache=cache)
    feature_pass = FeaturePass(spec=spec, network_for=network_for, cache=cache, seed=config.seed,
                               augmentation=config.augmentation if config.augment else None)
    return feature_pass.features(dataset, np.arange(len(dataset)), views=config.views)


def cached_views(dataset, config: TrainConfig, precision: str, cache: FeatureCache) -> np.ndarray:
    aug_id = augmentation_id(config.augmentation, config.seed) if config.augment else ""
    spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, precision, POOLED)
    return np.stack([[cache.get(sample.digest, spec.with_view(view, aug_id)) for sample in dataset.samples]
                     for view in range(config.views)])


def no_vgg16():
    raise AssertionError("the training computed VGG16 features itself instead of reading the cluster's")


def train_from(dataset, config, cache, run_dir, base_loader):
    from quasar_core.runs.pipeline import train_run

    return train_run(dataset, config, run_dir, cache=cache, base_loader=base_loader)


def assert_same_model(one, other, *, exact: bool):
    from quasar_core.runs.folder import FILES

    first, second = one.arrays(FILES.HEAD), other.arrays(FILES.HEAD)
    assert set(first) == set(second)
    for key in first:
        if exact or first[key].dtype.kind not in "fc":
            np.testing.assert_array_equal(first[key], second[key], err_msg=key)
        else:
            np.testing.assert_allclose(first[key], second[key], rtol=1e-4, atol=1e-5, err_msg=key)
    assert one.metrics.to_dict()["accuracy"] == other.metrics.to_dict()["accuracy"]


@needs_ray
def test_float_features_on_two_workers_equal_the_single_process_pass(ray_cluster, photos, tmp_path):
    # weights "none" (random, from the seed, the same in every process), two views: the photo and an augmented copy
    config = TrainConfig(weights="none", image_size=SIZE, precision="float32", augment=True, augmentation={"views": 2})
    cache = FeatureCache(tmp_path / "cluster-cache")
    kept, done = cluster.cluster_features(photos, [config], cache=cache, workers=2)
    assert kept is photos and done.failed == [] and done.workers == 2
    assert done.computed == 2 * len(photos) and done.cached == 0
    assert ray_cluster.is_initialized()  # a Ray session opened before is kept

    here_cache = FeatureCache(tmp_path / "local-cache")  # the single-process pass, as `quasar features` runs it
    here_done = cluster.local_features(photos, [config], cache=here_cache, base_loader=backbone.base_loader("none"))
    assert here_done.computed == 2 * len(photos) and here_done.workers == 0
    here = cached_views(photos, config, "float32", here_cache)
    there = cached_views(photos, config, "float32", cache)
    assert there.shape == here.shape == (2, len(photos), 1024) and there.dtype == np.float32
    np.testing.assert_allclose(there, here, rtol=0, atol=1e-5)
    assert not np.allclose(there[0], there[1])  # the augmented view is a view of its own

    # the head learned from them equals the local one (the whole run is compared in the int8 test)
    from quasar_core.head import fit_head

    targets = np.tile(photos.targets(), 2)
    heads = [fit_head(views.reshape(-1, 1024), targets, n_classes=3, strength=0.1) for views in (there, here)]
    np.testing.assert_allclose(heads[0].logits(here[0]), heads[1].logits(here[0]), rtol=1e-4, atol=1e-4)

    again, second = cluster.cluster_features(photos, [config], cache=cache, workers=2)
    assert second.computed == 0 and second.cached == 2 * len(photos)  # only what is missing is computed


def random_weights_file(path: Path) -> Path:
    """A VGG16 notop weights file of He-initialised random kernels (Keras 3 layout), like features/support.py's."""
    h5py = pytest.importorskip("h5py")
    from quasar_core.features import vgg16_onnx

    rng = np.random.default_rng(0)
    pairs = [(rng.normal(0, np.sqrt(2 / (9 * s[2])), s).astype(np.float32),
              rng.normal(0, 0.05, s[3]).astype(np.float32)) for s in vgg16_onnx.KERNEL_SHAPES]
    with h5py.File(path, "w") as f:
        f.create_group("layers/input_layer/vars")
        for i, (kernel, bias) in enumerate(pairs):
            group = f.create_group(f"layers/conv2d{'_' + str(i) if i else ''}/vars")
            group["0"], group["1"] = kernel, bias
    return path


@pytest.fixture(scope="module")
def int8_weights(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    real = os.environ.get(backbone.WEIGHTS_ENV, "").strip()
    if real and Path(real).is_file():
        return real
    return str(random_weights_file(tmp_path_factory.mktemp("weights") / "vgg16_random_notop.weights.h5"))


@needs_ray
def test_int8_features_on_two_workers_are_identical_and_so_is_the_model(ray_cluster, photos, int8_weights, tmp_path):
    config = TrainConfig(weights=int8_weights, image_size=SIZE, precision="int8", cv_repeats=1, folds=4)
    cache = FeatureCache(tmp_path / "cluster-cache")
    kept, done = cluster.cluster_features(photos, [config], cache=cache, workers=2)
    assert done.failed == [] and done.computed == len(photos)
    assert done.precisions[SIZE].precision == "int8"

    here_cache = FeatureCache(tmp_path / "local-cache")
    here = local_views(photos, config, "int8", here_cache)
    there = cached_views(photos, config, "int8", cache)
    np.testing.assert_array_equal(there, here)

    from_cluster = train_from(photos, config, cache, tmp_path / "cluster-run", no_vgg16)
    from_here = train_from(photos, config, here_cache, tmp_path / "local-run", no_vgg16)
    assert_same_model(from_cluster, from_here, exact=True)


def fake_network(job):
    """A stand-in for VGG16 (the decoding, retries and reporting are under test, not the network): the mean
    colour, repeated."""
    return lambda images: np.repeat(images.mean(axis=(1, 2)), 1024 // 3 + 1, axis=1)[:, :1024].astype(np.float32)


class CrashOnce:
    """A network whose worker process dies on its first batch (once: a marker file remembers), as when a machine
    is lost mid-pass."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __call__(self, job):
        network, marker = fake_network(job), Path(self.marker)

        def run(images):
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(1)
            return network(images)

        return run


@pytest.fixture
def by_value():
    """Ray workers receive this module's functions by value (they need not import the tests)."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@needs_ray
def test_unreadable_photos_are_named_and_a_dead_worker_is_retried(ray_cluster, photos, tmp_path, by_value):
    from quasar_core.data import load_dataset

    folder = tmp_path / "data"
    shutil.copytree(Path(photos.samples[0].source.path).parents[1], folder)
    dataset = load_dataset(folder)
    broken, gone = dataset.samples[1], dataset.samples[9]
    Path(broken.source.path).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # damaged since it was checked
    Path(gone.source.path).unlink()  # removed since it was checked
    config = TrainConfig(weights="none", image_size=SIZE, precision="float32")
    cache, marker = FeatureCache(tmp_path / "cache"), tmp_path / "crashed"
    kept, done = cluster.cluster_features(dataset, [config], cache=cache, workers=2, network_factory=CrashOnce(marker))

    assert marker.exists()  # a worker process died on its first batch: Ray restarted it and retried its photos
    assert len(kept) == len(dataset) - 2 and done.computed == len(dataset) - 2
    spec = FeatureSpec(backbone.weights_id("none"), SIZE, "float32")
    assert all(cache.get(s.digest, spec) is not None for s in kept.samples)

    reasons = {problem.file: problem.reason for problem in done.failed}  # named, as the data report names a file
    assert set(reasons) == {broken.name, gone.name}
    assert "could not be read on the cluster's machine" in reasons[gone.name]
    assert "changed since" not in reasons[broken.name] and reasons[broken.name]  # the decoder's own words
    assert {p.file for p in kept.report.skipped()} >= {broken.name, gone.name}
    assert any(line.strip().startswith(f"{broken.name}: ") for line in kept.report.summary_lines())


@needs_ray
def test_quasar_train_with_cluster_trains_from_the_cluster_features(ray_cluster, photos, tmp_path, monkeypatch,
                                                                    capsys, by_value):
    from quasar_core import cli
    from quasar_core.runs.folder import Run

    monkeypatch.setenv("QUASAR_CACHE_DIR", str(tmp_path / "features"))
    monkeypatch.setattr(cluster, "open_job_network", fake_network)  # the pass's plumbing, not VGG16, is under test
    folder = Path(photos.samples[0].source.path).parents[1]
    argv = ["train", str(folder), "--out", str(tmp_path / "run"), "--cluster", "auto", "--workers", "2",
            "--weights", "none", "--image-size", str(SIZE), "--precision", "float32", "--preset", "quick"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "On the cluster: 24 photo views computed on the cluster by 2 workers" in err
    run = Run.open(tmp_path / "run")
    assert run.status.state == "done" and run.metrics is not None
