"""The reported accuracy over many train/unseen splits: is the cross-validated estimate biased, how often
does its interval cover the accuracy on unseen photos?

    python bench/bench_splits.py [--dataset flowers|fashion] [--splits 8] [--train-per-class 40]
                                 [--test-per-class 100] [--image-size 224] [--precision int8]
                                 [--folds N] [--cv-repeats N] [--quick]

One split = flowers (bench/_datasets.write_flowers_sets with seed = split number) or Fashion-MNIST's
sample classes (write_fashion_sets: training images from the sample's pool, unseen ones from the
rest): per class `--train-per-class` photos to learn from and `--test-per-class` other photos
unseen. Per split, TransferClassifier(the Quick preset's settings at `--image-size`, `--precision`,
and `--folds` / `--cv-repeats` if given).fit(train) with one feature cache for all splits, then:
  reported  the run's out-of-fold evaluation (runs.pipeline.out_of_fold_evaluation: the accuracy
            and 95 % interval `quasar train` prints and metrics.json keeps)
  unseen    the kept head on the unseen photos' features (same precision, same cache)
  copies    near-copy groups among the training photos: the folds' (crossval.copy_groups) and the
            photo check's (near_copies.near_duplicates with thumbnails), which a leak across folds needs
One split's gap says little (the reported number rests on 200 photos, the unseen on 500); the
mean gap over the splits is the bias, its standard deviation what a user should expect.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
import _datasets as datasets  # noqa: E402


def run_split(number: int, work: Path, args, cache, base_loader) -> dict:
    import numpy as np

    from quasar_core import backbone
    from quasar_core.near_copies import copy_groups, power_normalise
    from quasar_core.data import Limits, load_folder
    from quasar_core.runs.pipeline import out_of_fold_evaluation
    from quasar_core.features.cache import FeatureSpec
    from quasar_core.features.extract import FeaturePass, network_provider
    from quasar_core.near_copies import dataset_thumbnails, near_duplicates
    from quasar_core.presets import PRESETS
    from quasar_core.training import TransferClassifier

    write_sets = datasets.write_flowers_sets if args.dataset == "flowers" else datasets.write_fashion_sets
    train_dir, test_dir = write_sets(work / f"split{number}", train_per_class=args.train_per_class,
                                     test_per_class=args.test_per_class, seed=number)
    limits = Limits.from_env(max_images=100_000)
    train, test = load_folder(train_dir, limits=limits), load_folder(test_dir, limits=limits)
    config = PRESETS["quick"].config(train).replace(image_size=args.image_size, precision=args.precision)
    config = config.replace(**{k: v for k, v in (("folds", args.folds), ("cv_repeats", args.cv_repeats)) if v})
    classifier = TransferClassifier(config, cache=cache, base_loader=base_loader).fit(train)
    reported = out_of_fold_evaluation(classifier, train)
    low, high = reported.accuracy_interval
    spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size,
                       classifier.precision_.precision)
    network_for = network_provider(weights=config.weights, image_size=config.image_size,
                                   precision=classifier.precision_.precision, base_loader=base_loader, cache=cache)
    unseen_features = FeaturePass(spec=spec, network_for=network_for, cache=cache).features(test, np.arange(len(test)))[0]
    truth = np.array([classifier.labels_.index(label) for label in test.labels])[test.targets()]
    unseen = float((classifier.head_.logits(unseen_features).argmax(1) == truth).mean())
    check_groups = near_duplicates(power_normalise(classifier.features_), classifier.targets_, classifier.labels_,
                                    [s.name for s in train.samples], thumbs=dataset_thumbnails(train, cache=cache))
    result = {"split": number, "n_train": len(train), "n_unseen": len(test), "reported": reported.accuracy,
              "method": reported.method, "interval": [low, high], "unseen": unseen,
              "gap_points": 100 * (reported.accuracy - unseen),
              "covered": low <= unseen <= high, "fold_copy_groups": int((np.bincount(copy_groups(classifier.features_)) > 1).sum()),
              "check_copy_groups": len(check_groups)}
    print(f"  split {number}: reported {result['reported']:.3f} ({low:.3f}-{high:.3f}), unseen {unseen:.3f} "
          f"({len(test)} photos): gap {result['gap_points']:+.1f} points, covered {result['covered']}; near-copy "
          f"groups: folds' {result['fold_copy_groups']}, photo check's {result['check_copy_groups']}", flush=True)
    return result


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--dataset", choices=("flowers", "fashion"), default="flowers")
    p.add_argument("--splits", type=int, default=8)
    p.add_argument("--train-per-class", type=int, default=40)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--precision", default="int8")
    p.add_argument("--folds", type=int, default=None, help="default: TrainConfig's")
    p.add_argument("--cv-repeats", type=int, default=None, help="default: TrainConfig's")
    args = p.parse_args(argv)
    if args.quick:
        args.splits, args.train_per_class, args.test_per_class, args.image_size = 2, 8, 10, 64
    started, info = common.begin(args)
    base_loader = common.shared_base_loader()
    from quasar_core.features.cache import FeatureCache

    common.quiet(args)
    print(f"{args.dataset}, {args.splits} splits: {args.train_per_class} a class to learn from, {args.test_per_class} "
          f"unseen, {args.image_size} px, {args.precision}", flush=True)
    with common.work_dir(args, "quasar-bench-splits-") as work:
        cache = FeatureCache(work / "features")
        rows = [run_split(number, work, args, cache, base_loader) for number in range(args.splits)]
    gaps = [row["gap_points"] for row in rows]
    mean = sum(gaps) / len(gaps)
    spread = (sum((g - mean) ** 2 for g in gaps) / max(len(gaps) - 1, 1)) ** 0.5
    summary = {"mean_gap_points": mean, "sd_gap_points": spread, "covered": sum(r["covered"] for r in rows),
               "within_5_points": sum(abs(g) <= 5 for g in gaps), "splits": len(rows)}
    print(f"reported - unseen: mean {mean:+.1f} points, standard deviation {spread:.1f}; interval covered the unseen "
          f"accuracy in {summary['covered']} of {len(rows)} splits, within 5 points in {summary['within_5_points']}")
    results = {"machine": info, "settings": vars(args), "splits": rows, "summary": summary,
               "total_seconds": time.perf_counter() - started}
    print(f"\ntotal run time of bench_splits.py: {results['total_seconds']:.0f} s")
    name = "bench_splits" if args.dataset == "flowers" else f"bench_splits_{args.dataset}"
    print(f"results: {common.write_results(name, results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
