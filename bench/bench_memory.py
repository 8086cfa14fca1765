"""The memory guard's estimate against the measured peak: whole `python -m quasar_core train` processes.

For each preset (quick, balanced, best) a fresh process trains on ~250 real photos of flowers-full (50 per
class, symlinks to bench/results/flowers-full, never copied into the repo) with an empty feature cache of its
own; its peak RSS comes from wait4 (_common.run_process). The estimate is planning.estimate_training_memory
for the same dataset and preset (for Best, its candidates: the largest image size and views). The issue asks
the estimate to be within +-35 % of the peak.

    nice -n 10 python bench/bench_memory.py [--per-class 50] [--presets quick,balanced,best]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as common  # noqa: E402
from _datasets import write_flowers_sets  # noqa: E402

MB = 1024**2


def estimate_mb(train_dir: Path, preset_key: str, tried: list[dict] | None = None) -> dict:
    """planning's estimate for the preset on these photos; `tried`: the candidates a measured process tried
    (as saved), so a later change of the presets does not move the comparison."""
    from quasar_core import planning
    from quasar_core.config import TrainConfig
    from quasar_core.data import load_dataset
    from quasar_core.presets import PRESETS

    dataset = load_dataset(train_dir)
    preset = PRESETS[preset_key]
    config = preset.config(dataset)
    candidates = [TrainConfig.from_dict(c) for c in tried] if tried else preset.candidates(dataset)
    need = planning.estimate_training_memory(config, len(dataset), candidates=candidates)
    return {"photos": len(dataset), "image_size": config.image_size,
            "largest_size": max(c.image_size for c in candidates),
            "largest_views": max(c.views for c in candidates), "estimate_mb": need / MB,
            "candidates": [c.to_dict() for c in candidates]}


def _tried(row: dict) -> list[dict]:
    """The candidates a saved row tried (rows saved before they were recorded: rebuilt from its sizes and views)."""
    if row.get("candidates"):
        return row["candidates"]
    from quasar_core.config import Augmentation, TrainConfig

    configs = []
    for size in sorted({row["image_size"], row["largest_size"]}):
        configs.append(TrainConfig(image_size=size))
        if row["largest_views"] > 1:
            configs.append(TrainConfig(image_size=size, augment=True,
                                       augmentation=Augmentation(views=row["largest_views"])))
    return [c.to_dict() for c in configs]


def report(row: dict) -> None:
    print(f"{row['preset']:9s} {row['photos']} photos at {row['image_size']} px (largest {row['largest_size']} px "
          f"x{row['largest_views']}): estimate {row['estimate_mb']:.0f} MB, measured peak {row['peak_mb']:.0f} MB "
          f"({row['error']:+.0%}, {common.verdict(abs(row['error']), at_most=0.35)}), {row['wall']:.0f} s, "
          f"others {row['others_share']:.0%}", flush=True)


def estimates_only(args) -> None:
    """The saved peaks against the estimate as it is now (after calibrating planning's constants)."""
    import json

    saved = json.loads((common.RESULTS_DIR / f"{args.name}.json").read_text())
    with tempfile.TemporaryDirectory(prefix="quasar-bench-memory-") as tmp:
        train_dir, _ = write_flowers_sets(Path(tmp) / "photos", train_per_class=args.per_class, test_per_class=0)
        for row in saved["rows"]:
            row.update(estimate_mb(train_dir, row["preset"], _tried(row)))
            row["error"] = (row["estimate_mb"] - row["peak_mb"]) / row["peak_mb"]
            report(row)
    common.write_results(args.name, saved)


def main() -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--presets", default="quick,balanced,best")
    parser.add_argument("--name", default="bench_memory", help="the results file's name in bench/results/")
    parser.add_argument("--estimates-only", action="store_true",
                        help="recompute the estimates for the peaks saved in bench/results/bench_memory.json")
    args = common.finish_args(parser.parse_args())
    common.weights_path()
    if args.estimates_only:
        return estimates_only(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="quasar-bench-memory-") as tmp:
        root = Path(tmp)
        train_dir, _ = write_flowers_sets(root / "photos", train_per_class=args.per_class, test_per_class=0)
        for key in args.presets.split(","):
            planned = estimate_mb(train_dir, key)
            env = common.child_env(QUASAR_CACHE_DIR=root / f"cache-{key}")
            process = common.run_process([sys.executable, "-m", "quasar_core", "train", str(train_dir),
                                          "--preset", key, "--out", str(root / f"run-{key}")],
                                         env=env, log=Path(tempfile.gettempdir()) / f"bench_memory_{key}.log")
            peak = process["peak_rss_mb"]
            row = {"preset": key, **planned, "peak_mb": peak, "wall": process["wall"],
                   "others_share": process["others_share"],
                   "error": (planned["estimate_mb"] - peak) / peak}
            rows.append(row)
            report(row)
            common.write_results(args.name, {"machine": common.machine_info(), "rows": rows}, quick=args.quick)
    common.write_results(args.name, {"machine": common.machine_info(), "rows": rows}, quick=args.quick)


if __name__ == "__main__":
    main()
