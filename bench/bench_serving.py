"""Evaluate and predict through the feature pass: `quasar evaluate`'s peak memory and speed, and its memory from
500 to 5,000 photos.

    python bench/bench_serving.py --run RUN --photos DIR [--counts 500,5000] [--synthetic-dir DIR] [--quick]

1. Real photos at the run's size (issue 28: a 352 px model on 150 real photos): in fresh child processes, one at
   a time, the training's feature pass (FeaturePass with the run's precision, as TransferClassifier builds it,
   no cache) over DIR's photos, then `evaluate_run` on the same photos (no cache): photos/s of each, including
   opening the network, and their ratio (goal >= 0.8x). Then the whole `quasar evaluate RUN DIR --json` with a
   fresh QUASAR_CACHE_DIR: wall time and peak RSS (wait4's ru_maxrss, the child's VmHWM; goal <= 1.5 GB).
2. Memory against the number of photos: synthetic 400x300 JPEGs (bench_scale.py's shapes) in --synthetic-dir
   (default: a temporary folder, never the repository); a run trained at 64 px on 500 of them, then
   `quasar evaluate` on 500 and on 5,000 (fresh caches): peak RSS of each and the ratio (goal <= 1.2x).

Results: bench/results/serving.json (or serving.quick.json).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

PEAK_GOAL_MB = 1.5 * 1024
RATE_GOAL = 0.8
GROWTH_GOAL = 1.2


def child(arm: str, run_dir: str, photos: str, out: str) -> None:
    """In a fresh process: time the training's feature pass ("pass") or evaluate_run ("evaluate") on the photos."""
    import numpy as np

    from quasar_core import backbone
    from quasar_core.data import Limits, load_dataset
    from quasar_core.runs.folder import Run

    run = Run.open(run_dir)
    dataset = load_dataset(photos, limits=Limits(max_images=100_000))
    started = time.perf_counter()
    if arm == "pass":
        from quasar_core.features.cache import FeatureSpec
        from quasar_core.features.extract import FeaturePass, network_provider

        config = run.config
        precision = run.status.precision or "float32"
        spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, precision)
        provider = network_provider(weights=config.weights, image_size=config.image_size, precision=precision,
                                    base_loader=backbone.base_loader(config.weights, seed=config.seed), cache=None)
        feature_pass = FeaturePass(spec=spec, network_for=provider, cache=None)
        feature_pass.features(dataset, np.arange(len(dataset)))
        extra = {"precision": precision, "load_seconds": feature_pass.load_seconds}
    else:
        from quasar_core.runs.pipeline import evaluate_run
        from quasar_core.runs.serving import served_model

        evaluation = evaluate_run(run, dataset)
        served = served_model(run)
        extra = {"precision": served.precision, "route": served.route, "accuracy": evaluation.accuracy}
    seconds = time.perf_counter() - started
    Path(out).write_text(json.dumps({"arm": arm, "photos": len(dataset), "seconds": seconds,
                                     "photos_per_second": len(dataset) / seconds, "peak_rss_mb": common.peak_rss_mb(),
                                     **extra}))


def timed_child(arm: str, run_dir: Path, photos: Path, work: Path) -> dict:
    out = work / f"{arm}.json"
    command = [sys.executable, __file__, "--child", arm, "--run", str(run_dir), "--photos", str(photos),
               "--child-out", str(out)]
    process = common.run_process(command, env=common.child_env(QUASAR_CACHE_DIR=work / f"cache-{arm}"),
                                 log=work / f"{arm}.log")
    return {**json.loads(out.read_text()), "process_wall": process["wall"], "process_cpu": process["cpu"],
            "others_share": process["others_share"]}


def evaluate_cli(run_dir: Path, photos: Path, work: Path, label: str) -> dict:
    command = [sys.executable, "-m", "quasar_core", "evaluate", str(run_dir), str(photos), "--json",
               "--max-images", "100000"]
    process = common.run_process(command, env=common.child_env(QUASAR_CACHE_DIR=work / f"cache-cli-{label}"),
                                 log=work / f"evaluate-{label}.log")
    text = (work / f"evaluate-{label}.log").read_text(errors="replace")
    accuracy = None
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                accuracy = json.loads(line).get("accuracy")
            except ValueError:
                pass
    return {"wall": process["wall"], "peak_rss_mb": process["peak_rss_mb"], "others_share": process["others_share"],
            "accuracy": accuracy}


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--run", help="a trained run folder (the 352 px model)")
    p.add_argument("--photos", help="a folder of class folders: the real photos to evaluate on")
    p.add_argument("--counts", default="500,5000")
    p.add_argument("--synthetic-dir", default=None, help="where the synthetic photos go (default: temporary)")
    p.add_argument("--repeats", type=int, default=2, help="rounds of (training pass, evaluate), medians reported")
    p.add_argument("--skip-real", action="store_true")
    p.add_argument("--skip-growth", action="store_true")
    p.add_argument("--child", default=None, help=argparse_hidden())
    p.add_argument("--child-out", default=None, help=argparse_hidden())
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.run, args.photos, args.child_out)
        return 0
    started, info = common.begin(args)
    with common.work_dir(args, "quasar-bench-serving-") as work:
        results = measure(args, work, info)
    results["seconds"] = time.perf_counter() - started
    print(f"results: {common.write_results('serving', results, quick=args.quick)}")
    return 0


def measure(args, work: Path, info: dict) -> dict:
    results: dict = {"machine": info}
    if not args.skip_real:
        run_dir, photos = Path(args.run), Path(args.photos)
        rounds = []
        for number in range(args.repeats):  # the two arms alternate, so a change in the load hits both
            common.quiet(args)
            feature_pass = timed_child("pass", run_dir, photos, work)
            common.quiet(args)
            evaluate = timed_child("evaluate", run_dir, photos, work)
            rounds.append({"pass": feature_pass, "evaluate": evaluate})
            print(f"  round {number + 1}: training pass {feature_pass['photos_per_second']:.2f} photos/s "
                  f"(others {feature_pass['others_share']:.0%}, {feature_pass['process_cpu']:.0f} CPU s), evaluate "
                  f"{evaluate['photos_per_second']:.2f} photos/s (others {evaluate['others_share']:.0%}, "
                  f"{evaluate['process_cpu']:.0f} CPU s)")
        feature_pass = {"photos": rounds[0]["pass"]["photos"],
                        "photos_per_second": median([r["pass"]["photos_per_second"] for r in rounds]),
                        "process_cpu": median([r["pass"]["process_cpu"] for r in rounds])}
        evaluate = {"precision": rounds[0]["evaluate"]["precision"],
                    "photos_per_second": median([r["evaluate"]["photos_per_second"] for r in rounds]),
                    "process_cpu": median([r["evaluate"]["process_cpu"] for r in rounds])}
        common.quiet(args)
        cli = evaluate_cli(run_dir, photos, work, "real")
        ratio = evaluate["photos_per_second"] / feature_pass["photos_per_second"]
        cpu_ratio = feature_pass["process_cpu"] / evaluate["process_cpu"]
        results["real"] = {"run": str(run_dir), "photos": feature_pass["photos"], "rounds": rounds,
                           "pass": feature_pass, "evaluate": evaluate, "cli": cli, "rate_ratio": ratio,
                           "cpu_ratio": cpu_ratio}
        print(f"real photos ({feature_pass['photos']}, {json.loads((run_dir / 'config.json').read_text())['image_size']}"
              f" px, {evaluate['precision']}): training pass {feature_pass['photos_per_second']:.2f} photos/s, "
              f"evaluate {evaluate['photos_per_second']:.2f} photos/s -> {ratio:.2f}x "
              f"{common.verdict(ratio, at_least=RATE_GOAL)} (medians of {args.repeats}); by CPU seconds "
              f"(the training pass's / evaluate's, whole child process) {cpu_ratio:.2f}x")
        print(f"  quasar evaluate: {cli['wall']:.1f} s, peak RSS {cli['peak_rss_mb']:.0f} MB "
              f"{common.verdict(cli['peak_rss_mb'], at_most=PEAK_GOAL_MB)}, accuracy {cli['accuracy']}")
    if not args.skip_growth:
        import bench_scale

        counts = [int(c) for c in args.counts.split(",")]
        if args.quick:
            counts = [50, 150]
        root = Path(args.synthetic_dir) if args.synthetic_dir else work / "synthetic"
        largest = bench_scale.ensure_photos(root, max(counts))
        folders = {}
        for count in counts:
            folder = work / f"photos-{count}"
            for name in bench_scale.CLASSES:
                (folder / name).mkdir(parents=True, exist_ok=True)
                for path in sorted((largest / name).glob("*.jpg"))[: count // len(bench_scale.CLASSES)]:
                    (folder / name / path.name).symlink_to(path)
            folders[count] = folder
        small_run = work / "run-64"
        common.run_process([sys.executable, "-m", "quasar_core", "train", str(folders[counts[0]]), "--out",
                            str(small_run), "--image-size", "64", "--no-augment", "--max-images", "100000"],
                           env=common.child_env(QUASAR_CACHE_DIR=work / "cache-train-64"), log=work / "train-64.log")
        growth = {}
        for count in counts:
            common.quiet(args)
            growth[count] = evaluate_cli(small_run, folders[count], work, f"synthetic-{count}")
            print(f"  quasar evaluate, {count} synthetic photos at 64 px: {growth[count]['wall']:.1f} s, "
                  f"peak RSS {growth[count]['peak_rss_mb']:.0f} MB")
        ratio = growth[counts[-1]]["peak_rss_mb"] / growth[counts[0]]["peak_rss_mb"]
        results["growth"] = {"counts": counts, "runs": growth, "ratio": ratio}
        print(f"memory {counts[-1]} / {counts[0]} photos: {ratio:.2f}x {common.verdict(ratio, at_most=GROWTH_GOAL)}")
    return results


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
