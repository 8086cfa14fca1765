"""Best accuracy on ~250 real photos of about 500 x 375 px: the whole `quasar train --preset best` process
(wall time, peak RSS) against Configure's estimate for the same photos.

    python bench/bench_best.py [--per-class 50] [--min-side 330] [--preset best] [--quick]

The photos: per class the first `--per-class` flowers-full photos (seeded order) whose shorter side is at
least `--min-side` px (most are 500 x 333-375), symlinked into a folder. The estimate is what Configure
shows: planning.plan(dataset, config, rate_at_224=<this machine's float32 rate, measured as the dashboard
measures it>, precision=<auto's choice>, candidates=<Best's candidates>) with an empty cache. The training
is its own process with a fresh feature cache and the int8 model already on disk (every training after a
machine's first), timed from launch to exit; peak RSS from wait4.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

TOLERANCE = 0.35


def large_photos(root: Path, per_class: int, min_side: int, seed: int = 0) -> Path:
    import numpy as np
    from PIL import Image

    source = common.flowers_dir()
    for number, folder in enumerate(sorted(p for p in source.iterdir() if p.is_dir())):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in common.PHOTO_SUFFIXES)
        chosen = 0
        for index in np.random.default_rng([seed, number]).permutation(len(files)):
            with Image.open(files[index]) as image:
                if min(image.size) < min_side:
                    continue
            (root / folder.name).mkdir(parents=True, exist_ok=True)
            (root / folder.name / files[index].name).symlink_to(files[index])
            chosen += 1
            if chosen == per_class:
                break
    return root


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--min-side", type=int, default=330)
    p.add_argument("--preset", default="best")
    args = p.parse_args()
    common.begin(args)
    if args.quick:
        args.per_class = 4

    from quasar_core import planning
    from quasar_core.data import load_folder
    from quasar_core.features.precision import choose_precision
    from quasar_core.presets import PRESETS

    with common.work_dir(args, "quasar-bench-best-") as work:
        photos = large_photos(work / "photos", args.per_class, args.min_side)
        dataset = load_folder(photos)
        preset = PRESETS[args.preset]
        config = preset.config(dataset)
        candidates = preset.candidates(dataset) if args.preset == "best" else None
        common.quiet(args)
        rate = planning.measure_forward_rate(common.shared_base_loader()())
        shown = planning.plan(dataset, config, rate_at_224=rate, precision=choose_precision(config.precision),
                              cached_views=0, candidates=candidates)
        print(f"{len(dataset)} photos, median shorter side {dataset.median_source_side():.0f} px; candidates: "
              f"{', '.join(f'{c.image_size} px' + (' + augmented' if c.augment else '') for c in candidates or [config])}")
        env = common.child_env(QUASAR_CACHE_DIR=work / "cache")
        # the int8 model built once beforehand (not what is measured: every training after a machine's first)
        common.run_process([sys.executable, "-m", "quasar_core", "train", str(photos), "--out", str(work / "warm"),
                            "--preset", "quick"], env=common.child_env(QUASAR_CACHE_DIR=work / "warm-cache"))
        common.quiet(args)
        trained = common.run_process([sys.executable, "-m", "quasar_core", "train", str(photos), "--out",
                                      str(work / "run"), "--preset", args.preset], env=env, log=work / "train.log")
        ratio = shown.time.total_seconds / trained["wall"]
        print(f"{args.preset}: whole process {trained['wall']:.1f} s (CPU {trained['cpu']:.1f} s), peak RSS "
              f"{trained['peak_rss_mb']:.0f} MB, others {trained['others_share']:.0%} of the CPU; Configure's "
              f"estimate {shown.time.total_seconds:.1f} s ({rate:.2f} photos/s float32 at 224 px) -> "
              f"estimate / actual {ratio:.2f} ({'within' if abs(ratio - 1) <= TOLERANCE else 'OUTSIDE'} "
              f"+-{TOLERANCE:.0%})")
        print("\n".join(line for line in (work / "train.log").read_text(errors="replace").splitlines()
                        if "won" in line or "Trying" in line or "Skipping" in line)[-2000:])


if __name__ == "__main__":
    main()
