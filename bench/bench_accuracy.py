"""Honest numbers: accuracy on unseen photos per precision, the reported interval vs reality, the head vs a plain
linear probe, Best vs Quick.

    python bench/bench_accuracy.py [--datasets flowers,fashion] [--precisions float32,bfloat16,int8]
                                   [--flowers-train 50] [--flowers-test 200] [--fashion-train 40]
                                   [--fashion-test 100] [--image-size N] [--no-presets] [--quick]

Data (per class): flowers (real colour photos, /work/scratch/flowers) 50 to train, 200 other
photos unseen (--flowers-test 0: all the rest, ~4,000); Fashion-MNIST (the sample's five
classes, scripts/make_sample_dataset.py's code) 40 to train from images 0..29,999, 100 unseen
from 30,000 on. The same splits for every arm. In one process, with one feature cache:

  per precision   TransferClassifier(config).fit(train) with the CLI's default settings for these
                  photos (the Quick preset: presets.PRESETS["quick"].config(train)) and precision
                  forced; then
                  - reported: the run's cross-validated accuracy and 95 % interval
                    (runs.pipeline.out_of_fold_evaluation, what `quasar train` prints)
                  - unseen:   predict_proba on the unseen photos (the deployed model: float32 VGG16)
                  - unseen, features at the training precision: the kept head on the unseen photos'
                    features from a FeaturePass at that precision
                  - linear probe: sklearn LogisticRegression() (defaults) fitted on the same cached
                    training features (every photo), scored on the same unseen features
                  does the reported interval cover the unseen accuracy? within 5 points?
  presets         Quick (one setting) vs Best (selection.fit_best over presets.PRESETS["best"]
                  .candidates(train): Quick's setting, the suggested size, augmentation,
                  fine-tuning), each on the unseen photos via predict_proba, precision "auto"
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

CHUNK = 32


def unseen_probabilities(classifier, test):
    import numpy as np

    parts = []
    for start in range(0, len(test), CHUNK):
        parts.append(classifier.predict_proba([test.pixels(i) for i in range(start, min(len(test), start + CHUNK))]))
    return np.concatenate(parts)


def features_at(test, config, precision: str, cache, base_loader):
    import numpy as np

    from quasar_core import backbone
    from quasar_core.features.cache import FeatureSpec
    from quasar_core.features.extract import FeaturePass, network_provider

    spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, precision)
    network_for = network_provider(weights=config.weights, image_size=config.image_size, precision=precision,
                                   base_loader=base_loader, cache=cache)
    return FeaturePass(spec=spec, network_for=network_for, cache=cache).features(test, np.arange(len(test)))[0]


def accuracy_with_interval(right: int, n: int) -> dict:
    from quasar_core.evaluation import wilson_interval

    return {"accuracy": right / n, "interval": list(wilson_interval(right, n)), "n": n}


def reported_of(classifier, train) -> dict:
    from quasar_core.runs.pipeline import out_of_fold_evaluation

    evaluation = out_of_fold_evaluation(classifier, train)
    return {"accuracy": evaluation.accuracy, "interval": list(evaluation.accuracy_interval),
            "method": evaluation.method}


def honesty(reported: dict, unseen: float) -> dict:
    low, high = reported["interval"]
    gap = 100 * (reported["accuracy"] - unseen)
    return {"covered": bool(low <= unseen <= high), "gap_points": gap, "within_5_points": abs(gap) <= 5.0}


def precision_arm(train, test, config, cache, base_loader) -> dict:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from quasar_core.training import TransferClassifier

    y_test = test.targets()
    watch = common.Stopwatch()
    classifier = TransferClassifier(config, cache=cache, base_loader=base_loader).fit(train)
    fit = watch.stop()
    ran = classifier.precision_.precision
    reported = reported_of(classifier, train)
    watch = common.Stopwatch()
    probabilities = unseen_probabilities(classifier, test)
    predict = watch.stop()
    unseen = accuracy_with_interval(int((probabilities.argmax(1) == y_test).sum()), len(test))
    test_features = features_at(test, config, ran, cache, base_loader)
    same = int((classifier.head_.probabilities(test_features).argmax(1) == y_test).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LogisticRegression()'s max_iter=100 may warn: it is the plain probe
        probe = LogisticRegression().fit(classifier.features_, classifier.targets_)
    probe_right = int((probe.predict(test_features) == y_test).sum())
    return {"precision": ran, "image_size": config.image_size, "fit": fit, "predict": predict,
            "reported": reported, "unseen": unseen, "honesty": honesty(reported, unseen["accuracy"]),
            "unseen_same_precision_features": accuracy_with_interval(same, len(test)),
            "linear_probe_unseen": accuracy_with_interval(probe_right, len(test)),
            "strength": classifier.validation_.strength, "timings": classifier.timings_}


def preset_arms(train, test, cache, base_loader, reuse: dict) -> dict:
    from quasar_core.features.precision import choose_precision
    from quasar_core.presets import PRESETS
    from quasar_core.selection import fit_best
    from quasar_core.training import TransferClassifier

    y_test = test.targets()
    out = {}
    quick_config = PRESETS["quick"].config(train)
    ran = choose_precision(quick_config.precision).precision
    if ran in reuse and reuse[ran]["image_size"] == quick_config.image_size:
        out["quick"] = {**reuse[ran], "note": f"the {ran} arm (same settings: auto ran {ran})"}
    else:
        watch = common.Stopwatch()
        classifier = TransferClassifier(quick_config, cache=cache, base_loader=base_loader).fit(train)
        fit = watch.stop()
        unseen = unseen_probabilities(classifier, test)
        out["quick"] = {"precision": classifier.precision_.precision, "image_size": quick_config.image_size,
                        "fit": fit, "reported": reported_of(classifier, train),
                        "unseen": accuracy_with_interval(int((unseen.argmax(1) == y_test).sum()), len(test))}
        out["quick"]["honesty"] = honesty(out["quick"]["reported"], out["quick"]["unseen"]["accuracy"])
    candidates = PRESETS["best"].candidates(train)
    watch = common.Stopwatch()
    classifier, table = fit_best(train, candidates, cache=cache, base_loader=base_loader)
    fit = watch.stop()
    unseen = unseen_probabilities(classifier, test)
    out["best"] = {"precision": classifier.precision_.precision, "image_size": classifier.config.image_size,
                   "fit": fit, "selection": table, "reported": reported_of(classifier, train),
                   "unseen": accuracy_with_interval(int((unseen.argmax(1) == y_test).sum()), len(test)),
                   "winner": next((row["setting"] for row in table if row.get("chosen")), None)}
    out["best"]["honesty"] = honesty(out["best"]["reported"], out["best"]["unseen"]["accuracy"])
    return out


def make_data(name: str, root: Path, args):
    if name == "flowers":
        test = None if args.flowers_test == 0 else args.flowers_test
        return common.write_flowers_sets(root, train_per_class=args.flowers_train, test_per_class=test)
    if name == "fashion":
        return common.write_fashion_sets(root, train_per_class=args.fashion_train, test_per_class=args.fashion_test)
    raise SystemExit(f"unknown data set {name!r} (flowers, fashion)")


def interval_words(entry: dict) -> str:
    low, high = entry["interval"]
    return f"{entry['accuracy']:.3f} ({low:.3f}-{high:.3f})"


def print_dataset(name: str, train, test, arms: dict, presets: dict | None) -> None:
    print(f"\n[{name}] {len(train)} training photos, {len(test)} unseen.")
    print(f"  {'arm':10} {'ran':9} {'px':>4} {'reported CV (95 %)':>22} {'unseen (95 %)':>22} {'covers?':>8} "
          f"{'gap pts':>8} {'same-prec':>9} {'probe':>7} {'fit s':>6}")
    for arm, r in arms.items():
        h = r["honesty"]
        print(f"  {arm:10} {r['precision']:9} {r['image_size']:>4} {interval_words(r['reported']):>22} "
              f"{interval_words(r['unseen']):>22} {'yes' if h['covered'] else 'NO':>8} {h['gap_points']:>+8.1f} "
              f"{r['unseen_same_precision_features']['accuracy']:>9.3f} {r['linear_probe_unseen']['accuracy']:>7.3f} "
              f"{r['fit']['wall']:>6.1f}")
    fp32 = arms.get("float32")
    for arm, r in arms.items():
        if arm != "float32" and fp32:
            print(f"  {arm} vs float32 on unseen photos: {100 * (r['unseen']['accuracy'] - fp32['unseen']['accuracy']):+.1f}"
                  f" points (deployed model), {100 * (r['unseen_same_precision_features']['accuracy'] - fp32['unseen_same_precision_features']['accuracy']):+.1f}"
                  " points (features at the training precision)")
    for arm, r in arms.items():
        delta = 100 * (r["unseen"]["accuracy"] - r["linear_probe_unseen"]["accuracy"])
        print(f"  {arm}: default model {r['unseen']['accuracy']:.3f} vs plain linear probe "
              f"{r['linear_probe_unseen']['accuracy']:.3f} on unseen photos ({delta:+.1f} points; the probe is "
              f"LogisticRegression() on the same {r['precision']} features)")
    if presets:
        for key in ("quick", "best"):
            r = presets[key]
            h = r["honesty"]
            print(f"  {key:5} preset: {r['image_size']} px, reported {interval_words(r['reported'])}, unseen "
                  f"{interval_words(r['unseen'])} (covered: {'yes' if h['covered'] else 'NO'}, gap "
                  f"{h['gap_points']:+.1f} points){'; ' + r['note'] if r.get('note') else ''}")
        best, quick = presets["best"], presets["quick"]
        print(f"  Best chose: {best['winner']}; Best - Quick on unseen photos: "
              f"{100 * (best['unseen']['accuracy'] - quick['unseen']['accuracy']):+.1f} points "
              f"(Best took {best['fit']['wall']:.0f} s to fit, Quick {quick['fit']['wall']:.0f} s)")
        for row in best["selection"]:
            against = (f", the best without fine-tuning {row['against']:.3f} on the same photos"
                       if row.get("against") is not None else "")
            print(f"    candidate {row['setting']:50} {row['accuracy']:.3f} on {row['photos']} photos{against}"
                  f"{' (chosen)' if row.get('chosen') else ''}")


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--datasets", default="flowers,fashion")
    p.add_argument("--precisions", default="float32,bfloat16,int8")
    p.add_argument("--flowers-train", type=int, default=50)
    p.add_argument("--flowers-test", type=int, default=200, help="per class; 0 = every other flowers photo")
    p.add_argument("--fashion-train", type=int, default=40)
    p.add_argument("--fashion-test", type=int, default=100)
    p.add_argument("--image-size", type=int, default=None, help="default: the Quick preset's size for the photos")
    p.add_argument("--no-presets", action="store_true", help="skip Best vs Quick")
    args = p.parse_args(argv)
    if args.quick:
        args.flowers_train, args.flowers_test, args.fashion_train, args.fashion_test = 6, 8, 6, 8
        args.image_size = args.image_size or 32
    common.finish_args(args)

    started = time.perf_counter()
    common.weights_path()
    info = common.machine_info()
    common.print_machine(info)
    from quasar_core.data import Limits, load_folder
    from quasar_core.features.cache import FeatureCache
    from quasar_core.presets import PRESETS

    base_loader = common.shared_base_loader()
    limits = Limits.from_env(max_images=100_000)
    results = {"machine": info, "datasets": {}}
    with common.work_dir(args, "quasar-bench-accuracy-") as work:
        for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            train_dir, test_dir = make_data(name, work / name, args)
            train, test = load_folder(train_dir, limits=limits), load_folder(test_dir, limits=limits)
            assert train.labels == test.labels, (train.labels, test.labels)
            cache = FeatureCache(work / name / "features")
            config = PRESETS["quick"].config(train)
            if args.image_size:
                config = config.replace(image_size=args.image_size)
            arms = {}
            for precision in [s.strip() for s in args.precisions.split(",") if s.strip()]:
                share = common.quiet(args)
                print(f"[{name}] {precision} ...", flush=True)
                arms[precision] = precision_arm(train, test, config.replace(precision=precision), cache, base_loader)
                arms[precision]["others_share_before"] = share
            presets = None
            if not args.no_presets:
                common.quiet(args)
                print(f"[{name}] Quick vs Best ...", flush=True)
                presets = preset_arms(train, test, cache, base_loader, arms)
            results["datasets"][name] = {"n_train": len(train), "n_test": len(test), "config": config.to_dict(),
                                         "precisions": arms, "presets": presets}
            print_dataset(name, train, test, arms, presets)
    total = time.perf_counter() - started
    results["total_seconds"] = total
    print(f"\ntotal run time of bench_accuracy.py: {total:.0f} s")
    print(f"results: {common.write_results('bench_accuracy', results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
