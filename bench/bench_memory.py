"""Peak memory of a default training run, beside the planner's estimate.

    python bench/bench_memory.py [--data sample_data/fashion]

In a fresh Python process: load the bundled sample, TrainConfig() defaults with the image
size the engine suggests (quasar_core.data.suggest_image_size), and train through
quasar_core.runs.train_run exactly as the CLI does (VGG16 loaded inside, evaluation and
model saving included). Prints the process's peak RSS (VmHWM) and
planning.estimate_training_memory's estimate, which counts what training adds on top of the
process and the shared VGG16 base.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

TARGET_MB = 1.5 * 1024


def child(data: Path) -> dict:
    common.weights_path()
    import keras  # noqa: F401  (the import is part of the baseline)

    from quasar_core.config import TrainConfig
    from quasar_core.data import load_folder, suggest_image_size
    from quasar_core.planning import estimate_training_memory
    from quasar_core.runs import train_run

    result = {"rss_mb_after_imports": common.rss_mb()}
    dataset = load_folder(data)
    config = TrainConfig(image_size=suggest_image_size(dataset))
    result.update(n_images=len(dataset), image_size=config.image_size, config=config.to_dict(),
                  rss_mb_after_loading_data=common.rss_mb(),
                  estimate_mb=estimate_training_memory(config, len(dataset)) / 1024**2)
    with tempfile.TemporaryDirectory(prefix="quasar-bench-run-") as tmp:
        watch = common.Stopwatch()
        run = train_run(dataset, config, Path(tmp) / "run")
        result["run_seconds"] = watch.stop()
        result["peak_rss_mb"] = common.peak_rss_mb()
        result["rss_mb_after_run"] = common.rss_mb()
        result["test_accuracy"] = run.metrics.accuracy if run.metrics else None
        result["status"] = run.status
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(common.REPO_ROOT / "sample_data" / "fashion"))
    parser.add_argument("--max-wait", type=float, default=600, help="seconds to wait for a quiet machine")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        Path(args.out).write_text(json.dumps(child(Path(args.data)), default=str))
        return 0

    total_started = time.perf_counter()
    common.weights_path()
    info = common.machine_info()
    info["others_cpu_share_before"] = common.wait_for_quiet(args.max_wait)
    r = common.run_child(Path(__file__), "train", "--data", args.data)
    peak, estimate, base = r["peak_rss_mb"], r["estimate_mb"], r["rss_mb_after_loading_data"]
    print(f"Default training (TrainConfig() at the suggested {r['image_size']}px, {r['n_images']} images of "
          f"{args.data}) via train_run, fresh process:")
    print(f"  peak RSS {peak:.0f} MB (target <= {TARGET_MB:.0f} MB: {'met' if peak <= TARGET_MB else 'MISSED'})")
    print(f"  estimate_training_memory {estimate:.0f} MB (training's own part; VGG16 base and process excluded)")
    print(f"  process after imports and data {base:.0f} MB; peak minus that {peak - base:.0f} MB "
          f"(the estimate's part plus the ~60 MB VGG16 base): estimate/measured "
          f"{estimate / max(peak - base, 1):.2f}")
    print(f"  run wall {r['run_seconds']['wall']:.1f} s (CPU {r['run_seconds']['cpu']:.1f} s, other processes "
          f"{r['run_seconds']['others_share']:.0%} of the CPU), held-out accuracy {r['test_accuracy']:.3f}")
    total = time.perf_counter() - total_started
    print(f"total run time of bench_memory.py: {total:.0f} s")
    info["load_average_at_end"] = os.getloadavg()
    print(f"results: {common.write_results('bench_memory', {'machine': info, 'run': r, 'total_seconds': total})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
