"""Configure's time estimate vs the actual training time, for each preset, on the sample and on flowers.

    python bench/bench_estimates.py [--datasets sample,flowers] [--presets quick,balanced,best]
                                    [--flowers-per-class 50] [--no-warm-up] [--quick]

In one process, as the dashboard's server: VGG16 loaded once, this machine's rate measured
once by planning.measure_forward_rate(base) (what ui.resources.forward_rate does), then for each
data set (the bundled sample, 300 Fashion-MNIST photos; ~250 flowers photos, 50 per class, which
the presets train at up to 224 px) and preset:

  estimate  planning.plan(dataset, config, rate_at_224=rate, precision=choose_precision(...),
            cached_views=0, candidates=<Best's candidates for Best>) - the number Configure
            shows (ui.job_control.plan), with the preset's settings for these photos
            (presets.PRESETS[key].config(dataset)) and an empty cache
  actual    runs.pipeline.train_run(dataset, config, run_dir, cache=<fresh>, base_loader=<shared>,
            candidates=<Best's candidates for Best>) wall time, as the dashboard's job runs it

Goal: estimate / actual within +-35 %. Before timing, one untimed training on a few photos at
each image size the presets use pays the one-offs a running server has already paid (tracing,
oneDNN primitives); --no-warm-up measures a first training instead.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

TOLERANCE = 0.35


def make_data(name: str, root: Path, args):
    if name == "sample":
        if args.sample_per_class:
            return common.write_subset(common.SAMPLE_DIR, root / "sample", args.sample_per_class)
        return common.SAMPLE_DIR
    if name == "flowers":
        train, _ = common.write_flowers_sets(root / "flowers", train_per_class=args.flowers_per_class,
                                             test_per_class=0)
        return train
    raise SystemExit(f"unknown data set {name!r} (sample, flowers)")


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--datasets", default="sample,flowers")
    p.add_argument("--presets", default="quick,balanced,best")
    p.add_argument("--flowers-per-class", type=int, default=50)
    p.add_argument("--sample-per-class", type=int, default=0, help="default: the whole sample (60 per class)")
    p.add_argument("--no-warm-up", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.flowers_per_class, args.sample_per_class = 5, 6
    common.finish_args(args)

    started = time.perf_counter()
    common.weights_path()
    info = common.machine_info()
    common.print_machine(info)
    from quasar_core import planning
    from quasar_core.data import load_folder
    from quasar_core.features.cache import FeatureCache
    from quasar_core.features.precision import choose_precision
    from quasar_core.presets import PRESETS
    from quasar_core.runs.pipeline import train_run

    base_loader = common.shared_base_loader()
    base = base_loader()
    info["others_cpu_share_before_rate"] = common.quiet(args)
    rate = planning.measure_forward_rate(base)
    print(f"measure_forward_rate: {rate:.2f} photos/s at 224 px (float32, measured at 96 px and scaled by FLOPs)",
          flush=True)
    results = {"machine": info, "rate_at_224": rate, "datasets": {}}
    presets = [s.strip() for s in args.presets.split(",") if s.strip()]
    with common.work_dir(args, "quasar-bench-estimates-") as work:
        for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            dataset = load_folder(make_data(name, work / name, args))
            plans = {key: PRESETS[key].config(dataset) for key in presets}
            if not args.no_warm_up:
                sizes = sorted({c.image_size for key in presets for c in PRESETS[key].candidates(dataset)})
                few = dataset.subset([i for label in dataset.labels
                                      for i in [j for j, s in enumerate(dataset.samples) if s.label == label][:5]])
                for size in sizes:
                    print(f"[{name}] warm-up at {size} px (not timed) ...", flush=True)
                    train_run(few, plans[presets[0]].replace(image_size=size), work / name / f"warm-{size}",
                              cache=FeatureCache(work / name / f"warm-cache-{size}"), base_loader=base_loader)
            rows = {}
            for key in presets:
                config = plans[key]
                candidates = PRESETS[key].candidates(dataset) if key == "best" else None
                choice = choose_precision(config.precision)
                shown = planning.plan(dataset, config, rate_at_224=rate, precision=choice, cached_views=0,
                                      candidates=candidates)
                row = {"image_size": config.image_size, "views": config.views, "fine_tunes": config.fine_tunes,
                       "precision": choice.precision, "estimate": shown.time.total_seconds,
                       "estimate_phases": {"features": shown.time.feature_seconds, "head": shown.time.head_seconds,
                                           "fine_tune": shown.time.fine_tune_seconds,
                                           "overhead": shown.time.overhead_seconds}}
                if candidates:
                    row["candidates"] = [{"image_size": c.image_size, "views": c.views, "fine_tunes": c.fine_tunes}
                                         for c in candidates]
                row["others_share_before"] = common.quiet(args)
                print(f"[{name}] {key} ...", flush=True)
                watch = common.Stopwatch()
                run = train_run(dataset, config, work / name / f"run-{key}", cache=FeatureCache(work / name / f"cache-{key}"),
                                base_loader=base_loader, candidates=candidates)
                row["actual"] = watch.stop()
                if run.state != "done":
                    raise SystemExit(f"{name} {key} ended {run.state}: {run.status.message}")
                row["actual_timings"] = run.status.timings
                row["estimate_over_actual"] = row["estimate"] / row["actual"]["wall"]
                rows[key] = row
                print(f"[{name}] {key}: estimate {row['estimate']:.1f} s, actual {row['actual']['wall']:.1f} s "
                      f"(others {row['actual']['others_share']:.0%}) -> {row['estimate_over_actual']:.2f}", flush=True)
            results["datasets"][name] = {"photos": len(dataset), "rows": rows}

    print(f"\nConfigure's estimate vs train_run's wall time (rate {rate:.2f} photos/s at 224 px; goal within "
          f"+-{TOLERANCE:.0%})")
    print(f"  {'data':8} {'preset':9} {'px':>4} {'views':>5} {'FT':>3} {'estimate s':>10} {'actual s':>9} "
          f"{'est/act':>8} {'verdict':>8} {'others':>6}   estimate: features / head / fine-tune / overhead; "
          "actual timings")
    for name, data in results["datasets"].items():
        for key, row in data["rows"].items():
            off = abs(row["estimate_over_actual"] - 1)
            phases = row["estimate_phases"]
            timings = ", ".join(f"{k} {v:.1f}" for k, v in (row["actual_timings"] or {}).items())
            print(f"  {name:8} {key:9} {row['image_size']:>4} {row['views']:>5} {'y' if row['fine_tunes'] else 'n':>3} "
                  f"{row['estimate']:>10.1f} {row['actual']['wall']:>9.1f} {row['estimate_over_actual']:>8.2f} "
                  f"{'met' if off <= TOLERANCE else 'MISSED':>8} {row['actual']['others_share']:>6.0%}   "
                  f"{phases['features']:.1f} / {phases['head']:.1f} / {phases['fine_tune']:.1f} / "
                  f"{phases['overhead']:.1f}; {timings}")
    total = time.perf_counter() - started
    results["total_seconds"] = total
    print(f"total run time of bench_estimates.py: {total:.0f} s")
    print(f"results: {common.write_results('bench_estimates', results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
