"""Is the number a run reports true? The gap (reported - unseen) over many splits, per set and preset.

    python bench/bench_honesty.py [--sets fashion,flowers,weather] [--arms quick,default,best] [--splits 20]
                                  [--cache /tmp/quasar-honesty] [--causes] [--quick]

For each set, one pool of photos goes through the product's FeaturePass once per image size (int8, as
training runs it on this CPU), into one FeatureCache, with the augmented view Best's candidate asks for
on the photos a split may learn from. Then, per seeded split, each arm is the product itself, driven with
that cache so a split costs only heads:

  quick, default   TransferClassifier(preset's config, precision int8).fit(the split's photos); reported =
                   runs.pipeline.out_of_fold_evaluation (what the run shows: accuracy and its 95 % interval)
  best             selection.fit_best(the split's photos, PRESETS["best"].candidates); reported = the same
                   evaluation of the winner, whose number is corrected for the choice
  unseen           the kept head (Best: the winner's) on the unseen photos' cached features
                   (head.probabilities), at the kept model's own size

Sets: fashion (Fashion-MNIST, the sample's 5 classes, 28 px grayscale PNGs written by
scripts/make_sample_dataset.py's code: 40 a class to learn from out of 200 a class from images 0..29,999;
500 unseen out of 300 a class from 30,000 on), flowers (flowers-full at its own size: 40 a class to learn
from out of 120 a class; 500 unseen out of 900 others), weather (weather4: 30 a class to learn from, every
other photo unseen). Per set and arm: mean and sd of the gap in points, splits within 5 points, splits whose
interval covers the unseen accuracy, and those covered allowing 1 point for the unseen set's own noise; and the
run's other end for labels in doubt (evaluation.with_label_doubts): how many, how often the page says it, its
gap to the unseen accuracy, and coverage from the interval's low end up to it.

`--causes` (fashion, the default preset): why small grayscale photos read pessimistic. Per split, the
product's gap beside the same folds with one suspect taken away: copies of small photos grouped by their
pixels (near_copies.fold_thumbnails) -> by features only; no groups at all; each fixed strength (the kept
head at that strength against its own out-of-fold accuracy); the folds' models (90 % of the photos) against
the kept model on unseen photos; no class weights; the out-of-fold answers as they are (no cross-fitted
temperature).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
import _datasets as datasets  # noqa: E402

ARMS = ("quick", "default", "best")
PRESET_OF = {"quick": "quick", "default": "balanced", "best": "best"}
# per set: (photos a class a split learns from, photos a class in the pool they are drawn from, unseen a split,
# unseen photos in the pool); None: every photo of the set is in the pool / every other photo is unseen
PLANS = {"fashion": (40, 200, 500, 300), "flowers": (40, 120, 500, 900), "weather": (30, None, None, None)}
QUICK_PLANS = {"fashion": (8, 12, 20, 8), "flowers": (6, 10, 20, 30), "weather": (6, 10, 20, 30)}


@dataclass
class Pool:
    """Where a set's splits are drawn from: `learn` photos (indices into `learn_data`) and `unseen` photos
    (indices into `unseen_data`, which may be the same dataset: then a split's own photos are left out)."""

    name: str
    learn_data: object
    learn: "object"  # np.ndarray of indices
    unseen_data: object
    unseen: "object"
    per_class: int
    unseen_count: int | None


def load(folder):
    from quasar_core.data import Limits, load_folder

    return load_folder(folder, limits=Limits.from_env(max_images=100_000))


def make_pool(name: str, root: Path, quick: bool) -> Pool:
    import numpy as np

    per_class, pool_per_class, unseen_count, unseen_pool = (QUICK_PLANS if quick else PLANS)[name]
    if name == "fashion":
        train, test = datasets.write_fashion_sets(root / "fashion", train_per_class=pool_per_class,
                                                  test_per_class=unseen_pool, seed=0)
        learn_data, unseen_data = load(train), load(test)
        return Pool(name, learn_data, np.arange(len(learn_data)), unseen_data, np.arange(len(unseen_data)),
                    per_class, unseen_count)
    data = load(datasets.photos_dir(name))
    targets = data.targets()
    rng = np.random.default_rng([7, len(targets)])
    if pool_per_class is None:
        learn = np.arange(len(targets))
        rest = learn
    else:
        learn = np.sort(np.concatenate([rng.permutation(np.flatnonzero(targets == c))[:pool_per_class]
                                        for c in range(len(data.labels))]))
        rest = np.setdiff1d(np.arange(len(targets)), learn)
    unseen = rest if unseen_pool is None else np.sort(rng.permutation(rest)[:unseen_pool])
    if quick and pool_per_class is None:
        learn = np.sort(np.concatenate([np.flatnonzero(targets == c)[:10] for c in range(len(data.labels))]))
        unseen = np.setdiff1d(np.arange(len(targets)), learn)[:60]
    return Pool(name, data, learn, data, unseen, per_class, unseen_count)


def base_config():
    from quasar_core.config import TrainConfig

    return TrainConfig(precision="int8")  # what `auto` runs on this CPU, without the check's 8 float photos


def arm_configs(arm: str, dataset) -> list:
    from quasar_core.presets import PRESETS

    return PRESETS[PRESET_OF[arm]].candidates(dataset, base_config())


def prepare(pool: Pool, arms, cache, base_loader, splits: int) -> None:
    """Every size and view the arms can ask for on any of the splits (Best's larger size depends on the split's
    photos), computed once into `cache` (the learn pool's augmented views where a candidate augments); a split's
    training then finds them all there."""
    from quasar_core.config import Augmentation
    from quasar_core.features.extract import FeaturePass

    wanted = {}
    for number in range(splits):
        train = draw(pool, number)[0]
        for arm in arms:
            for config in arm_configs(arm, train):
                wanted[config.image_size] = max(wanted.get(config.image_size, 1), config.views)
    for size, views in sorted(wanted.items()):
        started = time.perf_counter()
        config = base_config().replace(image_size=size)
        kw = dict(spec=spec_of(config), network_for=network(config, cache, base_loader), cache=cache, seed=config.seed)
        learned = FeaturePass(augmentation=Augmentation(views=2) if views > 1 else None, **kw)
        learned.features(pool.learn_data, pool.learn, views=views)
        unseen = FeaturePass(**kw)
        unseen.features(pool.unseen_data, pool.unseen)
        print(f"  {pool.name} at {size} px: {len(pool.learn)} photos to learn from ({views} view(s)), "
              f"{len(pool.unseen)} unseen: {learned.computed + unseen.computed} computed in "
              f"{time.perf_counter() - started:.0f} s", flush=True)


_NETWORKS: dict = {}


def network(config, cache, base_loader):
    from quasar_core.features.extract import network_provider

    key = (config.image_size, config.precision)
    if key not in _NETWORKS:
        _NETWORKS[key] = network_provider(weights=config.weights, image_size=config.image_size,
                                          precision=config.precision, base_loader=base_loader, cache=cache)
    return _NETWORKS[key]


def spec_of(config):
    from quasar_core import backbone
    from quasar_core.features.cache import FeatureSpec

    return FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, config.precision)


def draw(pool: Pool, number: int):
    """(the split's photos to learn from as a Dataset, the unseen dataset, the unseen indices)."""
    import numpy as np

    rng = np.random.default_rng([number, 26])
    targets = pool.learn_data.targets()[pool.learn]
    learn = np.sort(np.concatenate([rng.permutation(pool.learn[targets == c])[:pool.per_class]
                                    for c in np.unique(targets)]))
    candidates = pool.unseen
    if pool.unseen_data is pool.learn_data:
        candidates = np.setdiff1d(candidates, learn)
    unseen = candidates if pool.unseen_count is None else np.sort(rng.permutation(candidates)[:pool.unseen_count])
    return pool.learn_data.subset(learn), pool.unseen_data, unseen


def unseen_accuracy(classifier, unseen_data, unseen, cache, base_loader) -> float:
    """The kept head on the unseen photos' cached features (its own size), labels matched by name."""
    import numpy as np

    from quasar_core.features.extract import FeaturePass

    config = classifier.config
    features = FeaturePass(spec=spec_of(config), network_for=network(config, cache, base_loader), cache=cache,
                           seed=config.seed).features(unseen_data, unseen)[0]
    index = {label: i for i, label in enumerate(classifier.labels_)}
    truth = np.array([index[unseen_data.samples[i].label] for i in unseen])
    return float((classifier.head_.probabilities(features).argmax(axis=1) == truth).mean())


def run_arm(arm: str, train, unseen_data, unseen, cache, base_loader) -> dict:
    from quasar_core.runs.pipeline import out_of_fold_evaluation
    from quasar_core.selection import fit_best
    from quasar_core.training import TransferClassifier

    started = time.perf_counter()
    configs = arm_configs(arm, train)
    if arm == "best":
        classifier, table = fit_best(train, configs, cache=cache, base_loader=base_loader)
    else:
        classifier, table = TransferClassifier(configs[0], cache=cache, base_loader=base_loader).fit(train), []
    evaluation = out_of_fold_evaluation(classifier, train)
    low, high = evaluation.accuracy_interval
    kept = unseen_accuracy(classifier, unseen_data, unseen, cache, base_loader)
    row = {"reported": evaluation.accuracy, "low": low, "high": high, "unseen": kept,
           "gap_points": 100 * (evaluation.accuracy - kept), "covered": bool(low <= kept <= high),
           "covered_1pt": bool(low - 0.01 <= kept <= high + 0.01), "image_size": classifier.config.image_size,
           "augment": classifier.config.augment, "strength": classifier.validation_.strength,
           "method": evaluation.method, "seconds": time.perf_counter() - started, **other_end(evaluation, kept)}
    if table:
        row["candidates"] = [{k: r.get(k) for k in ("setting", "accuracy", "honest_accuracy", "chosen")} for r in table]
    return row


def other_end(evaluation, kept: float) -> dict:
    """The run's other end for labels in doubt (evaluation.with_label_doubts): the accuracy if the labels
    confident learning doubts are wrong, its gap to the unseen photos, and whether the range from the interval's
    low end to the higher of its high end and the other end holds the unseen accuracy."""
    from quasar_core.evaluation import with_label_doubts

    with_label_doubts(evaluation)
    low, high = evaluation.accuracy_interval
    shown = bool(evaluation.doubt_note())  # said on the page only when enough labels are in doubt
    top = max(high, evaluation.accuracy_if_doubted_wrong) if shown else high
    return {"doubted": evaluation.doubted_labels, "if_doubted": evaluation.accuracy_if_doubted_wrong,
            "if_doubted_said": shown, "if_doubted_gap_points": 100 * (evaluation.accuracy_if_doubted_wrong - kept),
            "covered_to_other_end": bool(low <= kept <= top)}


def summarise(rows: list[dict], key: str = "gap_points") -> dict:
    import numpy as np

    gaps = np.array([r[key] for r in rows], dtype=float)
    return {"splits": len(rows), "mean_gap_points": float(gaps.mean()),
            "sd_gap_points": float(gaps.std(ddof=1)) if len(gaps) > 1 else 0.0,
            "se_mean_points": float(gaps.std(ddof=1) / np.sqrt(len(gaps))) if len(gaps) > 1 else 0.0,
            "within_5_points": int((np.abs(gaps) <= 5).sum()),
            "covered": int(sum(r["covered"] for r in rows)) if all("covered" in r for r in rows) else None,
            "covered_1pt": int(sum(r["covered_1pt"] for r in rows)) if all("covered_1pt" in r for r in rows) else None,
            "mean_reported": float(np.mean([r["reported"] for r in rows])),
            "mean_unseen": float(np.mean([r["unseen"] for r in rows]))} | (
        {"doubted_mean": float(np.mean([r["doubted"] for r in rows])),
         "other_end_said": int(sum(r["if_doubted_said"] for r in rows)),
         "other_end_mean_gap_points": float(np.mean([r["if_doubted_gap_points"] for r in rows])),
         "covered_to_other_end": int(sum(r["covered_to_other_end"] for r in rows))}
        if all("doubted" in r for r in rows) else {})


def line(label: str, s: dict) -> str:
    covered = (f"covered: {s['covered']:>2}/{s['splits']} ({s['covered_1pt']} with 1 point)" if s["covered"] is not None
               else "covered: -  (one head, no interval)")
    return (f"  {label:<34} gap {s['mean_gap_points']:+5.2f} points (sd {s['sd_gap_points']:.2f}, se "
            f"{s['se_mean_points']:.2f})  within 5: {s['within_5_points']:>2}/{s['splits']}  {covered}  reported "
            f"{100 * s['mean_reported']:.1f} vs unseen {100 * s['mean_unseen']:.1f}"
            + (f"\n  {'':<34} labels in doubt {s['doubted_mean']:.1f} a split, other end said in {s['other_end_said']}; "
               f"other end - unseen {s['other_end_mean_gap_points']:+.2f} points; covered up to the other end "
               f"{s['covered_to_other_end']}/{s['splits']}" if "doubted_mean" in s else ""))


# --- the causes of the small photos' lean (--causes) ----------------------------------------------------------
def causes_split(train, unseen_data, unseen, cache, base_loader) -> dict:
    """The default preset's gap on one split with each suspect taken away in turn (see the docstring)."""
    import numpy as np

    from quasar_core.crossval import folds_for
    from quasar_core.data.split import cross_validation_folds
    from quasar_core.head import fit_head
    from quasar_core.near_copies import copy_groups, fold_thumbnails
    from quasar_core.runs.pipeline import out_of_fold_evaluation
    from quasar_core.training import TransferClassifier

    from quasar_core.features.extract import FeaturePass

    config = arm_configs("default", train)[0]
    unseen_x = FeaturePass(spec=spec_of(config), network_for=network(config, cache, base_loader), cache=cache,
                           seed=config.seed).features(unseen_data, unseen)[0]
    labels = list(train.labels)
    unseen_y = np.array([labels.index(unseen_data.samples[i].label) for i in unseen])

    def scored(classifier, label):
        evaluation = out_of_fold_evaluation(classifier, train)
        low, high = evaluation.accuracy_interval
        kept = float((classifier.head_.probabilities(unseen_x).argmax(1) == unseen_y).mean())
        plain = float((classifier.validation_.predicted() == classifier.targets_[classifier.validation_.tested]).mean())
        return label, {"reported": evaluation.accuracy, "unseen": kept,
                       "gap_points": 100 * (evaluation.accuracy - kept),
                       "covered": bool(low <= kept <= high), "covered_1pt": bool(low - .01 <= kept <= high + .01),
                       "plain_reported": plain, "strength": classifier.validation_.strength}

    product = TransferClassifier(config, cache=cache, base_loader=base_loader).fit(train)
    rows = dict([scored(product, "product")])
    x, y = product.features_, product.targets_
    thumbs = fold_thumbnails(train, cache=cache)
    groups = copy_groups(x, thumbs=thumbs)
    sizes = np.bincount(groups)[np.unique(groups)]
    by_features = copy_groups(x)
    rows["groups"] = {"pixels_and_features": {"groups": int((sizes > 1).sum()), "photos": int(sizes[sizes > 1].sum()),
                                              "largest": int(sizes.max())},
                      "features_only": {"groups": int((np.bincount(by_features)[np.unique(by_features)] > 1).sum())}}
    for label, folds in (("features_only", folds_for(x, y, config, thumbs=None)),
                         ("no_groups", cross_validation_folds(y, n_folds=config.folds, seed=config.seed,
                                                              repeats=config.cv_repeats))):
        rows.update([scored(TransferClassifier(config, cache=cache, base_loader=base_loader).fit(train, folds=folds),
                            label)])
    rows.update([scored(TransferClassifier(config.replace(class_weights=False), cache=cache,
                                           base_loader=base_loader).fit(train), "no_class_weights")])
    # each strength: its own out-of-fold accuracy (first dealing) against its own kept head on unseen photos
    n_classes = len(labels)
    for candidate in product.validation_.candidates:
        head = fit_head(x, y, n_classes=n_classes, strength=candidate["strength"])
        kept = float((head.logits(unseen_x).argmax(1) == unseen_y).mean())
        rows[f"strength_{candidate['strength']}"] = {"reported": candidate["accuracy"], "unseen": kept,
                                                     "gap_points": 100 * (candidate["accuracy"] - kept)}
    # the folds' models (90 % of the photos) against the kept model (all of them), both on unseen photos
    first = product.folds_.partitions()[0]
    fold_unseen = []
    for fold in range(first.n_folds):
        learned = first.split(fold)[0]
        head = fit_head(x[learned], y[learned], n_classes=n_classes, strength=product.validation_.strength)
        fold_unseen.append(float((head.logits(unseen_x).argmax(1) == unseen_y).mean()))
    rows["folds_models"] = {"reported": rows["product"]["reported"], "unseen": float(np.mean(fold_unseen)),
                            "gap_points": 100 * (rows["product"]["reported"] - float(np.mean(fold_unseen)))}
    rows["kept_minus_folds_points"] = 100 * (rows["product"]["unseen"] - float(np.mean(fold_unseen)))
    return rows


IMBALANCED = (64, 52, 40, 28, 16)  # photos a class, 200 in all, for the class-balance variant
WRONG_LABELS = 10  # of the 200 photos to learn from, moved to another class for the wrong-label variant


def variants_split(pool: Pool, number: int, cache, base_loader) -> dict:
    """Two conditions the Fashion-MNIST splits do not have, each with the pixel groups on (the product) and off:
    uneven classes (IMBALANCED photos a class, unseen photos even), and WRONG_LABELS of the photos to learn
    from filed under another class (unseen photos labelled right)."""
    import numpy as np

    from quasar_core.crossval import folds_for
    from quasar_core.features.extract import FeaturePass
    from quasar_core.runs.pipeline import out_of_fold_evaluation
    from quasar_core.training import TransferClassifier

    rng = np.random.default_rng([number, 27])
    _, unseen_data, unseen = draw(pool, number)
    targets = pool.learn_data.targets()[pool.learn]
    uneven = np.sort(np.concatenate([rng.permutation(pool.learn[targets == c])[:count]
                                     for c, count in zip(np.unique(targets), IMBALANCED)]))
    even, _, _ = draw(pool, number)
    picked = rng.choice(len(even), WRONG_LABELS, replace=False)
    moved = {int(i): even.labels[(even.targets()[i] + 1 + rng.integers(len(even.labels) - 1)) % len(even.labels)]
             for i in picked}
    wrong = even.subset(np.arange(len(even)), labels=moved)
    rows = {}
    for name, train in (("uneven_classes", pool.learn_data.subset(uneven)), ("wrong_labels", wrong)):
        config = arm_configs("default", train)[0]
        unseen_x = FeaturePass(spec=spec_of(config), network_for=network(config, cache, base_loader), cache=cache,
                               seed=config.seed).features(unseen_data, unseen)[0]
        labels = list(train.labels)
        unseen_y = np.array([labels.index(unseen_data.samples[i].label) for i in unseen])
        product = TransferClassifier(config, cache=cache, base_loader=base_loader).fit(train)
        others = TransferClassifier(config, cache=cache, base_loader=base_loader).fit(
            train, folds=folds_for(product.features_, product.targets_, config, thumbs=None))
        for label, classifier in ((name, product), (f"{name}_features_only", others)):
            evaluation = out_of_fold_evaluation(classifier, train)
            low, high = evaluation.accuracy_interval
            kept = float((classifier.head_.probabilities(unseen_x).argmax(1) == unseen_y).mean())
            rows[label] = {"reported": evaluation.accuracy, "unseen": kept,
                           "gap_points": 100 * (evaluation.accuracy - kept), "covered": bool(low <= kept <= high),
                           "covered_1pt": bool(low - .01 <= kept <= high + .01), **other_end(evaluation, kept)}
        if name == "uneven_classes":  # what the unseen accuracy would be with the photos' own class shares
            right = product.head_.probabilities(unseen_x).argmax(1) == unseen_y
            shares = np.bincount(product.targets_, minlength=len(labels)) / len(product.targets_)
            per_class = np.array([right[unseen_y == c].mean() for c in range(len(labels))])
            rows["uneven_classes_unseen_at_training_shares"] = {
                "reported": rows[name]["reported"], "unseen": float(per_class @ shares),
                "gap_points": 100 * (rows[name]["reported"] - float(per_class @ shares))}
    return rows


def run_variants(pool, args, cache, base_loader) -> dict:
    rows = []
    for number in range(args.splits):
        started = time.perf_counter()
        rows.append(variants_split(pool, number, cache, base_loader))
        print(f"  split {number}: " + ", ".join(f"{k} {v['gap_points']:+.1f}" for k, v in rows[-1].items())
              + f" ({time.perf_counter() - started:.0f} s)", flush=True)
    summary = {k: summarise([r[k] for r in rows]) for k in rows[0]}
    print(f"\n{pool.name}, the default preset, {len(rows)} splits: uneven classes and wrong labels")
    for k in rows[0]:
        print(line(k, summary[k]))
    return {"splits": rows, "summary": summary}


def run_causes(pool, args, cache, base_loader) -> dict:
    import numpy as np

    rows = []
    for number in range(args.splits):
        started = time.perf_counter()
        train, unseen_data, unseen = draw(pool, number)
        rows.append(causes_split(train, unseen_data, unseen, cache, base_loader))
        r = rows[-1]
        print(f"  split {number}: product {r['product']['gap_points']:+.1f}, features only "
              f"{r['features_only']['gap_points']:+.1f}, no groups {r['no_groups']['gap_points']:+.1f}; pixel groups "
              f"{r['groups']['pixels_and_features']['groups']} ({r['groups']['pixels_and_features']['photos']} "
              f"photos); kept - folds' models {r['kept_minus_folds_points']:+.1f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    keys = [k for k in rows[0] if isinstance(rows[0][k], dict) and "gap_points" in rows[0][k]]
    summary = {k: summarise([r[k] for r in rows]) for k in keys}
    summary["kept_minus_folds_points"] = float(np.mean([r["kept_minus_folds_points"] for r in rows]))
    summary["pixel_groups_mean"] = float(np.mean([r["groups"]["pixels_and_features"]["groups"] for r in rows]))
    summary["pixel_group_photos_mean"] = float(np.mean([r["groups"]["pixels_and_features"]["photos"] for r in rows]))
    summary["feature_groups_mean"] = float(np.mean([r["groups"]["features_only"]["groups"] for r in rows]))
    summary["plain_reported_gap_points"] = float(np.mean(
        [100 * (r["product"]["plain_reported"] - r["product"]["unseen"]) for r in rows]))
    print(f"\n{pool.name}, the default preset, {len(rows)} splits: why the estimate leans")
    for k in keys:
        print(line(k, summary[k]))
    print(f"  the kept model (100 %) - the folds' models (90 %) on unseen photos: "
          f"{summary['kept_minus_folds_points']:+.2f} points; groups a split: by pixels and features "
          f"{summary['pixel_groups_mean']:.1f} ({summary['pixel_group_photos_mean']:.1f} photos), by features {summary['feature_groups_mean']:.1f}; "
          f"out-of-fold answers without the cross-fitted temperature: gap {summary['plain_reported_gap_points']:+.2f}")
    return {"splits": rows, "summary": summary}


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--sets", default="fashion,flowers,weather")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--splits", type=int, default=20)
    p.add_argument("--cache", default=None, help="the photos' folder and feature cache, kept between runs "
                                                 "(default: a temporary folder)")
    p.add_argument("--causes", action="store_true", help="the small photos' study (fashion, default preset)")
    p.add_argument("--variants", action="store_true", help="with --causes: uneven classes and wrong labels instead")
    args = p.parse_args(argv)
    if args.quick:
        args.splits = min(args.splits, 2)
    started, info = common.begin(args)
    base_loader = common.shared_base_loader()
    from quasar_core.training import TransferClassifier

    # The learning curve (25-100 % of the photos, for the Train page) changes no number measured here: skipped.
    TransferClassifier._record_learning_curve = lambda self: None
    from quasar_core.features.cache import FeatureCache

    arms = args.arms.split(",")
    results = {"machine": info, "settings": vars(args), "sets": {}}
    with common.work_dir(args, "quasar-bench-honesty-") as work:
        root = Path(args.cache) if args.cache else work
        cache = FeatureCache(root / "features", max_bytes=20 * 1024**3)
        for name in (["fashion"] if args.causes else args.sets.split(",")):
            pool = make_pool(name, root / "photos", args.quick)
            print(f"\n{name}: pool of {len(pool.learn)} photos to learn from, {len(pool.unseen)} unseen", flush=True)
            prepare(pool, ["default"] if args.causes else arms, cache, base_loader, args.splits)
            if args.causes:
                study = run_variants if args.variants else run_causes
                results["variants" if args.variants else "causes"] = study(pool, args, cache, base_loader)
                continue
            rows = {arm: [] for arm in arms}
            for number in range(args.splits):
                train, unseen_data, unseen = draw(pool, number)
                done = {}  # presets that are the same setting on these photos (Quick is Balanced at 96 px) run once
                for arm in arms:
                    key = repr([c.to_dict() for c in arm_configs(arm, train)])
                    if key not in done:
                        done[key] = run_arm(arm, train, unseen_data, unseen, cache, base_loader)
                    rows[arm].append({"split": number, **done[key]})
                print(f"  split {number}: " + "; ".join(
                    f"{arm} {rows[arm][-1]['reported'] * 100:.1f} vs {rows[arm][-1]['unseen'] * 100:.1f} "
                    f"({rows[arm][-1]['image_size']} px{' +aug' if rows[arm][-1]['augment'] else ''}, "
                    f"{rows[arm][-1]['seconds']:.0f} s)" for arm in arms), flush=True)
            summary = {arm: summarise(rows[arm]) for arm in arms}
            print(f"\n{name}: {args.splits} splits, {pool.per_class} a class to learn from, "
                  f"{pool.unseen_count or 'every other photo'} unseen")
            for arm in arms:
                print(line(arm, summary[arm]))
            results["sets"][name] = {"splits": rows, "summary": summary}
            common.write_results("bench_honesty", results, quick=args.quick)
    results["total_seconds"] = time.perf_counter() - started
    print(f"\ntotal run time of bench_honesty.py: {results['total_seconds']:.0f} s")
    name = "bench_honesty" + ("_variants" if args.variants else "_causes" if args.causes else "")
    print(f"results: {common.write_results(name, results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
