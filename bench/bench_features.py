"""Which pooled VGG16 features, from one pass, give a linear head the best unseen accuracy, and at which size?

    python bench/bench_features.py [--datasets flowers-full,weather4] [--sizes 224,352] [--splits 10]
                                   [--flowers-pool 1500] [--batch 16] [--cache-dir DIR] [--quick]

Real photos at their own resolution: flowers-full (a fixed seeded stratified pool of `--flowers-pool` of its
3,666 photos) and weather4 (all 942). Per (set, size) VGG16 runs once over the pool, float32 Keras, one
model with four outputs: global-average-pooled block3_pool, block4_pool, block5_pool and global-max-pooled
block5_pool (photos decoded by quasar_core.data, squared by resize_square, vgg16.preprocess_input). The
arrays are cached as .npz under `--cache-dir` (default /tmp/quasar-bench-features): re-runs cost nothing.

Then `--splits` seeded splits per set, the same ones at every size: per class 40 photos (flowers) / 30
(weather4) to learn from, all the other photos of the pool unseen. Each combination's head is
StandardScaler + LogisticRegression(class_weight="balanced", max_iter=1000) with C chosen by 5-fold
stratified CV on the learning photos among C_GRID; the probe is a plain LogisticRegression() on raw
block5 averages. Printed per set, size and combination: mean unseen accuracy, sd over splits, and the mean
paired difference (with its standard error) vs (a), today's features, at the same size and at the first
size; plus the extraction's photos/s and the machine.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

SHARED = Path("/work/shared/datasets")
SETS = {  # name: (photos, photos a class to learn from)
    "flowers-full": (SHARED / "flowers-full" / "flowers.zip", 40),
    "weather4": (SHARED / "weather4" / "photos.zip", 30),
}
OUTPUTS = ("block3", "block4", "block5", "block5max")
C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
COMBINATIONS = {
    "a": "raw block5 avg (today)",
    "b": "sqrt block5",
    "c": "sqrt block4 + block5",
    "d": "sqrt block3 + 4 + 5",
    "e": "(c) with each block L2-normalised",
    "f": "sqrt block4 + 5 avg + block5 max",
    "probe": "LogisticRegression(), raw block5 avg",
}


# --------------------------------------------------------------------------- features, once per (set, size)


def pool_indices(targets, pool: int, seed: int = 0):
    """A fixed stratified sample of `pool` photos (all of them when the set is no larger), in set order."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    everything = np.arange(len(targets))
    if pool >= len(targets):
        return everything
    chosen, _ = train_test_split(everything, train_size=pool, stratify=targets, random_state=seed)
    return np.sort(chosen)


def feature_model(size: int):
    """VGG16 (ImageNet, notop) with the four pooled outputs, as a traced function of a float32 batch."""
    import keras
    import tensorflow as tf

    vgg = keras.applications.VGG16(include_top=False, weights=common.weights_path(), input_shape=(None, None, 3))
    blocks = [vgg.get_layer(f"block{b}_pool").output for b in (3, 4, 5)]
    outputs = [keras.layers.GlobalAveragePooling2D()(t) for t in blocks] + [keras.layers.GlobalMaxPooling2D()(blocks[2])]
    model = keras.Model(vgg.input, outputs)

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    def run(batch):
        return model(batch, training=False)

    return run


def extract(dataset, indices, size: int, batch_size: int) -> dict:
    """The four pooled arrays of the chosen photos; decoding, resizing and VGG16 all timed."""
    import numpy as np
    from keras.applications.vgg16 import preprocess_input

    from quasar_core.data import resize_square

    run = feature_model(size)
    run(np.zeros((1, size, size, 3), np.float32))  # trace before the clock starts
    parts = {name: [] for name in OUTPUTS}
    watch = common.Stopwatch()
    for start in range(0, len(indices), batch_size):
        batch = np.stack([resize_square(dataset.pixels(i), size) for i in indices[start:start + batch_size]])
        for name, out in zip(OUTPUTS, run(preprocess_input(batch))):
            parts[name].append(out.numpy())
    timing = watch.stop()
    arrays = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    arrays.update(seconds=timing["wall"], cpu_seconds=timing["cpu"], others_share=timing["others_share"])
    return arrays


def cache_stem(name: str, size: int, args) -> Path:
    return Path(args.cache_dir) / f"{name}-pool{args.pools[name]}-seed0-{size}px"


def load_features(name: str, size: int, args, state: dict) -> dict:
    """The cached arrays of (set, size), extracting them first if they are not cached."""
    import numpy as np

    path, _ = SETS[name]
    file = cache_stem(name, size, args).with_suffix(".npz")
    if file.is_file():
        with np.load(file) as saved:
            return {key: saved[key] for key in saved.files} | {"cached": True}
    if name not in state:  # decoding the set's headers and digests once, not per size
        from quasar_core.data import Limits, load_dataset

        dataset = load_dataset(path, limits=Limits(max_images=100_000))
        indices = pool_indices(dataset.targets(), args.pools[name])
        state[name] = (dataset, indices)
    dataset, indices = state[name]
    others_before = common.quiet(args)
    print(f"  extracting {name} at {size} px: {len(indices)} photos ...", flush=True)
    arrays = extract(dataset, indices, size, args.batch)
    arrays.update(targets=dataset.targets(indices), labels=np.array(dataset.labels),
                  names=np.array([dataset.samples[i].name for i in indices]), others_before=others_before)
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(".partial.npz")
    np.savez(partial, **arrays)
    partial.rename(file)  # never a half-written cache
    return arrays | {"cached": False}


# --------------------------------------------------------------------------- heads on the cached features


def combination(key: str, f: dict):
    import numpy as np

    def root(name):
        return np.sqrt(np.maximum(f[name], 0.0))

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return {"a": lambda: f["block5"], "probe": lambda: f["block5"], "b": lambda: root("block5"),
            "c": lambda: np.hstack([root("block4"), root("block5")]),
            "d": lambda: np.hstack([root("block3"), root("block4"), root("block5")]),
            "e": lambda: np.hstack([unit(root("block4")), unit(root("block5"))]),
            "f": lambda: np.hstack([root("block4"), root("block5"), root("block5max")])}[key]()


def split(targets, learn_per_class: int, number: int):
    """(learn, unseen) indices into the pool: per class the first `learn_per_class` of a seeded shuffle."""
    import numpy as np

    rng = np.random.default_rng([number, 29])
    learn = np.concatenate([rng.permutation(np.flatnonzero(targets == c))[:learn_per_class]
                            for c in np.unique(targets)])
    return np.sort(learn), np.setdiff1d(np.arange(len(targets)), learn)


def unseen_accuracy(key: str, x, y, learn, unseen, number: int) -> tuple[float, float | None]:
    """(accuracy on the unseen photos, the C chosen; None for the probe)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if key == "probe":
        with warnings.catch_warnings():  # the defaults (100 iterations) are the point of the probe
            warnings.simplefilter("ignore", ConvergenceWarning)
            head = LogisticRegression().fit(x[learn], y[learn])
        return float((head.predict(x[unseen]) == y[unseen]).mean()), None
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000))
    folds = StratifiedKFold(5, shuffle=True, random_state=number)
    search = GridSearchCV(pipeline, {"logisticregression__C": list(C_GRID)}, cv=folds, n_jobs=1)
    search.fit(x[learn], y[learn])  # ties go to the smaller C (first in the grid); refit on every learning photo
    return float((search.predict(x[unseen]) == y[unseen]).mean()), search.best_params_["logisticregression__C"]


def heads(f: dict, splits, stem: Path) -> tuple[dict, dict]:
    """({combination: unseen accuracy per split}, {combination: C per split}), saved beside the features so
    that a run cut off (on a shared machine, processes get killed) resumes where it stopped."""
    import json

    import sklearn.linear_model  # noqa: F401  loaded before the limit: threadpoolctl only limits loaded pools
    from threadpoolctl import threadpool_limits

    file = stem.with_name(f"{stem.name}.heads-{len(splits)}splits.json")
    if file.is_file():
        saved = json.loads(file.read_text())
        if list(saved["accuracies"]) == list(COMBINATIONS):
            return saved["accuracies"], saved["chosen_c"]
    accuracies, chosen_c = {}, {}
    with threadpool_limits(1):  # small fits: BLAS threads spinning on a shared 2-core box cost 20-50x
        for key in COMBINATIONS:
            x = combination(key, f)
            runs = [unseen_accuracy(key, x, f["targets"], learn, unseen, n) for n, (learn, unseen) in enumerate(splits)]
            accuracies[key], chosen_c[key] = [a for a, _ in runs], [c for _, c in runs]
    file.write_text(json.dumps({"accuracies": accuracies, "chosen_c": chosen_c}))
    return accuracies, chosen_c


def paired(a, b) -> dict:
    """Mean of b - a in points over the splits and its standard error."""
    import numpy as np

    diff = 100 * (np.asarray(b) - np.asarray(a))
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return {"mean": float(diff.mean()), "se": se, "ahead": int((diff > 0).sum()), "behind": int((diff < 0).sum())}


def summarise(accuracies: dict, baseline, first_size_baseline) -> dict:
    import numpy as np

    out = {}
    for key, values in accuracies.items():
        values = np.asarray(values)
        out[key] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "vs_a": paired(baseline, values), "vs_a_first_size": paired(first_size_baseline, values)}
    return out


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--datasets", default="flowers-full,weather4")
    p.add_argument("--sizes", default="224,352")
    p.add_argument("--splits", type=int, default=10)
    p.add_argument("--flowers-pool", type=int, default=1500)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--cache-dir", default="/tmp/quasar-bench-features")
    args = p.parse_args(argv)
    if args.quick:
        args.splits, args.sizes, quick_pool = 3, "224", 300
    args.pools = {"flowers-full": args.flowers_pool, "weather4": 942}
    if args.quick:
        args.pools = {name: quick_pool for name in args.pools}
    sizes = [int(s) for s in args.sizes.split(",")]
    started, info = common.begin(args)
    results = {"machine": info, "settings": {k: v for k, v in vars(args).items()}, "datasets": {}}
    state: dict = {}
    for name in args.datasets.split(","):
        _, learn_per_class = SETS[name]
        by_size, accuracies = {}, {}
        for size in sizes:
            f = load_features(name, size, args, state)
            y = f["targets"]
            splits = [split(y, learn_per_class, n) for n in range(args.splits)]
            rate = len(y) / float(f["seconds"])
            # Photos per CPU-second: what the pass costs even when others share the CPU (older caches lack it).
            cpu_rate = len(y) / float(f["cpu_seconds"]) if "cpu_seconds" in f else None
            print(f"\n{name}, {size} px: pool {len(y)} photos, {len(f['labels'])} classes; {args.splits} splits of "
                  f"{learn_per_class} a class to learn from, {len(splits[0][1])} unseen each; extraction "
                  f"{rate:.2f} photos/s ({float(f['seconds']):.0f} s, {common.fmt(cpu_rate)} photos per CPU-s, "
                  f"others {float(f['others_share']):.0%}"
                  f"{', cached' if f['cached'] else ''})", flush=True)
            accuracies[size], chosen_c = heads(f, splits, cache_stem(name, size, args))
            summary = summarise(accuracies[size], accuracies[size]["a"], accuracies[sizes[0]]["a"])
            print(f"  {'combination':42} {'unseen':>7} {'sd':>5}   {'vs (a), points':>16}   "
                  f"{f'vs (a) at {sizes[0]} px':>18}   C chosen")
            for key, words in COMBINATIONS.items():
                s = summary[key]
                cs = "" if key == "probe" else ",".join(f"{c:g}" for c in chosen_c[key])
                print(f"  ({key}) {words:37} {s['mean']:7.3f} {s['sd']:5.3f}   {s['vs_a']['mean']:+7.2f} (se {s['vs_a']['se']:.2f})"
                      f"   {s['vs_a_first_size']['mean']:+8.2f} (se {s['vs_a_first_size']['se']:.2f})   {cs}", flush=True)
            by_size[size] = {"pool": len(y), "classes": [str(c) for c in f["labels"]], "unseen_per_split": len(splits[0][1]),
                             "learn_per_split": len(splits[0][0]), "extraction_seconds": float(f["seconds"]),
                             "photos_per_second": rate, "photos_per_cpu_second": cpu_rate, "others_share": float(f["others_share"]),
                             "cached": bool(f["cached"]), "summary": summary, "accuracies": accuracies[size],
                             "chosen_c": chosen_c}
        results["datasets"][name] = by_size
    results["total_seconds"] = time.perf_counter() - started
    print(f"\ntotal run time of bench_features.py: {results['total_seconds']:.0f} s")
    print(f"results: {common.write_results('bench_features', results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
