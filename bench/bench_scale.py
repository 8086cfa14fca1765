"""Scale: peak memory of `quasar train` on 2,000 vs 20,000 photos, and Compare's time vs one training.

    python bench/bench_scale.py [--counts 2000,20000] [--image-size 32] [--photos-dir DIR]
                                [--compare-on 2000,20000] [--compare-cold] [--quick]

Synthetic 400x300 JPEG photos in 5 classes (a class is a shape - disc, square, triangle, stripes,
cross - in random colours, places and sizes on a noisy gradient; every photo differs) are
generated once into --photos-dir (default bench/results/scale_photos; 20,000 photos, ~0.3 GB)
and reused; the smaller set is the first photos of each class of the larger (symlinks).

For each count, in a child process with a fresh QUASAR_CACHE_DIR:
  `quasar train DIR --out RUN --image-size 32 --max-images N+100`  (the Quick preset otherwise)
  peak RSS = the child's VmHWM (wait4's ru_maxrss); goals: the larger <= 1.3x the smaller and
  <= 1.5 GB. Phases as in bench_vs_seed.py (bench/_train_probe.py).
Then `quasar compare DIR --out OUT --image-size 32` on the same photos with the training's cache
(as after a training in the dashboard: the ImageNet features are cached, the random-weights
pass is not; --compare-cold adds a run with a fresh cache): time vs that one training (goal
<= 2.5x) and its peak RSS.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

CLASSES = ("disc", "square", "triangle", "stripes", "cross")
WIDTH, HEIGHT = 400, 300
TARGET_PEAK_MB = 1.5 * 1024
MARKER = ".complete"


def make_photo(number: int, class_index: int, seed: int = 0) -> bytes:
    import io

    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, class_index, number])
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    t = (np.cos(angle) * xx / WIDTH + np.sin(angle) * yy / HEIGHT)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    pixels = a + (b - a) * t[..., None]
    noise = Image.fromarray(rng.integers(0, 60, (HEIGHT // 10, WIDTH // 10, 3), dtype=np.uint8))
    pixels = pixels + np.asarray(noise.resize((WIDTH, HEIGHT), Image.BILINEAR), np.float32) - 30
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    size = int(rng.uniform(50, 130))
    cx, cy = int(rng.uniform(size, WIDTH - size)), int(rng.uniform(size, HEIGHT - size))
    shape = CLASSES[class_index]
    if shape == "disc":
        draw.ellipse((cx - size, cy - size, cx + size, cy + size), fill=colour)
    elif shape == "square":
        draw.rectangle((cx - size, cy - size, cx + size, cy + size), fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - size), (cx - size, cy + size), (cx + size, cy + size)], fill=colour)
    elif shape == "stripes":
        for k in range(-3, 4):
            draw.rectangle((cx - size, cy + k * size // 3 - 6, cx + size, cy + k * size // 3 + 6), fill=colour)
    else:
        draw.rectangle((cx - size, cy - 14, cx + size, cy + 14), fill=colour)
        draw.rectangle((cx - 14, cy - size, cx + 14, cy + size), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _write_chunk(job) -> int:
    folder, class_index, numbers = job
    for number in numbers:
        (Path(folder) / CLASSES[class_index] / f"{CLASSES[class_index]}_{number:05d}.jpg").write_bytes(
            make_photo(number, class_index))
    return len(numbers)


def ensure_photos(root: Path, count: int) -> Path:
    """`count` synthetic photos (count / 5 per class) in root/synthetic-400x300-<count>, generated once."""
    from multiprocessing import Pool

    folder = Path(root) / f"synthetic-{WIDTH}x{HEIGHT}-{count}"
    if (folder / MARKER).is_file():
        return folder
    per_class = count // len(CLASSES)
    for name in CLASSES:
        (folder / name).mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder), c, list(range(start, min(per_class, start + 200))))
            for c in range(len(CLASSES)) for start in range(0, per_class, 200)]
    started = time.perf_counter()
    print(f"  generating {count} synthetic {WIDTH}x{HEIGHT} JPEG photos in {folder} (once) ...", flush=True)
    with Pool(common.cores()) as pool:
        done = 0
        for written in pool.imap_unordered(_write_chunk, jobs):
            done += written
    (folder / MARKER).write_text(str(done))
    print(f"  generated {done} photos in {time.perf_counter() - started:.0f} s", flush=True)
    return folder


def train(folder: Path, n: int, work: Path, args, cache: Path) -> dict:
    run_dir = work / "run"
    env = common.child_env(QUASAR_CACHE_DIR=cache)
    cli = ["train", folder, "--out", run_dir, "--image-size", args.image_size, "--max-images", n + 100]
    result = common.run_probe(cli, env=env, spans_file=work / "train-spans.json", log=work / "train.log")
    import json

    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"process": {k: v for k, v in result["process"].items() if k != "output_tail"},
            "phases": result["phases"], "cv_accuracy": metrics["accuracy"], "method": metrics.get("method"),
            "peak_rss_mb_before_exit": result["spans"].get("peak_rss_mb_before_exit")}


def compare(folder: Path, n: int, work: Path, args, cache: Path, label: str) -> dict:
    env = common.child_env(QUASAR_CACHE_DIR=cache)
    cli = ["compare", folder, "--out", work / f"compare-{label}", "--image-size", args.image_size,
           "--max-images", n + 100]
    result = common.run_probe(cli, env=env, spans_file=work / f"compare-{label}-spans.json",
                              log=work / f"compare-{label}.log")
    return {"process": {k: v for k, v in result["process"].items() if k != "output_tail"},
            "phases": result["phases"]}


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--counts", default="2000,20000", help="photo counts, smallest first (multiples of 5)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--photos-dir", default=str(common.RESULTS_DIR / "scale_photos"))
    p.add_argument("--compare-on", default=None, help="counts to run Compare on (default: every count)")
    p.add_argument("--compare-cold", action="store_true", help="also Compare with a fresh cache")
    args = p.parse_args(argv)
    if args.quick:
        args.counts = "100,400"
    common.finish_args(args)
    counts = sorted(int(c) for c in args.counts.split(",") if c.strip())
    compare_on = counts if args.compare_on is None else [int(c) for c in args.compare_on.split(",") if c.strip()]

    started = time.perf_counter()
    common.weights_path()
    info = common.machine_info()
    common.print_machine(info)
    from quasar_core.config import TrainConfig
    from quasar_core.planning import estimate_training_memory

    largest = ensure_photos(Path(args.photos_dir), max(counts))
    results = {"machine": info, "counts": {}, "image_size": args.image_size}
    with common.work_dir(args, "quasar-bench-scale-") as work:
        for n in counts:
            here = work / str(n)
            here.mkdir()
            folder = largest if n == max(counts) else common.write_subset(largest, here / "photos", n // len(CLASSES))
            cache = here / "features"
            share = common.quiet(args)
            print(f"[{n} photos] quasar train ...", flush=True)
            r = {"train": train(folder, n, here, args, cache), "others_share_before": share,
                 "estimate_mb": estimate_training_memory(TrainConfig(image_size=args.image_size), n) / 1024**2}
            t = r["train"]["process"]
            print(f"[{n} photos] train {t['wall']:.1f} s (CPU {t['cpu']:.1f} s, others {t['others_share']:.0%}), peak RSS "
                  f"{t['peak_rss_mb']:.0f} MB (planner's estimate of training's own part {r['estimate_mb']:.0f} MB), "
                  f"CV accuracy {r['train']['cv_accuracy']:.3f} ({r['train']['method']})", flush=True)
            if n in compare_on:
                common.quiet(args)
                print(f"[{n} photos] quasar compare (training's cache) ...", flush=True)
                r["compare"] = compare(folder, n, here, args, cache, "warm")
                if args.compare_cold:
                    common.quiet(args)
                    print(f"[{n} photos] quasar compare (fresh cache) ...", flush=True)
                    r["compare_cold"] = compare(folder, n, here, args, here / "features-cold", "cold")
                for key in ("compare", "compare_cold"):
                    if key in r:
                        c = r[key]["process"]
                        r[f"{key}_over_train"] = c["wall"] / t["wall"]
                        print(f"[{n} photos] {key}: {c['wall']:.1f} s (CPU {c['cpu']:.1f} s, others "
                              f"{c['others_share']:.0%}), peak RSS {c['peak_rss_mb']:.0f} MB; / one training "
                              f"{r[f'{key}_over_train']:.2f}x (goal <= 2.5x: "
                              f"{common.verdict(r[f'{key}_over_train'], at_most=2.5)})", flush=True)
            results["counts"][str(n)] = r
        small, large = results["counts"][str(counts[0])], results["counts"][str(counts[-1])]
        peak_small, peak_large = small["train"]["process"]["peak_rss_mb"], large["train"]["process"]["peak_rss_mb"]
        growth = peak_large / peak_small
        results["summary"] = {"peak_ratio": growth, "peak_large_mb": peak_large, "peak_small_mb": peak_small}
        print(f"\nPeak RSS of quasar train at {args.image_size} px: {counts[0]} photos {peak_small:.0f} MB, {counts[-1]} "
              f"photos {peak_large:.0f} MB -> {growth:.2f}x (goal <= 1.3x: {common.verdict(growth, at_most=1.3)}); "
              f"largest <= {TARGET_PEAK_MB:.0f} MB: {common.verdict(peak_large, at_most=TARGET_PEAK_MB)}")
        for n in compare_on:
            r = results["counts"].get(str(n), {})
            if "compare_over_train" in r:
                print(f"Compare / one training on {n} photos: {r['compare_over_train']:.2f}x (goal <= 2.5x: "
                      f"{common.verdict(r['compare_over_train'], at_most=2.5)})")
        print("phases of quasar train (s):")
        common.print_phases({f"{n} photos": results["counts"][str(n)]["train"]["phases"] for n in counts})
        compares = {f"compare {n}": results["counts"][str(n)]["compare"]["phases"] for n in compare_on
                    if "compare" in results["counts"].get(str(n), {})}
        if compares:
            print("phases of quasar compare (s):")
            common.print_phases(compares)
    total = time.perf_counter() - started
    results["total_seconds"] = total
    print(f"\ntotal run time of bench_scale.py: {total:.0f} s")
    print(f"results: {common.write_results('bench_scale', results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
