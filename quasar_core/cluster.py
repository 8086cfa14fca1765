"""The feature pass on a Ray cluster: VGG16 once per photo, spread over many machines' cores.

``cluster_features(dataset, configs, address=...)`` fills the same on-disk FeatureCache the
single-process pass fills (entries keyed by the photo's content digest and FeatureSpec), so
everything after the pass — folds, head, photo check, familiarity, Compare — reads the features
from the cache as it always does and is unchanged. Only what is missing from the cache is
computed.

How (Ray Data batch inference): the photos' references (path, zip member, size; the bytes
themselves only for photos held in memory) become a ``ray.data`` dataset of small blocks;
``map_batches`` runs ``PhotoFeatures``, a callable class, on a fixed pool of actors — one per
worker process, each building its network once: the int8 model (built or loaded once on the
driver and shipped to the workers as bytes, so every machine runs exactly the same model) or
Keras' float VGG16. A worker reads each photo where it is (a folder on shared storage, a zip),
decodes it with the same decoder, resizes it with THE resize (data.images.resize_square),
makes the same seeded augmented views as extract.FeaturePass, and returns the features. The
driver streams the results back and writes them into its cache: workers need no access to
the driver's disk, only to the photos.

Retries are Ray's: an actor whose process dies is restarted and its tasks retried (bounded
here by ``RETRIES``, so a photo that kills its worker every time fails the pass instead of
looping). A photo that can no longer be read or decoded is not retried: it is named with its
reason, as the data report names a skipped file, and left out of the dataset returned.

Ray is optional (``pip install 'quasar-nexus[cluster]'`` or ``requirements-cluster.txt``) and
imported only here, inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from quasar_core import backbone
from quasar_core.config import Augmentation, TrainConfig
from quasar_core.data.images import decode_image, resize_square
from quasar_core.data.records import DataReport, Dataset, Limits, PhotoRef, Problem
from quasar_core.errors import QuasarError
from quasar_core.features.cache import FeatureCache, FeatureSpec
from quasar_core.features.extract import (POOLED, FeaturePass, augmentation_id, batch_size_for, int8_agreement,
                                          local_weights, models_dir, network_provider, view_seed)
from quasar_core.features.int8 import FEATURES
from quasar_core.features.precision import CHECK_PHOTOS, PrecisionChoice, choose_precision, float_beside
from quasar_core.progress import PhaseTimer, Progress, TrainingHooks, is_cancelled

INSTALL = "pip install 'quasar-nexus[cluster]' (or pip install -r requirements-cluster.txt)"
RETRIES = 3  # restarts of a dead worker, and retries of the photos it had in hand
# Rows (photo-views) per block of the Ray dataset: a block is one task on one worker. Small enough that two
# workers share a few hundred photos evenly, large enough that a task's fixed cost (~ms) is nothing next to
# VGG16's ~50-100 ms a photo.
BLOCK_BATCHES = 4
CACHE_ENTRY_OVERHEAD = 300  # bytes an entry takes besides its floats (header, checksum, file-system slack)


def ray_available() -> bool:
    """Ray and Ray Data are installed (found without importing them)."""
    return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("pyarrow") is not None


def require_ray():
    """The `ray` module, or a QuasarError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise QuasarError(f"--cluster needs Ray, which is not installed here: {INSTALL}.") from None
    return ray


# --------------------------------------------------------------------------- what a worker needs


@dataclass(frozen=True)
class PassJob:
    """Everything a worker needs to compute one FeatureSpec's features (picklable, sent to every actor)."""

    weights: str  # a weights file path, "imagenet" (Keras' download on each machine) or "none" (random, from seed)
    seed: int
    image_size: int
    precision: str  # what runs: int8 | float32 | bfloat16 (never "auto")
    threads: int = 1  # per worker: its share of a machine's cores
    augmentation: dict | None = None  # Augmentation's settings, for views 1..
    int8_model: bytes | None = field(default=None, repr=False)  # the quantized model, identical on every worker

    def open_network(self) -> Callable[[np.ndarray], np.ndarray]:
        """The pooled-feature network, as network_provider opens it for POOLED, with `threads` threads."""
        if self.precision == "int8":
            from quasar_core.features import int8

            return int8.Int8FeatureNetwork(self.int8_model, threads=self.threads, image_size=self.image_size)
        _limit_tensorflow_threads(self.threads)
        from quasar_core.features import networks

        base = backbone.load_vgg16(self.weights, seed=self.seed)
        return networks.keras_network(base, precision=float_beside(self.precision))


def _limit_tensorflow_threads(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started in this process: keep what it has
        pass


def open_job_network(job: PassJob):
    return job.open_network()


class PhotoFeatures:
    """Ray Data's callable class: one instance per worker process, its network built once in __init__.

    A batch holds photo references (columns index, view, name, digest, path, member, size, data); the
    result holds index, view, features (n, 1,024), error ("" when the photo was computed), and each row's share of
    the batch's seconds (busy) and of the worker's CPU seconds (cpu).
    """

    def __init__(self, job: PassJob, network_factory: Callable[[PassJob], Callable] = open_job_network):
        self.job = job
        self.network = network_factory(job)
        self._augmenter = None
        self.host = socket.gethostname()

    def __call__(self, batch: dict) -> dict:
        started, cpu = time.perf_counter(), time.process_time()
        job = self.job
        n = len(batch["index"])
        images = np.zeros((n, job.image_size, job.image_size, 3), np.float32)
        errors = [""] * n
        for row in range(n):
            try:
                images[row] = self._prepare(batch, row)
            except _Unusable as unusable:
                errors[row] = str(unusable)
        good = [row for row in range(n) if not errors[row]]
        features = np.zeros((n, FEATURES), np.float32)
        if good:
            features[good] = self.network(images[good])
        busy = np.full(n, (time.perf_counter() - started) / n)  # a batch's time, shared among its rows
        return {"index": np.asarray(batch["index"], np.int64), "view": np.asarray(batch["view"], np.int64),
                "features": features, "error": np.array(errors, dtype=object), "busy": busy,
                "cpu": np.full(n, (time.process_time() - cpu) / n)}

    def _prepare(self, batch, row) -> np.ndarray:
        from quasar_core.data.limits import ImageRejected

        name, digest = str(batch["name"][row]), str(batch["digest"][row])
        data = batch["data"][row]
        ref = PhotoRef(path=_text(batch["path"][row]), member=_text(batch["member"][row]),
                       size=int(batch["size"][row]), data=bytes(data) if data is not None else None)
        try:
            raw = ref.read()
        except Exception as err:  # OSError, KeyError (zip member), BadZipFile
            raise _Unusable(f"could not be read on the cluster's machine {self.host} ({err}); every machine must see "
                            "the photos at the same path (shared storage), or load them again") from None
        try:
            decoded = decode_image(raw, name, limits=Limits(max_image_pixels=10**12))  # as Dataset.pixels decodes
        except ImageRejected as rejected:
            raise _Unusable(rejected.reason) from None
        if decoded.digest != digest:
            raise _Unusable("changed since the photos were checked; load the photos again")
        image = resize_square(decoded.pixels, self.job.image_size)
        view = int(batch["view"][row])
        if view > 0:
            if self._augmenter is None:
                from quasar_core.features.extract import Augmenter

                self._augmenter = Augmenter(Augmentation(**self.job.augmentation))
            image = self._augmenter(image, view_seed(digest, view, self.job.seed))
        return image


class _Unusable(Exception):
    pass


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


# --------------------------------------------------------------------------- connecting


@dataclass
class Connection:
    address: str
    cpus: int  # the cluster's CPUs
    joined_here: bool  # this call joined (or started) it: leave() leaves; a session joined before is left alone

    def leave(self) -> None:
        if self.joined_here:
            shutdown()


def connect(address: str) -> Connection:
    """Join the cluster at `address`, or use the one this process already joined (a notebook's `ray.init`).

    "auto": the cluster named by RAY_ADDRESS, else the latest one started on this machine (`ray start
    --head`), else a new local one on this machine's cores (stopped when left). "ray://HOST:PORT": an existing
    cluster through Ray Client. "HOST:PORT": an existing cluster's head, from a machine of the cluster.
    """
    ray = require_ray()
    joined = not ray.is_initialized()
    if joined:
        if not address:
            raise QuasarError("--cluster needs 'auto' or the address of a Ray cluster (ray://HOST:PORT).")
        try:
            ray.init(address=None if address == "auto" else address, include_dashboard=False,
                     logging_level="WARNING", log_to_driver=False)
        except ConnectionError as err:
            raise QuasarError(f"Could not join the Ray cluster at {address!r} ({err}). Check the address and that "
                              "the cluster runs (`ray status` on its head).") from None
    return Connection(address, int(ray.cluster_resources().get("CPU", 0)), joined)


# --------------------------------------------------------------------------- the driver


@dataclass
class ClusterPass:
    """What a cluster pass did."""

    computed: int = 0  # photo-views computed on the cluster
    cached: int = 0  # already in the cache
    failed: list[Problem] = field(default_factory=list)
    workers: int = 0
    seconds: float = 0.0  # the pass itself, from the first photo sent to the last result stored
    worker_seconds: float = 0.0  # the workers' time on photos (decoding, resizing, VGG16), summed over workers
    worker_cpu_seconds: float = 0.0  # their CPU time for it
    start_seconds: float = 0.0  # joining the cluster and the driver's preparations (precision, int8 model)
    precisions: dict = field(default_factory=dict)  # image size -> PrecisionChoice

    def rate(self) -> float | None:
        return self.computed / self.seconds if self.seconds > 0 and self.computed else None

    def words(self) -> str:
        rate = self.rate()
        speed = f" ({rate:.1f} photos/s)" if rate else ""
        where = f"on the cluster by {self.workers} workers" if self.workers else "on this machine"
        text = (f"{self.computed} photo views computed {where} in {self.seconds:.1f} s{speed}; {self.cached} already "
                "cached")
        if self.failed:
            text += f"; {len(self.failed)} could not be used (named above)"
        return text + "."


def resolve_precision(dataset, config: TrainConfig, *, cache: FeatureCache | None, base_loader=None) -> PrecisionChoice:
    """The precision a training of `config` will run, decided as TransferClassifier decides it (the int8 check on
    the first photos runs here; it is remembered, so the training does not run it again)."""
    base_loader = base_loader or backbone.base_loader(config.weights, seed=config.seed)
    spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, "int8")

    def agreement():
        int8_pass = FeaturePass(spec=spec, cache=cache, network_for=network_provider(
            weights=config.weights, image_size=config.image_size, precision="int8", base_loader=base_loader,
            cache=cache))
        return int8_agreement(dataset, np.arange(min(CHECK_PHOTOS, len(dataset))), int8_pass=int8_pass,
                              weights=config.weights, image_size=config.image_size, base_loader=base_loader,
                              cache=cache)

    return choose_precision(config.precision, agreement=agreement,
                            random_weights=backbone.resolve_weights(config.weights) is None)


def job_for(config: TrainConfig, precision: str, *, cache: FeatureCache | None, threads: int = 1,
            base_loader=None) -> PassJob:
    """The job of `config`'s pooled features in `precision`; for int8 the model is built or loaded here, once."""
    weights = backbone.weights_file(config.weights) or config.weights
    int8_model = None
    if precision == "int8":
        from quasar_core.features import int8

        base_loader = base_loader or backbone.base_loader(config.weights, seed=config.seed)
        network = int8.load_int8_network(weights_path=local_weights(config.weights, base_loader),
                                         weights_id=backbone.weights_id(config.weights), image_size=config.image_size,
                                         models_dir=models_dir(cache), threads=1)
        int8_model = network.model_path.read_bytes()
    augmentation = dataclasses.asdict(config.augmentation) if config.augment else None
    return PassJob(weights, config.seed, config.image_size, precision, threads, augmentation, int8_model)


def _rows(dataset: Dataset, spec: FeatureSpec, views: int, aug_id: str, cache: FeatureCache | None):
    """(index, view) of each photo-view whose features are not in the cache, and how many are."""
    missing, cached = [], 0
    for view in range(views):
        view_spec = spec.with_view(view, aug_id)
        for index, sample in enumerate(dataset.samples):
            if cache is not None and cache.has(sample.digest, view_spec):
                cached += 1
            else:
                missing.append((index, view))
    return missing, cached


def _table(dataset: Dataset, missing):
    import pyarrow as pa

    samples = [dataset.samples[index] for index, _ in missing]
    refs = [s.source or PhotoRef() for s in samples]
    return pa.table({
        "index": pa.array([index for index, _ in missing], pa.int64()),
        "view": pa.array([view for _, view in missing], pa.int64()),
        "name": pa.array([s.name for s in samples], pa.string()),
        "digest": pa.array([s.digest for s in samples], pa.string()),
        "path": pa.array([r.path for r in refs], pa.string()),
        "member": pa.array([r.member for r in refs], pa.string()),
        "size": pa.array([r.size for r in refs], pa.int64()),
        "data": pa.array([r.data for r in refs], pa.binary()),
    })


def run_job(dataset: Dataset, job: PassJob, spec: FeatureSpec, missing, *, cache: FeatureCache | None,
            workers: int, hooks: TrainingHooks, cancel: threading.Event | None = None,
            network_factory: Callable[[PassJob], Callable] = open_job_network, found: dict | None = None):
    """Compute the `missing` (index, view) photo-views of `dataset` on `workers` Ray actors, storing each result in
    `cache` (and in `found`, when given: (view, index) -> features). Returns how many were stored, the photos
    that failed (Problems), and the workers' seconds and CPU seconds on them."""
    ray = require_ray()
    batch = batch_size_for(job.image_size)
    # The pipeline's own driver runs on the cluster, in an actor: this machine may be a Ray Client (ray://), where
    # Ray Data's streaming executor does not run; it only takes the results, a few batches at a time.
    driver = ray.remote(num_cpus=0, max_restarts=0)(PassDriver).remote(_table(dataset, missing), job, workers, batch,
                                                                        network_factory)
    failed: list[Problem] = []
    seen: set[int] = set()
    timer = PhaseTimer(len(missing))
    done = stored = 0
    busy = cpu = 0.0
    try:
        for result in _results(ray, driver):
            if is_cancelled(cancel):
                break
            done, stored, busy, cpu = _take(result, dataset, spec, cache, found, failed, seen, done, stored, busy, cpu)
            elapsed = timer.elapsed()
            hooks.progress(Progress("features", done, len(missing), elapsed_seconds=elapsed,
                                    eta_seconds=timer.eta(done), rate=done / elapsed if elapsed else None))
    finally:
        ray.kill(driver)  # its pipeline and workers go with it
    return stored, failed, busy, cpu


def _results(ray, driver):
    while True:
        results = ray.get(driver.next.remote())
        if not results:
            return
        yield from results


def _take(result, dataset, spec, cache, found, failed, seen, done, stored, busy, cpu):
    """One batch of results into the cache; the running totals."""
    for index, view, value, error in zip(result["index"], result["view"], result["features"], result["error"]):
        index, view = int(index), int(view)
        if error:
            if index not in seen:
                seen.add(index)
                failed.append(Problem(dataset.samples[index].name, str(error), "skipped"))
            continue
        value = np.ascontiguousarray(value, dtype=np.float32)
        if cache is not None:
            cache.put(dataset.samples[index].digest, spec.with_view(view, spec.augmentation), value)
        if found is not None:
            found[(view, index)] = value
        stored += 1
    done += len(result["index"])
    return done, stored, busy + float(np.sum(result["busy"])), cpu + float(np.sum(result["cpu"]))


class PassDriver:
    """Ray Data's pipeline over the photo references, run in an actor on the cluster; `next` hands out its results
    a few batches at a time (see run_job)."""

    def __init__(self, table, job: PassJob, workers: int, batch: int, network_factory):
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the caller's own progress (tqdm, the Train page) says it
        context.print_on_execution_start = False
        block = max(1, min(batch * BLOCK_BATCHES, math.ceil(table.num_rows / (2 * workers))))
        photos = ray.data.from_arrow([table.slice(start, block) for start in range(0, table.num_rows, block)])
        features = _map(photos, PhotoFeatures, fn_constructor_kwargs={"job": job, "network_factory": network_factory},
                        batch_size=batch, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
                        num_cpus=job.threads)
        self._results = iter(features.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2))

    def next(self, count: int = 4) -> list[dict]:
        """Up to `count` result batches; [] when the pass is over."""
        taken = []
        for result in self._results:
            taken.append(result)
            if len(taken) >= count:
                break
        return taken


def _map(photos, fn, **options):
    """map_batches with the retries bounded: a worker that dies is restarted and its photos retried, RETRIES times
    (Ray Data's default is without end). Ray 2.60 takes them as remote arguments and warns that 2.64 will not;
    without them the defaults stand."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            return photos.map_batches(fn, max_restarts=RETRIES, max_task_retries=RETRIES, **options)
    except TypeError:
        return photos.map_batches(fn, **options)


def cluster_features(dataset: Dataset, configs, *, address: str = "auto", cache: FeatureCache | None,
                     workers: int | None = None, threads: int = 1, hooks: TrainingHooks | None = None,
                     cancel: threading.Event | None = None, base_loader=None,
                     network_factory: Callable[[PassJob], Callable] | None = None) -> tuple[Dataset, ClusterPass]:
    """Fill `cache` with the pooled features (every view) that trainings of `configs` on `dataset` will read,
    computed on the Ray cluster at `address` by `workers` actors of `threads` cores each (default: the cluster's
    CPUs / threads). A cluster joined here is left at the end (a Ray session already open is kept). Returns the
    dataset without the photos that could not be used (named in its report, as a skipped file is) and what was
    done."""
    hooks = hooks or TrainingHooks()
    if cache is None:
        raise QuasarError("The cluster's features go to the feature cache: give the pass a cache.")
    started = time.perf_counter()
    summary = ClusterPass()
    jobs = []
    for config in configs:
        choice = resolve_precision(dataset, config, cache=cache, base_loader=base_loader)
        summary.precisions[config.image_size] = choice
        spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, choice.precision,
                           POOLED)
        aug_id = augmentation_id(config.augmentation, config.seed) if config.augment else ""
        spec = dataclasses.replace(spec, augmentation=aug_id)  # with_view keeps it for views 1.., drops it for 0
        if any(spec == other and config.views <= other_config.views for other, other_config, _ in jobs):
            continue  # another candidate reads the same features
        jobs.append((spec, config, choice.precision))
    planned = [(spec, config, precision, *_rows(dataset, spec, config.views, spec.augmentation, cache))
               for spec, config, precision in jobs]
    _check_budget(cache, dataset, planned)
    failed: dict[str, Problem] = {}
    connection = None
    try:
        for spec, config, precision, missing, cached in planned:
            summary.cached += cached
            if not missing:
                continue
            job = job_for(config, precision, cache=cache, threads=threads, base_loader=base_loader)
            if connection is None:  # joined only when something is to be computed
                connection = connect(address)
                summary.workers = workers or max(1, connection.cpus // max(1, threads))
            began = time.perf_counter()
            stored, problems, busy, cpu = run_job(dataset, job, spec, missing, cache=cache, workers=summary.workers,
                                                  hooks=hooks, cancel=cancel,
                                                  network_factory=network_factory or open_job_network)
            for problem in problems:
                failed.setdefault(problem.file, problem)
            summary.seconds += time.perf_counter() - began
            summary.computed += stored
            summary.worker_seconds += busy
            summary.worker_cpu_seconds += cpu
    finally:
        if connection is not None:
            connection.leave()  # a local cluster started here stops: the training runs on this machine
    summary.start_seconds = time.perf_counter() - started - summary.seconds
    cache.evict()
    summary.failed = list(failed.values())
    return without(dataset, summary.failed), summary


def local_features(dataset: Dataset, configs, *, cache: FeatureCache, hooks: TrainingHooks | None = None,
                   base_loader=None, threads: int | None = None) -> ClusterPass:
    """The same cache filled by the single-process pass (extract.FeaturePass) on this machine: `quasar features`
    without --cluster, and the benchmark's reference. `threads` limits an int8 network's threads."""
    from quasar_core.features import int8

    summary = ClusterPass()
    started = time.perf_counter()
    for config in configs:
        loader = base_loader or backbone.base_loader(config.weights, seed=config.seed)
        choice = resolve_precision(dataset, config, cache=cache, base_loader=loader)
        summary.precisions[config.image_size] = choice
        spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, choice.precision)
        network_for = network_provider(weights=config.weights, image_size=config.image_size,
                                       precision=choice.precision, base_loader=loader, cache=cache)
        if threads is not None and choice.precision == "int8":
            def network_for(layer, config=config):  # noqa: E306 (the same model, fewer threads)
                return int8.load_int8_network(weights_path=local_weights(config.weights, loader),
                                              weights_id=backbone.weights_id(config.weights),
                                              image_size=config.image_size, models_dir=models_dir(cache),
                                              threads=threads)
        feature_pass = FeaturePass(spec=spec, network_for=network_for, cache=cache, hooks=hooks,
                                   augmentation=config.augmentation if config.augment else None, seed=config.seed)
        before = feature_pass.computed
        feature_pass.features(dataset, np.arange(len(dataset)), views=config.views)
        summary.computed += feature_pass.computed - before
        summary.cached += len(dataset) * config.views - (feature_pass.computed - before)
        summary.start_seconds += feature_pass.load_seconds
    summary.seconds = time.perf_counter() - started - summary.start_seconds
    return summary


def without(dataset: Dataset, failed: list[Problem]) -> Dataset:
    """`dataset` less the photos that failed, each named in its report as a skipped file."""
    if not failed:
        return dataset
    names = {problem.file for problem in failed}
    kept = [i for i, sample in enumerate(dataset.samples) if sample.name not in names]
    subset = dataset.subset(kept)
    report = DataReport(subset.report.source, subset.report.counts, [*subset.report.problems, *failed])
    return Dataset(subset.samples, subset.labels, report)


def _check_budget(cache: FeatureCache, dataset: Dataset, planned) -> None:
    """Refuse a pass whose features would not fit the cache's budget: they would be evicted before the training
    reads them, and computed again on this machine."""
    rows = len(dataset) * sum(config.views for _, config, *_ in planned)
    needed = rows * (FEATURES * 4 + CACHE_ENTRY_OVERHEAD)
    if needed > cache.max_bytes:
        raise QuasarError(
            f"The features of {len(dataset)} photos need about {needed / 1024**2:,.0f} MB of feature cache; its budget "
            f"is {cache.max_bytes / 1024**2:,.0f} MB. Raise QUASAR_CACHE_MB (the dashboard: QUASAR_WORKSPACE_CACHE_MB) "
            "to at least that, so the training reads them instead of computing them again.")


def shutdown() -> None:
    """Leave the cluster (a local cluster started by this process stops with it)."""
    if ray_available():
        import ray

        if ray.is_initialized():
            ray.shutdown()
