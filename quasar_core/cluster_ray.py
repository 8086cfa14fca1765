"""Ray itself: whether it is installed, joining and leaving a cluster, and the Ray Data pipeline of a pass.

Ray is optional (``pip install 'quasar-nexus[cluster]'`` or ``requirements-cluster.txt``); this is the one
module that imports it, inside the functions that need it, so the rest of the engine imports without it.

How (Ray Data batch inference): the photos' references (path, zip member, size; the bytes themselves only for
photos held in memory) become a ``ray.data`` dataset of small blocks; ``map_batches`` runs
cluster_worker.PhotoFeatures on a fixed pool of actors, one per worker process. The driver streams the results
back and writes them into its cache: workers need no access to the driver's disk, only to the photos.

Retries are Ray's: an actor whose process dies is restarted and its tasks retried (bounded here by
``RETRIES``, so a photo that kills its worker every time fails the pass instead of looping). A photo that can
no longer be read or decoded is not retried: it comes back as a Problem with its reason.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from quasar_core.cluster_worker import PassJob, PhotoFeatures, open_job_network
from quasar_core.data.records import Dataset, PhotoRef, Problem
from quasar_core.errors import QuasarError
from quasar_core.features.cache import FeatureCache, FeatureSpec
from quasar_core.features.extract import batch_size_for
from quasar_core.progress import PhaseTimer, Progress, TrainingHooks, is_cancelled

INSTALL = "pip install 'quasar-nexus[cluster]' (or pip install -r requirements-cluster.txt)"
RETRIES = 3  # restarts of a dead worker, and retries of the photos it had in hand
# Rows (photo-views) per block of the Ray dataset: a block is one task on one worker. Small enough that two
# workers share a few hundred photos evenly, large enough that a task's fixed cost (~ms) is nothing next to
# VGG16's ~50-100 ms a photo.
BLOCK_BATCHES = 4


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



def shutdown() -> None:
    """Leave the cluster (a local cluster started by this process stops with it)."""
    if ray_available():
        import ray

        if ray.is_initialized():
            ray.shutdown()


# --------------------------------------------------------------------------- the pipeline


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
