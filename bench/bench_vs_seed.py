"""The engine vs the seed's recipe: training wall time, held-out accuracy, peak memory.

    python bench/bench_vs_seed.py [--train-per-class 40] [--test-per-class 100]

Same 224 px images for every arm: 5 classes x 40 training images from Fashion-MNIST
images 0..29,999 and 5 x 100 unseen test images from 30,000 on. Each arm trains in its own
Python process, so its peak RSS is its own. Wall time is training only, the same for every
arm: from the decoded 28 px images and a loaded VGG16 to a trained model that predicts from
images (resizing to 224 px, preprocessing, building the head and fitting all included;
loading VGG16's weights and evaluating excluded).

Arms: seed = keras.applications.VGG16 frozen -> Flatten -> Dense(256, relu) -> Dense(5),
model.fit on the image arrays, 5 epochs, batch 32, Adam(); engine = TransferClassifier with
TrainConfig(image_size=224, epochs=5), with its own default epochs, and with
precision="float32" forced.
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

SIZE = 224
EVAL_CHUNK = 50
ARMS = {
    # name: (kind, epochs or None for the engine's default, precision)
    "seed": ("seed", 5, None),
    "engine_e5": ("engine", 5, "auto"),
    "engine_default_epochs": ("engine", None, "auto"),
    "engine_e5_fp32": ("engine", 5, "float32"),
}


# --- child: one arm -------------------------------------------------------------------------
def child(arm: str, data_dir: Path) -> dict:
    import numpy as np

    weights = common.weights_path()
    import keras

    from quasar_core.data import Split, load_folder

    kind, epochs, precision = ARMS[arm]
    train = load_folder(data_dir / "train")
    test = load_folder(data_dir / "test")
    assert train.labels == test.labels, (train.labels, test.labels)
    result = {"arm": arm, "n_train": len(train), "n_test": len(test), "rss_mb_after_imports": common.rss_mb()}

    started = time.perf_counter()
    if kind == "seed":
        base = keras.applications.VGG16(weights=weights, include_top=False, input_shape=(SIZE, SIZE, 3))
    else:
        from quasar_core.backbone import load_vgg16

        base = load_vgg16(weights)
    result["load_vgg16_seconds"] = time.perf_counter() - started
    result["rss_mb_before_training"] = common.rss_mb()

    if kind == "seed":
        from keras.applications.vgg16 import preprocess_input

        keras.utils.set_random_seed(0)
        watch = common.Stopwatch()
        x = preprocess_input(train.images(size=SIZE).astype("float32"))
        y = train.targets()
        base.trainable = False
        model = keras.Sequential([
            base,
            keras.layers.Flatten(),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(len(train.labels), activation="softmax"),
        ])
        model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
        result["train"] = watch.stop()
        result["epochs"] = epochs
        result["final_train_accuracy"] = float(history.history["accuracy"][-1])
        del x

        def predict(images):
            return model.predict(preprocess_input(images.astype("float32")), batch_size=32, verbose=0)
    else:
        from quasar_core.config import TrainConfig
        from quasar_core.training import TransferClassifier

        settings = {"image_size": SIZE, "precision": precision}
        if epochs is not None:
            settings["epochs"] = epochs
        config = TrainConfig(**settings)
        everything = np.arange(len(train))
        split = Split(train=everything, val=np.empty(0, np.int64), test=np.empty(0, np.int64))
        watch = common.Stopwatch()
        classifier = TransferClassifier(config, base=base).fit(train, split)
        result["train"] = watch.stop()
        result["epochs"] = config.epochs
        result["precision"] = classifier.precision_
        result["phase_seconds"] = classifier.timings_
        result["final_train_accuracy"] = float(classifier.history_[-1].get("accuracy", float("nan")))
        predict = classifier.predict_proba
    result["peak_rss_mb_training"] = common.peak_rss_mb()
    result["train_seconds"] = result["train"]["wall"]

    started = time.perf_counter()
    y_test = test.targets()
    correct = 0
    for start in range(0, len(test), EVAL_CHUNK):
        chunk = np.arange(start, min(len(test), start + EVAL_CHUNK))
        probabilities = predict(test.images(chunk, size=SIZE))
        correct += int((np.asarray(probabilities).argmax(axis=1) == y_test[chunk]).sum())
    result["test_accuracy"] = correct / len(test)
    result["evaluate_seconds"] = time.perf_counter() - started
    result["peak_rss_mb_end"] = common.peak_rss_mb()
    return result


# --- parent ---------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=40)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of " + ", ".join(ARMS))
    parser.add_argument("--max-wait", type=float, default=600,
                        help="seconds to wait, before each arm, for other processes to leave the CPU")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = child(args.child, Path(args.data))
        Path(args.out).write_text(json.dumps(result))
        return 0

    common.weights_path()
    total_started = time.perf_counter()
    info = common.machine_info()
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    results = {}
    with tempfile.TemporaryDirectory(prefix="quasar-bench-") as tmp:
        common.write_fashion_sets(Path(tmp), train_per_class=args.train_per_class,
                                  test_per_class=args.test_per_class)
        for arm in arms:
            quiet = common.wait_for_quiet(args.max_wait)
            print(f"[{arm}] training in a fresh process ...", flush=True)
            results[arm] = r = common.run_child(Path(__file__), arm, "--data", tmp)
            r["others_cpu_share_before"] = quiet
            print(f"[{arm}] train {r['train_seconds']:.1f} s (CPU {r['train']['cpu']:.1f} s, other processes "
                  f"{r['train']['others_share']:.0%} of the CPU), test accuracy {r['test_accuracy']:.3f}, "
                  f"peak RSS {r['peak_rss_mb_training']:.0f} MB", flush=True)

    summary = {}
    print()
    print(f"Same {SIZE}px images: {args.train_per_class * 5} training (Fashion-MNIST 0..29,999), "
          f"{args.test_per_class * 5} unseen test (30,000+). Training wall time = fit start to trained model.")
    print(f"{'arm':22} {'epochs':>6} {'precision':>9} {'train s':>8} {'CPU s':>7} {'others':>6} {'test acc':>8} "
          f"{'peak RSS MB train / +eval':>26}")
    for arm, r in results.items():
        print(f"{arm:22} {r['epochs']:>6} {r.get('precision', 'float32'):>9} {r['train_seconds']:>8.1f} "
              f"{r['train']['cpu']:>7.1f} {r['train']['others_share']:>6.0%} {r['test_accuracy']:>8.3f} "
              f"{r['peak_rss_mb_training']:>13.0f} / {r['peak_rss_mb_end']:<8.0f}")
    seed = results.get("seed")
    for arm in ("engine_e5", "engine_default_epochs", "engine_e5_fp32"):
        if seed and arm in results:
            engine = results[arm]
            ratio = seed["train_seconds"] / engine["train_seconds"]
            cpu_ratio = seed["train"]["cpu"] / engine["train"]["cpu"]
            delta = 100 * (engine["test_accuracy"] - seed["test_accuracy"])
            summary[f"speedup_{arm}"] = ratio
            summary[f"cpu_time_ratio_{arm}"] = cpu_ratio
            summary[f"accuracy_points_{arm}_minus_seed"] = delta
            print(f"speed-up seed/{arm}: {ratio:.1f}x wall (target >= 10), {cpu_ratio:.1f}x CPU time; "
                  f"accuracy {engine['test_accuracy']:.3f} vs seed {seed['test_accuracy']:.3f} "
                  f"({delta:+.1f} points)")
    if "engine_e5" in results and "engine_e5_fp32" in results:
        bf16, fp32 = results["engine_e5"], results["engine_e5_fp32"]
        delta = 100 * (bf16["test_accuracy"] - fp32["test_accuracy"])
        summary["accuracy_points_bf16_minus_fp32"] = delta
        summary["feature_pass_speedup_bf16_over_fp32"] = (fp32["phase_seconds"]["features"]
                                                          / bf16["phase_seconds"]["features"])
        print(f"engine {bf16['precision']} vs float32 held-out accuracy: {bf16['test_accuracy']:.3f} vs "
              f"{fp32['test_accuracy']:.3f} ({delta:+.1f} points, target within 1); feature pass "
              f"{fp32['phase_seconds']['features']:.1f} s -> {bf16['phase_seconds']['features']:.1f} s")
    for arm, r in results.items():
        if "phase_seconds" in r:
            phases = ", ".join(f"{k} {v:.1f} s" for k, v in r["phase_seconds"].items())
            print(f"{arm} phases: {phases}; other (resize, head build, assembly) "
                  f"{r['train_seconds'] - sum(r['phase_seconds'].values()):.1f} s")
    total = time.perf_counter() - total_started
    print(f"total run time of bench_vs_seed.py: {total:.0f} s")
    info["load_average_at_end"] = os.getloadavg()
    path = common.write_results("bench_vs_seed", {
        "machine": info, "arms": results, "summary": summary, "total_seconds": total,
        "train_per_class": args.train_per_class, "test_per_class": args.test_per_class, "image_size": SIZE,
    })
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
