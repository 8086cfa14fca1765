""""None of these" measured: how often the deployed model calls photos unknown, its own kind and others.

    python bench/bench_familiarity.py [--flowers-train 100] [--flowers-test 200] [--fashion-test 100] [--quick]

Two models, each trained as `quasar train` does (TransferClassifier with the Quick preset's settings,
precision auto), then the deployed model (predict_proba with its features, as Predict and the
export's predict.py score photos) on photos it never saw:
  flowers model    trained on 3 species (daisy, dandelion, rose; `--flowers-train` each)
                   own kind:       unseen photos of those 3 species (`--flowers-test` each)
                   other flowers:  sunflower and tulip (`--flowers-test` each): same domain, new classes
                   clothes:        the bundled sample's 300 Fashion-MNIST pictures
  clothes model    trained on the bundled sample (5 Fashion-MNIST classes, 60 each)
                   own kind:       unseen Fashion-MNIST pictures of those classes (`--fashion-test` each)
                   flowers:        `--flowers-test` photos of each of the 5 species
The goal (issue 13): about 95-99 % of photos like the training ones are not unknown (the threshold
is set for 97.5 % on the training photos, out-of-fold); photos of another domain are called unknown.
Unusual (the band above unknown, issue 25) is counted beside it; bench_strangers.py measures more kinds.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

CHUNK = 32
HELD_OUT_SPECIES = ("sunflower", "tulip")


def unknown_share(classifier, dataset) -> dict:
    """How many photos of `dataset` the deployed model calls unknown, and unusual (the band above unknown)."""
    import numpy as np

    unknown, unusual = [], []
    for start in range(0, len(dataset), CHUNK):
        images = [dataset.pixels(i) for i in range(start, min(len(dataset), start + CHUNK))]
        _, features = classifier.predict_proba(images, with_features=True)
        _, u, v = classifier.familiarity_.answers(features)
        unknown.append(u)
        unusual.append(v)
    flags = np.concatenate(unknown) if unknown else np.zeros(0, bool)
    odd = np.concatenate(unusual) if unusual else np.zeros(0, bool)
    return {"photos": int(len(flags)), "unknown": int(flags.sum()), "share": float(flags.mean()) if len(flags) else None,
            "unusual": int(odd.sum()), "unusual_share": float(odd.mean()) if len(odd) else None}


def split_species(train_dir: Path, test_dir: Path, other_dir: Path) -> None:
    """Move the held-out species out of training (dropped) and out of the own-kind test (to `other_dir`)."""
    other_dir.mkdir(parents=True)
    for species in HELD_OUT_SPECIES:
        shutil.rmtree(train_dir / species)
        (test_dir / species).rename(other_dir / species)


def evaluate_model(name: str, train, test_sets: dict, cache, base_loader, args) -> dict:
    from quasar_core.presets import PRESETS
    from quasar_core.training import TransferClassifier

    config = PRESETS["quick"].config(train)
    common.quiet(args)
    print(f"[{name}] training on {len(train)} photos at {config.image_size} px ...", flush=True)
    watch = common.Stopwatch()
    classifier = TransferClassifier(config, cache=cache, base_loader=base_loader).fit(train)
    fit = watch.stop()
    result = {"train_photos": len(train), "image_size": config.image_size, "precision": classifier.precision_.precision,
              "fit": fit, "described": classifier.familiarity_.describe(),
              "training_photos_called_unknown": 1 - classifier.familiarity_.familiar_rate_, "sets": {}}
    print(f"  {result['described']}")
    for set_name, dataset in test_sets.items():
        entry = unknown_share(classifier, dataset)
        result["sets"][set_name] = entry
        print(f"  {set_name:44} {entry['unknown']:>5} of {entry['photos']:>5} called unknown "
              f"({100 * entry['share']:.1f} %), {entry['unusual']:>5} unusual ({100 * entry['unusual_share']:.1f} %)")
    return result


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--flowers-train", type=int, default=100)
    p.add_argument("--flowers-test", type=int, default=200)
    p.add_argument("--fashion-test", type=int, default=100)
    args = p.parse_args(argv)
    if args.quick:
        args.flowers_train, args.flowers_test, args.fashion_test = 10, 6, 6
    common.finish_args(args)
    started = time.perf_counter()
    common.weights_path()
    info = common.machine_info()
    common.print_machine(info)
    from quasar_core.data import Limits, load_folder
    from quasar_core.features.cache import FeatureCache

    base_loader = common.shared_base_loader()
    limits = Limits.from_env(max_images=100_000)
    results = {"machine": info, "models": {}}
    with common.work_dir(args, "quasar-bench-familiarity-") as work:
        train_dir, test_dir = common.write_flowers_sets(work / "flowers", train_per_class=args.flowers_train,
                                                        test_per_class=args.flowers_test)
        split_species(train_dir, test_dir, work / "flowers" / "other")
        sample = load_folder(common.SAMPLE_DIR, limits=limits)
        results["models"]["flowers"] = evaluate_model(
            "flowers model", load_folder(train_dir, limits=limits),
            {"own kind (unseen daisy, dandelion, rose)": load_folder(test_dir, limits=limits),
             "other flowers (sunflower, tulip)": load_folder(work / "flowers" / "other", limits=limits),
             "clothes (the sample)": sample},
            FeatureCache(work / "features-flowers"), base_loader, args)
        _, fashion_test = common.write_fashion_sets(work / "fashion", train_per_class=1,
                                                    test_per_class=args.fashion_test)
        _, all_flowers = common.write_flowers_sets(work / "all-flowers", train_per_class=0,
                                                   test_per_class=args.flowers_test)
        results["models"]["clothes"] = evaluate_model(
            "clothes model", sample,
            {"own kind (unseen Fashion-MNIST)": load_folder(fashion_test, limits=limits),
             "flowers": load_folder(all_flowers, limits=limits)},
            FeatureCache(work / "features-clothes"), base_loader, args)
    results["total_seconds"] = time.perf_counter() - started
    print(f"\ntotal run time of bench_familiarity.py: {results['total_seconds']:.0f} s")
    print(f"results: {common.write_results('bench_familiarity', results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
