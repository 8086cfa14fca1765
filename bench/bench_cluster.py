"""The feature pass on Ray vs the single-process pass, and the head on 200,000 feature rows.

Features (`--photos` flowers-full photos read from a zip, `--image-size` px, `--precision`, fresh cache per arm,
the network loaded before the clock starts): the single-process pass (extract.FeaturePass) with 1 thread and
with every core, then a local Ray cluster started here (`ray.init(num_cpus=<cores>)`) running
cluster.cluster_features with 1 and with 2 workers of 1 core each. Per arm: the pass's seconds (Ray: from the
first photo sent, the workers' start and network load included), and its CPU seconds (Ray: the workers' own, on
photos). The engine's overhead at 1 worker = Ray 1 worker / single process 1 thread (wall; CPU beside it); the
speed-up = 2 workers / 1 worker (wall: meaningful on a quiet machine only). Every arm's features are compared
with the single-process ones (int8: identical). A paper estimate of 1,000,000 photos on N machines follows from
the per-core rate (photos per CPU second of a worker), with the driver's own serial costs (checking the photos
when they are loaded, writing the cache) measured here too.

Head (`--head-rows` synthetic pooled-feature rows of 1,024 floats, 10 classes, in memory; a child process so its
peak is its own): peak RSS beyond the features (VmHWM reset after they are made) for (a) head_at_scale's fit at
one strength, and (b) the training's head stage as training.py runs it on that many photos: the hold-out folds,
crossval.cross_validate over head.STRENGTHS, the kept head (fit_head on a copy of every row, as
TransferClassifier._head makes it) and the temperature.

    python bench/bench_cluster.py [--photos 200] [--image-size 224] [--precision int8] [--head-rows 200000]
    [--skip-features] [--skip-head] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from _machine import cores, others_busy_share, peak_rss_mb, reset_peak_rss, rss_mb, wait_for_quiet  # noqa: E402

RESULTS = REPO_ROOT / "bench" / "results"
FLOWERS_ZIP = Path("/work/shared/datasets/flowers-full/flowers.zip")
WEIGHTS = "/work/shared/weights/vgg16_imagenet_notop.weights.h5"


def photos_zip(count: int, target: Path) -> Path:
    """`count` flowers-full photos (the same share of each class, first by name) copied into a zip of our own."""
    with zipfile.ZipFile(FLOWERS_ZIP) as source:
        names = sorted(n for n in source.namelist() if n.lower().endswith(".jpg"))
        classes = sorted({n.split("/")[-2] for n in names})
        per_class = -(-count // len(classes))
        chosen = [n for c in classes for n in [m for m in names if m.split("/")[-2] == c][:per_class]][:count]
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as out:
            for name in chosen:
                out.writestr("/".join(name.split("/")[-2:]), source.read(name))
    return target


# --------------------------------------------------------------------------- features


def single_process(dataset, config, precision, threads, cache_dir):
    from quasar_core import backbone
    from quasar_core.features import int8, networks
    from quasar_core.features.cache import FeatureCache, FeatureSpec
    from quasar_core.features.extract import FeaturePass, models_dir

    cache = FeatureCache(cache_dir, max_bytes=10**10)
    spec = FeatureSpec(backbone.weights_id(config.weights), config.image_size, precision)
    if precision == "int8":
        network = int8.load_int8_network(weights_path=backbone.weights_file(config.weights),
                                         weights_id=backbone.weights_id(config.weights), image_size=config.image_size,
                                         models_dir=models_dir(cache), threads=threads)
    else:
        network = networks.keras_network(backbone.load_vgg16(config.weights), precision=precision)
    network(np.zeros((1, config.image_size, config.image_size, 3), np.float32))  # warmed up before the clock
    feature_pass = FeaturePass(spec=spec, network_for=lambda layer: network, cache=cache)
    started, cpu = time.perf_counter(), _cpu_seconds()
    views = feature_pass.features(dataset, np.arange(len(dataset)))
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    return {"seconds": seconds, "rate": len(dataset) / seconds, "cpu_seconds": cpu,
            "cpu_rate": len(dataset) / cpu}, views[0]


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def on_ray(dataset, config, workers, cache_dir):
    from quasar_core import backbone, cluster
    from quasar_core.features.cache import FeatureCache, FeatureSpec
    from quasar_core.progress import TrainingHooks

    cache = FeatureCache(cache_dir, max_bytes=10**10)
    marks = []
    hooks = TrainingHooks(on_progress=lambda p: marks.append(time.perf_counter()))
    started = time.perf_counter()
    kept, done = cluster.cluster_features(dataset, [config], cache=cache, workers=workers, threads=1, hooks=hooks)
    whole = time.perf_counter() - started
    spec = FeatureSpec(backbone.weights_id(config.weights), config.image_size, config.precision)
    features = np.stack([cache.get(sample.digest, spec) for sample in dataset.samples])
    return {"seconds": done.seconds, "rate": done.computed / done.seconds, "whole_seconds": whole,
            "driver_seconds": done.start_seconds, "first_result_seconds": marks[0] - started - done.start_seconds,
            "worker_seconds": done.worker_seconds, "worker_cpu_seconds": done.worker_cpu_seconds,
            "cpu_rate": done.computed / done.worker_cpu_seconds, "busy_rate": done.computed / done.worker_seconds,
            "failed": len(done.failed)}, features


def features_bench(args, tmp: Path) -> dict:
    import ray

    from quasar_core.config import TrainConfig
    from quasar_core.data import Limits, load_dataset
    from quasar_core.features.cache import FeatureCache

    archive = photos_zip(args.photos, tmp / "photos.zip")
    started = time.perf_counter()
    dataset = load_dataset(archive, limits=Limits.from_env(max_images=10**6))
    load_seconds = time.perf_counter() - started
    config = TrainConfig(weights=WEIGHTS, image_size=args.image_size, precision=args.precision)
    out = {"photos": len(dataset), "image_size": args.image_size, "precision": args.precision,
           "driver_check_rate": len(dataset) / load_seconds}

    cache = FeatureCache(tmp / "put-test", max_bytes=10**10)  # the driver's cache writes, alone
    value = np.random.default_rng(0).random(1024, dtype=np.float32)
    from quasar_core.features.cache import FeatureSpec

    spec = FeatureSpec("bench", 1, "int8")
    began = time.perf_counter()
    for number in range(2000):
        cache.put(f"{number:064x}", spec, value)
    out["driver_cache_write_rate"] = 2000 / (time.perf_counter() - began)

    arms, reference = {}, None
    for name, threads in (("single_1_thread", 1), ("single_all_cores", None)):
        out[f"{name}_others_busy"] = wait_for_quiet(args.max_wait)
        arms[name], features = single_process(dataset, config, args.precision, threads, tmp / f"cache-{name}")
        reference = features if reference is None else reference
        arms[name]["max_difference"] = float(np.abs(features - reference).max())
        print(f"{name}: {arms[name]['seconds']:.1f} s, {arms[name]['rate']:.2f} photos/s, CPU "
              f"{arms[name]['cpu_seconds']:.1f} s ({arms[name]['cpu_rate']:.2f} photos per CPU second)", flush=True)

    began = time.perf_counter()
    ray.init(address="local", num_cpus=cores(), include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    out["ray_start_seconds"] = time.perf_counter() - began
    try:
        for workers in (1, 2):
            name = f"ray_{workers}_worker{'s' if workers > 1 else ''}"
            out[f"{name}_others_busy"] = wait_for_quiet(args.max_wait)
            arms[name], features = on_ray(dataset, config, workers, tmp / f"cache-{name}")
            arms[name]["max_difference"] = float(np.abs(features - reference).max())
            arm = arms[name]
            print(f"{name}: {arm['seconds']:.1f} s (first result after {arm['first_result_seconds']:.1f} s; the "
                  f"driver's {arm['driver_seconds']:.1f} s before), {arm['rate']:.2f} photos/s; workers busy "
                  f"{arm['worker_seconds']:.1f} s, CPU {arm['worker_cpu_seconds']:.1f} s ({arm['cpu_rate']:.2f} photos "
                  f"per CPU second); max difference {arm['max_difference']:.1e}", flush=True)
    finally:
        ray.shutdown()
    out["arms"] = arms
    one, two, single = arms["ray_1_worker"], arms["ray_2_workers"], arms["single_1_thread"]
    out["overhead_1_worker"] = one["seconds"] / single["seconds"]
    out["overhead_1_worker_cpu"] = one["worker_cpu_seconds"] / single["cpu_seconds"]
    out["speedup_2_over_1"] = two["rate"] / one["rate"]
    out["ray_2_vs_single_all_cores"] = two["rate"] / arms["single_all_cores"]["rate"]
    out["estimate"] = paper_estimate(out)
    return out


def paper_estimate(out: dict, photos: int = 1_000_000) -> dict:
    """1,000,000 photos on N machines of C cores from the measured per-core rate (photos per CPU second of a Ray
    worker: a core of its own), scaling with cores as `efficiency` says (the measured 2-worker speed-up / 2 when it
    was measured on a quiet machine, else an assumed 0.9); the driver's serial costs (checking the photos when they
    are loaded, writing the cache) beside it."""
    per_core = out["arms"]["ray_1_worker"]["cpu_rate"]
    quiet = max(out.get("ray_1_worker_others_busy", 1.0), out.get("ray_2_workers_others_busy", 1.0)) < 0.2
    efficiency = min(1.0, out["speedup_2_over_1"] / 2) if quiet else 0.9
    rows = []
    for machines, machine_cores in ((1, 2), (10, 2), (1, 16), (10, 16), (50, 16)):
        rate = per_core * machine_cores * machines * efficiency
        rows.append({"machines": machines, "cores": machine_cores, "photos_per_second": rate,
                     "hours": photos / rate / 3600})
    return {"per_core_rate": per_core, "efficiency": efficiency, "efficiency_measured": quiet, "rows": rows,
            "driver_check_hours": photos / out["driver_check_rate"] / 3600,
            "driver_cache_write_hours": photos / out["driver_cache_write_rate"] / 3600}


# --------------------------------------------------------------------------- head


def head_child(rows: int, classes: int = 10, d: int = 1024) -> dict:
    from quasar_core import head_at_scale
    from quasar_core.crossval import cross_validate
    from quasar_core.data.split import holdout_folds
    from quasar_core.head import fit_head, fit_temperature
    import scipy.optimize  # noqa: F401 (imports counted before the baseline)
    import sklearn.linear_model  # noqa: F401

    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, rows)
    centres = rng.normal(0, 1, (classes, d)).astype(np.float32)
    features = np.empty((rows, d), np.float32)
    for start in range(0, rows, 8192):
        block = centres[y[start:start + 8192]] + rng.normal(0, 2.0, (len(y[start:start + 8192]), d)).astype(np.float32)
        np.maximum(block, 0, out=block)
        features[start:start + 8192] = block ** 2
    features_mb = features.nbytes / 2**20
    out = {"rows": rows, "features_mb": features_mb}

    baseline = rss_mb()
    reset_peak_rss()
    began = time.perf_counter()
    head = head_at_scale.fit_head_at_scale(features, y, n_classes=classes, strength=0.1)
    out["fit_seconds"] = time.perf_counter() - began
    out["fit_peak_beyond_mb"] = peak_rss_mb() - baseline
    out["fit_train_accuracy"] = float((head.logits(features[:20000]).argmax(1) == y[:20000]).mean())
    print(f"head_at_scale fit: {out['fit_seconds']:.1f} s, peak {out['fit_peak_beyond_mb']:.0f} MB beyond the "
          f"features' {features_mb:.0f} MB", flush=True)

    baseline = rss_mb()
    reset_peak_rss()
    began = time.perf_counter()
    views = features[None]  # (views, n, d), no copy
    folds = holdout_folds(y, fraction=0.2, seed=0)  # above max_cv_photos: one held-out share, as folds_for deals it
    validation = cross_validate(views, y, folds, n_classes=classes)
    kept = fit_head(views[:, np.arange(rows)].reshape(-1, d), y, n_classes=classes,  # TransferClassifier._head
                    strength=validation.strength)
    kept.temperature = fit_temperature(*validation.stacked_logits(y))
    out["training_head_seconds"] = time.perf_counter() - began
    out["training_head_peak_beyond_mb"] = peak_rss_mb() - baseline
    tested = validation.tested
    out["holdout_accuracy"] = float((validation.logits[tested].argmax(1) == y[tested]).mean())
    print(f"the training's head stage: {out['training_head_seconds']:.1f} s, peak "
          f"{out['training_head_peak_beyond_mb']:.0f} MB beyond the features", flush=True)
    return out


def head_bench(args) -> dict:
    command = [sys.executable, __file__, "--head-child", str(args.head_rows)]
    done = subprocess.run(command, capture_output=True, text=True)
    sys.stdout.write(done.stderr[-2000:] if done.returncode else "")
    if done.returncode:
        raise SystemExit(f"the head child failed ({done.returncode})")
    lines = done.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(line)
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--precision", default="int8", choices=("int8", "float32"))
    parser.add_argument("--head-rows", type=int, default=200_000)
    parser.add_argument("--skip-features", action="store_true")
    parser.add_argument("--skip-head", action="store_true")
    parser.add_argument("--max-wait", type=float, default=None, help="seconds to wait for a quiet machine per arm")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    parser.add_argument("--head-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.head_child:
        print(json.dumps(head_child(args.head_child)))
        return
    if args.quick:
        args.photos, args.image_size, args.head_rows = 30, 64, 60_000
    if args.max_wait is None:
        args.max_wait = 0.0 if args.quick else 60.0
    os.environ.setdefault("QUASAR_VGG16_WEIGHTS", WEIGHTS)
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": _cpu(), "cores": cores(),
              "load_average": os.getloadavg(), "others_busy_at_start": others_busy_share()}
    print(f"{result['cpu']}, {result['cores']} cores, load {result['load_average'][0]:.1f}, others' CPU share "
          f"{result['others_busy_at_start']:.0%}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        if not args.skip_features:
            result["features"] = features_bench(args, Path(tmp))
            _print_features(result["features"])
    if not args.skip_head:
        result["head"] = head_bench(args)
    result["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench_cluster{'.quick' if args.quick else ''}.json"
    try:  # a part skipped this time keeps its last figures
        earlier = json.loads(path.read_text())
        result = {**{key: earlier[key] for key in ("features", "head") if key in earlier}, **result}
    except (OSError, ValueError):
        pass
    path.write_text(json.dumps(result, indent=2))
    print(f"Wrote {path}")


def _print_features(f: dict) -> None:
    print(f"engine overhead at 1 worker: {f['overhead_1_worker']:.2f}x the single-process time, 1 thread (goal <= "
          f"1.15x); CPU {f['overhead_1_worker_cpu']:.2f}x; 2 workers / 1: {f['speedup_2_over_1']:.2f}x (goal >= 1.7x "
          f"on a quiet machine); 2 workers / single process on every core: {f['ray_2_vs_single_all_cores']:.2f}x")
    e = f["estimate"]
    print(f"1,000,000 photos at {e['per_core_rate']:.2f} photos/s a core, {e['efficiency']:.0%} efficiency "
          f"({'measured' if e['efficiency_measured'] else 'assumed: the machine was not quiet'}):")
    for row in e["rows"]:
        print(f"  {row['machines']} machines x {row['cores']} cores: {row['hours']:.1f} h")
    print(f"  the driver alone: checking the photos {e['driver_check_hours']:.1f} h, writing the cache "
          f"{e['driver_cache_write_hours']:.2f} h")


def _cpu() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
