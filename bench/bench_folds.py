"""How the folds are dealt, measured on many splits at once: which scheme's estimate is closest to the kept
model's accuracy on unseen photos, and is the kept head at least as good as a plain linear probe?

    python bench/bench_folds.py [--datasets flowers,fashion] [--splits 40] [--train-per-class 40]
                                [--unseen 500] [--image-size 224] [--precision int8] [--quick]

VGG16 runs once per photo: every flowers photo and 3,000 Fashion-MNIST images of the sample's classes
(1,500 from the sample's pool, 1,500 from the rest) through a FeaturePass at `--image-size` and
`--precision`, into one feature cache. Then, on the cached features only, for each of `--splits` seeded
splits (per class `--train-per-class` photos to learn from, `--unseen` other photos unseen):
  schemes   crossval.cross_validate over cross_validation_folds with k folds dealt r times (5x1, the
            old default; 5x3; 10x1; 10x3, the default; 10x5), the mean of the dealings' out-of-fold
            probabilities scored against the labels, and its 95 % Wilson interval; minus the kept
            head's unseen accuracy (fit_head on every training photo at the strength the first
            dealing chose)
  probe     scikit-learn LogisticRegression() (defaults) on the same training features vs the kept
            head (the default scheme's strength), both on the unseen features
Per scheme: mean and standard deviation of estimate - unseen, splits within 5 points, splits covered.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
import _datasets as datasets  # noqa: E402

SCHEMES = ((5, 1), (5, 3), (10, 1), (10, 3), (10, 5))  # (folds, dealings)
SCHEME_NAMES = [f"{folds}x{dealings}" for folds, dealings in SCHEMES]
FASHION_PER_CLASS = 300


def all_features(name: str, work: Path, args, cache, base_loader):
    """(features, targets) of every photo of the data set, from the cache after the first time."""
    import numpy as np

    from quasar_core import backbone
    from quasar_core.data import Limits, load_folder
    from quasar_core.features.cache import FeatureSpec
    from quasar_core.features.extract import FeaturePass, network_provider

    if name == "flowers":
        folders = [datasets.flowers_dir()]
    else:
        per_class = 12 if args.quick else FASHION_PER_CLASS
        folders = list(datasets.write_fashion_sets(work / "fashion", train_per_class=per_class,
                                                   test_per_class=per_class, seed=0))
    weights = common.weights_path()
    spec = FeatureSpec(backbone.weights_id(weights, seed=0), args.image_size, args.precision)
    network_for = network_provider(weights=weights, image_size=args.image_size, precision=args.precision,
                                   base_loader=base_loader, cache=cache)
    parts, targets = [], []
    for folder in folders:
        dataset = load_folder(folder, limits=Limits.from_env(max_images=100_000))
        parts.append(FeaturePass(spec=spec, network_for=network_for, cache=cache).features(
            dataset, np.arange(len(dataset)))[0])
        targets.append(dataset.targets())
    return np.concatenate(parts), np.concatenate(targets)


def one_split(x_all, y_all, number: int, args) -> dict:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from quasar_core.crossval import cross_validate
    from quasar_core.near_copies import copy_groups
    from quasar_core.data.split import cross_validation_folds
    from quasar_core.evaluation import wilson_interval
    from quasar_core.head import fit_head

    classes = int(y_all.max()) + 1
    rng = np.random.default_rng([number, 17])
    train = np.concatenate([rng.permutation(np.flatnonzero(y_all == c))[:args.train_per_class] for c in range(classes)])
    unseen = rng.permutation(np.setdiff1d(np.arange(len(y_all)), train))[:args.unseen]
    x, y = x_all[train], y_all[train]
    groups = copy_groups(x)

    def unseen_accuracy(predict) -> float:
        return float((predict(x_all[unseen]) == y_all[unseen]).mean())

    row = {"split": number, "schemes": {}}
    for folds, repeats in SCHEMES:
        dealt = cross_validation_folds(y, n_folds=folds, seed=0, groups=groups, repeats=repeats)
        validation = cross_validate(x[None], y, dealt, n_classes=classes)
        estimate = float((validation.predicted() == y).mean())
        low, high = wilson_interval(int(round(estimate * len(y))), len(y))
        head = fit_head(x, y, n_classes=classes, strength=validation.strength)
        kept = unseen_accuracy(lambda f: head.logits(f).argmax(1))
        row["schemes"][f"{folds}x{repeats}"] = {"estimate": estimate, "unseen": kept, "gap_points": 100 * (estimate - kept),
                                                "covered": bool(low <= kept <= high), "strength": validation.strength}
    probe = LogisticRegression(max_iter=5000).fit(x, y)
    row["probe_unseen"] = unseen_accuracy(probe.predict)
    row["default_unseen"] = row["schemes"]["10x3"]["unseen"]
    return row


def summarise(rows: list[dict]) -> dict:
    import numpy as np

    summary = {}
    for key in SCHEME_NAMES:
        gaps = np.array([r["schemes"][key]["gap_points"] for r in rows])
        summary[key] = {"mean_gap_points": float(gaps.mean()), "sd_gap_points": float(gaps.std(ddof=1)) if len(gaps) > 1 else 0.0,
                        "within_5_points": int((np.abs(gaps) <= 5).sum()),
                        "covered": int(sum(r["schemes"][key]["covered"] for r in rows)), "splits": len(rows)}
    gains = np.array([100 * (r["default_unseen"] - r["probe_unseen"]) for r in rows])
    summary["default_minus_probe_points"] = {"mean": float(gains.mean()),
                                             "se": float(gains.std(ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else 0.0,
                                             "default_at_least_probe": int((gains >= 0).sum())}
    return summary


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--datasets", default="flowers,fashion")
    p.add_argument("--splits", type=int, default=40)
    p.add_argument("--train-per-class", type=int, default=40)
    p.add_argument("--unseen", type=int, default=500)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--precision", default="int8")
    args = p.parse_args(argv)
    if args.quick:
        args.datasets, args.splits, args.train_per_class, args.unseen, args.image_size = "fashion", 2, 10, 10, 32
    started, info = common.begin(args)
    base_loader = common.shared_base_loader()
    from quasar_core.features.cache import FeatureCache

    results = {"machine": info, "settings": vars(args), "datasets": {}}
    with common.work_dir(args, "quasar-bench-folds-") as work:
        cache = FeatureCache(work / "features")
        for name in args.datasets.split(","):
            x_all, y_all = all_features(name, work, args, cache, base_loader)
            print(f"{name}: {len(y_all)} photos' features at {args.image_size} px ({args.precision}); {args.splits} "
                  f"splits of {args.train_per_class} a class to learn from, {args.unseen} unseen", flush=True)
            rows = [one_split(x_all, y_all, number, args) for number in range(args.splits)]
            summary = summarise(rows)
            for key in SCHEME_NAMES:
                s = summary[key]
                print(f"  {key}: estimate - unseen {s['mean_gap_points']:+.2f} points (sd {s['sd_gap_points']:.2f}), "
                      f"within 5 points {s['within_5_points']}/{s['splits']}, covered {s['covered']}/{s['splits']}")
            probe = summary["default_minus_probe_points"]
            print(f"  kept head (10x3) - linear probe on unseen photos: {probe['mean']:+.2f} points (se {probe['se']:.2f}); "
                  f"at least the probe in {probe['default_at_least_probe']}/{len(rows)} splits", flush=True)
            results["datasets"][name] = {"splits": rows, "summary": summary}
    results["total_seconds"] = time.perf_counter() - started
    print(f"\ntotal run time of bench_folds.py: {results['total_seconds']:.0f} s")
    print(f"results: {common.write_results('bench_folds', results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
