"""The whole `quasar train` process vs the seed's recipe, on the same photos: time, phases, accuracy on unseen photos.

    python bench/bench_vs_seed.py [--datasets fashion,flowers] [--arms ...] [--size 224]
                                  [--train-per-class 40] [--test-per-class 100] [--quick]

For each data set (Fashion-MNIST through scripts/make_sample_dataset.py's code: 40 per class
from images 0..29,999 to train, 100 per class from 30,000 on, unseen; flowers: 40 per class of
/work/scratch/flowers to train, 100 other photos per class unseen), every arm is its own
process, started and waited for by this script (wall time = launch to exit, peak RSS = the
child's VmHWM from wait4):

  seed            the seed's recipe as a script: TensorFlow + Keras imported, the photos read and
                  decoded (the engine's loader), resized to 224 px, keras VGG16 (frozen) -> Flatten
                  -> Dense(256, relu) -> Dense(5, softmax), Adam, model.fit 5 epochs batch 32, the
                  model saved (model.keras); its model.fit time alone is printed too
  float32 bfloat16 int8 auto
                  `quasar train DATA --out RUN --image-size 224 --precision P` with a fresh
                  QUASAR_CACHE_DIR (for int8 that includes building the quantized model, the
                  one-off of the first int8 training on a machine)
  int8_prebuilt   the same with the quantized model already on disk (fresh feature cache): every
                  later int8 training
  auto_prebuilt   `--precision auto` likewise: every later default training (the int8 check on
                  the first photos still runs: they are new photos)
  second          after `auto`: the same photos again with --no-class-weights, another --out, the
                  same cache (only the head is new)

Unseen accuracy, after the timings, in other processes: for the seed its saved model; for the
engine the runs' deployed model (runs.learned.classifier_of(run).predict_proba, as `quasar
evaluate` does) in one pass over the unseen photos, every other run's head applied to the same
pooled features (all arms share the float32 VGG16 of the deployed model; checked against
predict_proba). The engine's train processes run
through bench/_train_probe.py, which is `quasar_core.cli.main` with timers around the phases
(imports, weights, checking, feature pass, heads, saving; start and exit from this side).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

ENGINE_ARMS = {  # name: (precision, extra CLI flags)
    "float32": ("float32", []),
    "bfloat16": ("bfloat16", []),
    "int8": ("int8", []),
    "int8_prebuilt": ("int8", []),
    "auto": ("auto", []),
    "auto_prebuilt": ("auto", []),
    "second": ("auto", ["--no-class-weights"]),
}
ARMS = ("seed", *ENGINE_ARMS)
EVAL_CHUNK = 50


# --- the seed's recipe, in a child process ------------------------------------------------------
def seed_train(data: Path, model_path: Path, spans_path: Path, size: int, epochs: int, batch: int) -> None:
    spans = common.Spans()
    common.ImportTimer(spans).install()
    entered = time.time()
    fit = {}
    try:
        with spans.span("cli", "seed recipe"):
            with spans.span("imports", "import keras and the loader"):
                import keras
                from keras.applications.vgg16 import preprocess_input

                from quasar_core.data import load_folder
            with spans.span("check", "read, decode and check the photos"):
                train = load_folder(data)
            with spans.span("check", "decode again and resize to the training size"):
                x = preprocess_input(train.images(size=size).astype("float32"))
                y = train.targets()
            with spans.span("weights", "VGG16 built and weights loaded"):
                keras.utils.set_random_seed(0)
                base = keras.applications.VGG16(weights=common.weights_path(), include_top=False,
                                                input_shape=(size, size, 3))
                base.trainable = False
                model = keras.Sequential([
                    base,
                    keras.layers.Flatten(),
                    keras.layers.Dense(256, activation="relu"),
                    keras.layers.Dense(len(train.labels), activation="softmax"),
                ])
                model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy",
                              metrics=["accuracy"])
            with spans.span("model.fit", f"model.fit, {epochs} epochs, batch {batch}"):
                watch = common.Stopwatch()
                history = model.fit(x, y, epochs=epochs, batch_size=batch, verbose=0)
                fit = watch.stop()
            with spans.span("saving", "model.save"):
                model.save(model_path)
    finally:
        spans_path.write_text(json.dumps({
            "entered": entered, "left": time.time(), "fit": fit, "labels": list(train.labels),
            "final_train_accuracy": float(history.history["accuracy"][-1]) if fit else None,
            "n_train": len(train), **spans.to_dict()}))


def seed_evaluate(model_path: Path, test: Path, size: int, out: Path) -> None:
    import keras
    import numpy as np
    from keras.applications.vgg16 import preprocess_input

    from quasar_core.data import load_folder

    model = keras.saving.load_model(model_path)
    dataset = load_folder(test)
    y = dataset.targets()
    right = 0
    for start in range(0, len(dataset), EVAL_CHUNK):
        chunk = np.arange(start, min(len(dataset), start + EVAL_CHUNK))
        p = model.predict(preprocess_input(dataset.images(chunk, size=size)), batch_size=32, verbose=0)
        right += int((p.argmax(1) == y[chunk]).sum())
    out.write_text(json.dumps({"accuracy": right / len(dataset), "n_test": len(dataset)}))


# --- the parent ------------------------------------------------------------------------------
def engine_evaluate_all(run_dirs: list[Path], test: Path, out: Path) -> None:
    """Every run's unseen accuracy from ONE pass of the deployed model over the test photos.

    The runs are feature extraction at one size, so their deployed models share everything up to
    the pooled features (resize, preprocessing, float32 VGG16): the first run's model gives the
    probabilities and those features (predict_proba(with_features=True)); every other run's head
    is applied to the same features. The first run's two answers are compared as a check.
    """
    import numpy as np

    from quasar_core.data import Limits, load_folder
    from quasar_core.head import Head
    from quasar_core.runs.folder import FILES, Run
    from quasar_core.runs.learned import classifier_of

    runs = [Run.open(path) for path in run_dirs]
    if len({run.config.image_size for run in runs}) != 1 or any((run.path / FILES.TUNED).exists() for run in runs):
        raise SystemExit("engine-eval needs feature-extraction runs of one image size")
    dataset = load_folder(test, limits=Limits.from_env(max_images=100_000))
    labels = runs[0].labels
    y = np.array([labels.index(s.label) for s in dataset.samples])
    classifier = classifier_of(runs[0])
    probabilities, features = [], []
    for start in range(0, len(dataset), EVAL_CHUNK):
        chunk = range(start, min(len(dataset), start + EVAL_CHUNK))
        p, f = classifier.predict_proba([dataset.pixels(i) for i in chunk], with_features=True)
        probabilities.append(p)
        features.append(f)
    probabilities, features = np.concatenate(probabilities), np.concatenate(features)
    result = {"n_test": len(dataset), "runs": {}}
    for run in runs:
        assert run.labels == labels, (run.labels, labels)
        head = Head.from_arrays(run.arrays(FILES.HEAD))
        predicted = head.probabilities(features).argmax(1)
        result["runs"][str(run.path)] = {"accuracy": float((predicted == y).mean())}
    first = Head.from_arrays(runs[0].arrays(FILES.HEAD)).probabilities(features).argmax(1)
    result["check_agreement"] = float((first == probabilities.argmax(1)).mean())  # 1.0 expected
    result["predict_proba_accuracy_first"] = float((probabilities.argmax(1) == y).mean())
    out.write_text(json.dumps(result))


def prebuild_int8(models_dir: Path, size: int, env: dict) -> None:
    """The quantized model for this size, built on disk beforehand (not timed)."""
    code = ("import sys; from quasar_core import backbone; from quasar_core.features import int8; "
            f"int8.load_int8_network(weights_path=sys.argv[1], weights_id=backbone.weights_id(), image_size={size}, "
            "models_dir=sys.argv[2])")
    common.run_process([sys.executable, "-c", code, common.weights_path(), str(models_dir)], env=env)


def run_seed(data: Path, test: Path, work: Path, args) -> dict:
    model_path, spans_path, eval_path = work / "seed.keras", work / "seed-spans.json", work / "seed-eval.json"
    script = str(Path(__file__).resolve())
    process = common.run_process([sys.executable, script, "--child", "seed-train", "--data", str(data),
                                  "--model", str(model_path), "--spans", str(spans_path), "--size", str(args.size),
                                  "--epochs", str(args.seed_epochs)], env=common.child_env(),
                                 log=work / "seed-train.log")
    spans = json.loads(spans_path.read_text())
    common.run_process([sys.executable, script, "--child", "seed-eval", "--model", str(model_path), "--data",
                        str(test), "--size", str(args.size), "--out", str(eval_path)], env=common.child_env(),
                       log=work / "seed-eval.log")
    evaluation = json.loads(eval_path.read_text())
    phases = common.phase_breakdown(process, spans)
    return {"process": {k: v for k, v in process.items() if k != "output_tail"}, "phases": phases,
            "fit_seconds": spans["fit"].get("wall"), "fit_cpu": spans["fit"].get("cpu"),
            "final_train_accuracy": spans.get("final_train_accuracy"), "n_train": spans.get("n_train"),
            "unseen": evaluation, "precision": "float32"}


def run_engine(arm: str, data: Path, test: Path, work: Path, args, first_cache: Path | None) -> dict:
    precision, extra = ENGINE_ARMS[arm]
    folder = work / arm
    folder.mkdir()
    cache = (first_cache if arm == "second" and first_cache is not None else folder / "features")
    env = common.child_env(QUASAR_CACHE_DIR=cache)
    if arm in ("int8_prebuilt", "auto_prebuilt"):
        prebuild_int8(cache.parent / "int8-models", args.size, env)
    run_dir = folder / "run"
    cli = ["train", str(data), "--out", str(run_dir), "--image-size", str(args.size), "--precision", precision,
           "--max-images", "100000", *extra]
    result = common.run_probe(cli, env=env, spans_file=folder / "spans.json", log=folder / "train.log")
    status = json.loads((run_dir / "status.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = json.loads((run_dir / "data_report.json").read_text())
    return {"process": {k: v for k, v in result["process"].items() if k != "output_tail"},
            "phases": result["phases"], "precision": status.get("precision"),
            "precision_reason": status.get("precision_reason"), "status_timings": status.get("timings"),
            "tensorflow_imported": result["spans"].get("tensorflow_imported"),
            "cv_accuracy": metrics["accuracy"], "cv_interval": metrics.get("accuracy_interval"),
            "cv_method": metrics.get("method"), "n_train": sum(report["counts"].values()), "run_dir": str(run_dir),
            "cache_dir": str(cache), "cli": cli}


def evaluate_engine_arms(arms: dict, test: Path, work: Path) -> None:
    """Fill in each engine arm's unseen accuracy (one child process, one pass of the deployed model)."""
    engine = {arm: r for arm, r in arms.items() if arm != "seed"}
    if not engine:
        return
    out = work / "engine-eval.json"
    common.run_process([sys.executable, str(Path(__file__).resolve()), "--child", "engine-eval", "--runs",
                        ",".join(r["run_dir"] for r in engine.values()), "--data", str(test), "--out", str(out)],
                       env=common.child_env(), log=work / "engine-eval.log")
    evaluation = json.loads(out.read_text())
    for r in engine.values():
        r["unseen"] = {**evaluation["runs"][r["run_dir"]], "n_test": evaluation["n_test"]}
        r["unseen_check_agreement"] = evaluation["check_agreement"]
    first = next(iter(engine.values()))
    print(f"  (engine arms' unseen accuracy: one pass of the deployed model; heads agree with predict_proba on "
          f"{evaluation['check_agreement']:.1%} of the photos)", flush=True)
    first["unseen"]["predict_proba_accuracy"] = evaluation["predict_proba_accuracy_first"]


def make_data(name: str, root: Path, args):
    if name == "fashion":
        return common.write_fashion_sets(root, train_per_class=args.train_per_class,
                                         test_per_class=args.test_per_class)
    if name == "flowers":
        return common.write_flowers_sets(root, train_per_class=args.train_per_class,
                                         test_per_class=args.test_per_class)
    raise SystemExit(f"unknown data set {name!r} (fashion, flowers)")


def report(name: str, arms: dict, args) -> dict:
    seed = arms.get("seed")
    summary = {}
    print(f"\n[{name}] {args.train_per_class * 5} training photos, {args.test_per_class * 5} unseen, {args.size} px. "
          "Whole process = launch to exit.")
    print(f"  {'arm':14} {'ran':9} {'whole s':>8} {'CPU s':>7} {'others':>6} {'peak MB':>8} "
          f"{'reported (95 % interval)':>25} {'unseen':>7} {'vs seed':>8}")
    for arm, r in arms.items():
        p = r["process"]
        reported = (f"{r['cv_accuracy']:.3f} ({r['cv_interval'][0]:.3f}-{r['cv_interval'][1]:.3f})"
                    if r.get("cv_interval") else "-")
        speedup = common.ratio(seed["process"]["wall"], p["wall"]) if seed and arm != "seed" else None
        print(f"  {arm:14} {r.get('precision') or '-':9} {p['wall']:>8.1f} {p['cpu']:>7.1f} {p['others_share']:>6.0%} "
              f"{p['peak_rss_mb']:>8.0f} {reported:>25} {r['unseen']['accuracy']:>7.3f} "
              f"{common.fmt(speedup, '.1f') + 'x' if speedup else '':>8}")
    if seed:
        print(f"  seed: model.fit alone {seed['fit_seconds']:.1f} s of its {seed['process']['wall']:.1f} s "
              f"(CPU {seed['fit_cpu']:.1f} s); unseen accuracy {seed['unseen']['accuracy']:.3f} on "
              f"{seed['unseen']['n_test']} photos")
        for arm, r in arms.items():
            if arm in ("seed", "second"):
                continue
            whole = common.ratio(seed["process"]["wall"], r["process"]["wall"])
            cpu = common.ratio(seed["process"]["cpu"], r["process"]["cpu"])
            fit_only = common.ratio(seed["fit_seconds"], r["process"]["wall"])
            delta = 100 * (r["unseen"]["accuracy"] - seed["unseen"]["accuracy"])
            summary[f"speedup_whole_{arm}"], summary[f"speedup_cpu_{arm}"] = whole, cpu
            summary[f"speedup_vs_seed_fit_only_{arm}"] = fit_only
            summary[f"unseen_points_{arm}_minus_seed"] = delta
            print(f"  speed-up vs seed, {arm:13}: {whole:5.1f}x whole process ({cpu:.1f}x CPU time; seed's "
                  f"model.fit alone / this whole process {fit_only:.1f}x); unseen accuracy {delta:+.1f} points")
    bf16 = arms.get("bfloat16")
    for arm in ("int8", "int8_prebuilt"):
        if bf16 and arm in arms:
            value = common.ratio(bf16["process"]["wall"], arms[arm]["process"]["wall"])
            summary[f"{arm}_vs_bfloat16_whole"] = value
            flags = common.cpu_flags()
            vnni = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"}) or "none"
            bf16_native = "yes" if flags & {"avx512_bf16", "amx_bf16"} else "no"
            print(f"  {arm} vs bfloat16, whole process: {value:.2f}x faster (goal on VNNI/AMX CPUs >= 1.8x; this "
                  f"CPU: int8 instructions {vnni}, native bf16 {bf16_native})")
    if "auto" in arms and "second" in arms:
        value = common.ratio(arms["second"]["process"]["wall"], arms["auto"]["process"]["wall"])
        summary["second_over_first"] = value
        print(f"  second training, same photos, --no-class-weights, same cache: {arms['second']['process']['wall']:.1f}"
              f" s vs {arms['auto']['process']['wall']:.1f} s = {value:.2f}x (goal <= 0.3x, process start included: "
              f"{common.verdict(value, at_most=0.3)})")
    for arm, r in arms.items():
        if arm != "seed" and r.get("cv_interval"):
            low, high = r["cv_interval"]
            covered = low <= r["unseen"]["accuracy"] <= high
            summary[f"interval_covers_unseen_{arm}"] = covered
    print("  phases (seconds, each instant counted once):")
    common.print_phases({arm: r["phases"] for arm, r in arms.items()})
    return summary


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--datasets", default="fashion,flowers")
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of " + ", ".join(ARMS))
    p.add_argument("--size", type=int, default=224, help="image size of every arm (default %(default)s)")
    p.add_argument("--train-per-class", type=int, default=40)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--seed-epochs", type=int, default=5)
    p.add_argument("--child", help=argparse_suppress())
    p.add_argument("--data", help=argparse_suppress())
    p.add_argument("--model", help=argparse_suppress())
    p.add_argument("--spans", help=argparse_suppress())
    p.add_argument("--epochs", type=int, default=5, help=argparse_suppress())
    p.add_argument("--out", help=argparse_suppress())
    p.add_argument("--runs", help=argparse_suppress())
    args = p.parse_args(argv)
    if args.child == "seed-train":
        seed_train(Path(args.data), Path(args.model), Path(args.spans), args.size, args.epochs, 32)
        return 0
    if args.child == "engine-eval":
        engine_evaluate_all([Path(p) for p in args.runs.split(",")], Path(args.data), Path(args.out))
        return 0
    if args.child == "seed-eval":
        seed_evaluate(Path(args.model), Path(args.data), args.size, Path(args.out))
        return 0
    if args.quick:
        args.size, args.train_per_class, args.test_per_class, args.seed_epochs = 32, 6, 10, 2
    common.finish_args(args)

    common.weights_path()
    started = time.perf_counter()
    info = common.machine_info()
    common.print_machine(info)
    arms_wanted = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(arms_wanted) - set(ARMS))
    if unknown:
        raise SystemExit(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    results, summaries = {}, {}
    with common.work_dir(args, "quasar-bench-vs-seed-") as work:
        for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            root = work / name
            train, test = make_data(name, root / "photos", args)
            arms = results[name] = {}
            for arm in arms_wanted:
                if arm == "second" and "auto" not in arms:
                    print("  (second needs auto first: skipped)")
                    continue
                share = common.quiet(args)
                print(f"[{name}] {arm} ...", flush=True)
                if arm == "seed":
                    r = run_seed(train, test, root, args)
                else:
                    first = Path(arms["auto"]["cache_dir"]) if "auto" in arms else None
                    r = run_engine(arm, train, test, root, args, first)
                r["others_share_before"] = share
                arms[arm] = r
                print(f"[{name}] {arm}: {r['process']['wall']:.1f} s (CPU {r['process']['cpu']:.1f} s, others "
                      f"{r['process']['others_share']:.0%}), peak RSS {r['process']['peak_rss_mb']:.0f} MB", flush=True)
            print(f"[{name}] accuracy on the unseen photos ...", flush=True)
            evaluate_engine_arms(arms, test, root)
            summaries[name] = report(name, arms, args)
    total = time.perf_counter() - started
    print(f"\ntotal run time of bench_vs_seed.py: {total:.0f} s")
    path = common.write_results("bench_vs_seed", {
        "machine": info, "results": results, "summary": summaries, "total_seconds": total,
        "settings": {k: getattr(args, k) for k in ("size", "train_per_class", "test_per_class", "seed_epochs",
                                                    "datasets", "arms", "quick")}}, quick=args.quick)
    print(f"results: {path}")
    return 0


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
