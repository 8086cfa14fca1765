"""Feature-pass photos/s of the engine's FeaturePass for float32, bfloat16 and int8, against the plain forward limit.

    python bench/bench_throughput.py [--sizes 96,128,224] [--precisions float32,bfloat16,int8]
                                     [--photos 0] [--repeats 3] [--quick]

In one process, for each image size and precision:

  limit      the plain forward pass on a fixed batch of 32 already-resized images, best of
             --repeats: for float32 Keras' VGG16 base in a tf.function (input preprocessed),
             for bfloat16 the same layers with bfloat16 weights (as the engine builds them), and
             for int8 ONNX Runtime's *float* model of the same graph (int8's float reference);
             the int8 session's own batch-32 rate is printed too
  engine     quasar_core.features.extract.FeaturePass.features over real photos (flowers JPEGs,
             decoded from disk, THE resize, the engine's batch size for that size, prefetching,
             cache writes) into a fresh on-disk cache each time (nothing cached: every photo goes
             through VGG16), the network from the engine's network_provider; one untimed
             warm-up pass (tracing, oneDNN primitives, building the quantized model), then best
             of --repeats

ratio = engine / limit: what the feature pass keeps of the network's speed (decoding, resizing,
small batches and cache writes are its costs). Also: bfloat16 and int8 over float32 per size.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

LIMIT_BATCH = 32
CONTENTION: list[float] = []  # other processes' CPU share during each best timing


def best_of(fn, repeats: int) -> dict:
    best = None
    for _ in range(repeats):
        watch = common.Stopwatch()
        fn()
        timing = watch.stop()
        if best is None or timing["wall"] < best["wall"]:
            best = timing
    CONTENTION.append(best["others_share"])
    return best


def keras_limit(base, precision: str, size: int, repeats: int) -> float:
    import keras
    import tensorflow as tf

    from quasar_core.backbone import apply_stack, copy_weights

    if precision == "float32":
        model = base
    else:
        inputs = keras.Input(shape=(None, None, 3))
        outputs, pairs = apply_stack(base, inputs, start_after=None, stop_at=base.layers[-1].name,
                                     dtype="bfloat16", trainable=False)
        model = keras.Model(inputs, outputs)
        copy_weights(pairs)
    forward = tf.function(lambda x: model(x, training=False))
    x = tf.random.uniform((LIMIT_BATCH, size, size, 3), -120.0, 140.0, seed=0)
    forward(x).numpy()  # trace and warm up
    return LIMIT_BATCH / best_of(lambda: forward(x).numpy(), repeats)["wall"]


def ort_limits(size: int, models_dir: Path, repeats: int) -> tuple[float, float]:
    """(ORT float model, ORT int8 session) photos/s at batch 32."""
    import numpy as np

    from quasar_core import backbone
    from quasar_core.features import int8

    x = np.random.default_rng(0).uniform(0, 255, (LIMIT_BATCH, size, size, 3)).astype(np.float32)
    rates = []
    for network in (int8.float_network(weights_path=common.weights_path(), image_size=size),
                    int8.load_int8_network(weights_path=common.weights_path(), weights_id=backbone.weights_id(),
                                           image_size=size, models_dir=models_dir)):
        network(x)
        rates.append(LIMIT_BATCH / best_of(lambda: network(x), repeats)["wall"])
    return rates[0], rates[1]


def engine_rate(dataset, precision: str, size: int, caches: Path, base_loader, repeats: int) -> tuple[float, int]:
    import numpy as np

    from quasar_core import backbone
    from quasar_core.features.cache import FeatureCache, FeatureSpec
    from quasar_core.features.extract import FeaturePass, batch_size_for, network_provider

    counter = {"n": 0}

    def one_pass():
        counter["n"] += 1
        cache = FeatureCache(caches / f"{precision}-{size}-{counter['n']}")  # fresh: every photo computed
        spec = FeatureSpec(backbone.weights_id("imagenet"), size, precision)
        network_for = network_provider(weights="imagenet", image_size=size, precision=precision,
                                       base_loader=base_loader, cache=cache)
        feature_pass = FeaturePass(spec=spec, network_for=network_for, cache=cache)
        features = feature_pass.features(dataset, np.arange(len(dataset)))
        assert features.shape == (1, len(dataset), 512) and feature_pass.computed == len(dataset)

    one_pass()  # warm-up: tracing, oneDNN primitives, the quantized model
    return len(dataset) / best_of(one_pass, repeats)["wall"], batch_size_for(size)


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--sizes", default="96,128,224")
    p.add_argument("--precisions", default="float32,bfloat16,int8")
    p.add_argument("--photos", type=int, default=0,
                   help="photos per engine pass (default: 8 engine batches, at least 64)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.photos, args.repeats = "32,48", 16, 2
    common.finish_args(args)

    started = time.perf_counter()
    common.weights_path()
    info = common.machine_info()
    common.print_machine(info)
    info["others_cpu_share_before"] = common.quiet(args)
    import keras
    import tensorflow as tf

    from quasar_core.data import load_folder
    from quasar_core.features.extract import batch_size_for

    tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(0)
    base_loader = common.shared_base_loader()
    base = base_loader()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    precisions = [s.strip() for s in args.precisions.split(",") if s.strip()]
    results = {"machine": info, "versions": common.tf_versions(), "rows": {}}
    print(f"Photos/s. limit = the network alone on a fixed batch of {LIMIT_BATCH} (best of {args.repeats}); engine = "
          "FeaturePass over real photos from disk into a fresh cache (best of "
          f"{args.repeats} after a warm-up).", flush=True)
    with common.work_dir(args, "quasar-bench-throughput-") as work:
        needed = max(args.photos or max(64, 8 * batch_size_for(size)) for size in sizes)
        photos, _ = common.write_flowers_sets(work / "photos", train_per_class=max(5, -(-needed // 5)),
                                              test_per_class=0)
        everything = load_folder(photos)
        for size in sizes:
            n = args.photos or max(64, 8 * batch_size_for(size))
            dataset = everything.subset(range(min(n, len(everything))))
            for precision in precisions:
                common.quiet(args)
                row = {"size": size, "precision": precision, "photos": len(dataset), "limit_batch": LIMIT_BATCH}
                if precision == "int8":
                    row["limit_images_per_s"], row["int8_session_images_per_s"] = ort_limits(
                        size, work / "caches" / "int8-models", args.repeats)
                    row["limit_kind"] = "ONNX Runtime float model"
                else:
                    row["limit_images_per_s"] = keras_limit(base, precision, size, args.repeats)
                    row["limit_kind"] = f"Keras VGG16 ({precision})"
                row["engine_images_per_s"], row["engine_batch"] = engine_rate(
                    dataset, precision, size, work / "caches", base_loader, args.repeats)
                row["ratio"] = row["engine_images_per_s"] / row["limit_images_per_s"]
                results["rows"][f"{size}_{precision}"] = row
                extra = (f"; int8 session alone {row['int8_session_images_per_s']:6.1f}/s (engine keeps "
                         f"{row['engine_images_per_s'] / row['int8_session_images_per_s']:.2f})"
                         if precision == "int8" else "")
                print(f"  {size:>3}px {precision:8}: limit {row['limit_images_per_s']:7.1f}/s ({row['limit_kind']}), "
                      f"engine {row['engine_images_per_s']:7.1f}/s (batch {row['engine_batch']}, {len(dataset)} photos)"
                      f" -> ratio {row['ratio']:.2f}{extra}", flush=True)
            fp32 = results["rows"].get(f"{size}_float32")
            for precision in ("bfloat16", "int8"):
                other = results["rows"].get(f"{size}_{precision}")
                if fp32 and other:
                    speedup = other["engine_images_per_s"] / fp32["engine_images_per_s"]
                    other["engine_speedup_over_float32"] = speedup
                    print(f"  {size:>3}px {precision} engine pass / float32 engine pass: {speedup:.2f}x", flush=True)
    total = time.perf_counter() - started
    results["total_seconds"] = total
    info["others_cpu_share_during_best_timings"] = CONTENTION
    print(f"other processes' share of the CPU during the best timings: max {max(CONTENTION, default=0):.0%}")
    print(f"total run time of bench_throughput.py: {total:.0f} s")
    print(f"results: {common.write_results('bench_throughput', results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
