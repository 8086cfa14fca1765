"""The feature pass on a Ray cluster: VGG16 once per photo, spread over many machines' cores.

``cluster_features(dataset, configs, address=...)`` fills the same on-disk FeatureCache the
single-process pass fills (entries keyed by the photo's content digest and FeatureSpec), so
everything after the pass — folds, head, photo check, familiarity, Compare — reads the features
from the cache as it always does and is unchanged. Only what is missing from the cache is
computed; ``local_features`` fills it on this machine instead (`quasar features` without --cluster).

This module decides what to compute (each candidate's precision, its spec and views, the photo-views
missing from the cache, whether they fit its budget) and gathers the outcome. The other parts:

* cluster_worker.py — what a worker runs: ``PassJob`` (the int8 model, built or loaded once on the
  driver, travels in it as bytes, so every machine runs exactly the same model; else Keras' float
  VGG16) and ``PhotoFeatures``, which reads, decodes, resizes and augments each photo as
  extract.FeaturePass does;
* cluster_ray.py — Ray itself (optional, imported only there): joining the cluster, and the Ray Data
  pipeline that runs PhotoFeatures on a pool of actors, with bounded retries.

A photo that can no longer be read or decoded on the cluster is named with its reason, as the data
report names a skipped file, and left out of the dataset returned.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from quasar_core import backbone
from quasar_core.cluster_ray import connect, run_job
from quasar_core.cluster_worker import PassJob, open_job_network
from quasar_core.config import TrainConfig
from quasar_core.data.records import DataReport, Dataset, Problem
from quasar_core.errors import QuasarError
from quasar_core.features.cache import FeatureCache, FeatureSpec
from quasar_core.features.extract import (POOLED, FeaturePass, augmentation_id, int8_agreement, local_weights,
                                          models_dir, network_provider)
from quasar_core.features.precision import CHECK_PHOTOS, PrecisionChoice, choose_precision
from quasar_core.features.vgg16_onnx import FEATURES
from quasar_core.progress import TrainingHooks

CACHE_ENTRY_OVERHEAD = 300  # bytes an entry takes besides its floats (header, checksum, file-system slack)


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
