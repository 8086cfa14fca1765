"""Soak: N trainings of the bundled sample through quasar_core.jobs.JobQueue in ONE process, RSS after each.

    python bench/bench_soak.py [--trainings 8] [--image-size N] [--cache fresh|shared]
                               [--cycle auto] [--quick]

As the dashboard's server does: one process, one shared VGG16 base (loaded on first use), a
JobQueue admitting one job at a time, each training a jobs.TrainingJob of the sample
(sample_data/fashion) with the Quick preset's settings into its own run folder. With
--cache fresh (default) each training gets a new feature cache, so VGG16 runs every time (the
hardest case for leaks); --cache shared keeps one (the later trainings read features from it).
--cycle takes a comma-separated list of precisions used in turn (e.g. auto,int8,bfloat16 to
exercise every network; default auto).

After each training (gc.collect() first) the process's RSS is printed; the result is the
growth from after the 3rd training to after the last (goal <= 150 MB): the first trainings
pay one-offs (TensorFlow, the traced network, oneDNN's primitives), later growth is a leak.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

GOAL_MB = 150


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--trainings", type=int, default=8)
    p.add_argument("--image-size", type=int, default=None, help="default: the Quick preset's size for the sample")
    p.add_argument("--cache", choices=("fresh", "shared"), default="fresh")
    p.add_argument("--cycle", default="auto", help="precisions used in turn, comma-separated")
    p.add_argument("--per-class", type=int, default=0, help="photos per class of the sample (default: all 60)")
    args = p.parse_args(argv)
    if args.quick:
        args.trainings, args.image_size, args.per_class = 4, args.image_size or 32, 10
    common.finish_args(args)

    started = time.perf_counter()
    common.weights_path()
    info = common.machine_info()
    common.print_machine(info)
    from quasar_core import jobs
    from quasar_core.data import load_folder
    from quasar_core.features.cache import FeatureCache
    from quasar_core.presets import PRESETS

    precisions = [s.strip() for s in args.cycle.split(",") if s.strip()]
    rows = []
    with common.work_dir(args, "quasar-bench-soak-") as work:
        source = common.SAMPLE_DIR if not args.per_class else common.write_subset(common.SAMPLE_DIR, work / "sample",
                                                                                  args.per_class)
        dataset = load_folder(source)
        config = PRESETS["quick"].config(dataset)
        if args.image_size:
            config = config.replace(image_size=args.image_size)
        queue = jobs.JobQueue(max_running=1)
        base_loader = common.shared_base_loader()
        info["others_cpu_share_before"] = common.quiet(args)
        gc.collect()
        rss_start = common.rss_mb()
        print(f"{args.trainings} trainings of {len(dataset)} photos at {config.image_size} px in one process "
              f"(cache {args.cache}, precisions {', '.join(precisions)}); RSS at start {rss_start:.0f} MB", flush=True)
        print(f"  {'#':>2} {'precision':9} {'state':6} {'wall s':>7} {'others':>6} {'RSS MB':>7} {'peak MB':>8} "
              f"{'threads':>7}", flush=True)
        shared_cache = FeatureCache(work / "features")
        for number in range(1, args.trainings + 1):
            precision = precisions[(number - 1) % len(precisions)]
            cache = shared_cache if args.cache == "shared" else FeatureCache(work / f"features-{number}")
            job = jobs.TrainingJob(dataset, config.replace(precision=precision), work / "runs" / f"run-{number:02d}",
                                   owner="soak", base_loader=base_loader, cache=cache)
            watch = common.Stopwatch()
            queue.submit(job)
            while not queue.wait(job, timeout=1.0):
                job.seen()  # as the page's poll does: a job nobody looks at is not abandoned
            timing = watch.stop()
            if job.state != "done":
                raise SystemExit(f"training {number} ended {job.state}: {job.error}")
            del job, cache
            gc.collect()
            import threading

            row = {"number": number, "precision": precision, "wall": timing["wall"],
                   "others_share": timing["others_share"], "rss_mb": common.rss_mb(), "peak_rss_mb": common.peak_rss_mb(),
                   "threads": threading.active_count()}
            rows.append(row)
            print(f"  {number:>2} {precision:9} {'done':6} {row['wall']:>7.1f} {row['others_share']:>6.0%} "
                  f"{row['rss_mb']:>7.0f} {row['peak_rss_mb']:>8.0f} {row['threads']:>7}", flush=True)
    third = rows[min(2, len(rows) - 1)]
    growth = rows[-1]["rss_mb"] - third["rss_mb"]
    per_training = growth / max(1, len(rows) - 1 - min(2, len(rows) - 1))
    print(f"\nRSS growth from after training {third['number']} to after training {rows[-1]['number']}: {growth:+.0f} MB "
          f"({per_training:+.1f} MB per training; goal <= {GOAL_MB} MB: {common.verdict(growth, at_most=GOAL_MB)}); "
          f"from the start {rows[-1]['rss_mb'] - rss_start:+.0f} MB")
    total = time.perf_counter() - started
    print(f"total run time of bench_soak.py: {total:.0f} s")
    path = common.write_results("bench_soak", {
        "machine": info, "rows": rows, "rss_start_mb": rss_start, "growth_mb_3rd_to_last": growth,
        "settings": {"trainings": args.trainings, "image_size": config.image_size, "cache": args.cache,
                     "cycle": precisions, "photos": len(dataset)}, "total_seconds": total}, quick=args.quick)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
