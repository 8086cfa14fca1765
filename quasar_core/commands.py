"""What each ``quasar`` command does: read the arguments (cli.py), call the engine, print the result.

Each command imports the engine modules it needs inside it: `quasar predict` need not load cleanlab,
nor `quasar check` the exporters, and `quasar --help` answers at once.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from quasar_core.errors import QuasarError
from quasar_core.flags import candidates_from_args, config_from_args
from quasar_core.progress import TqdmProgress
from quasar_core.wording import confidence, percent


def _progress():
    return TqdmProgress()


def _cache():
    from quasar_core.features.cache import FeatureCache, default_cache_dir

    return FeatureCache(default_cache_dir())


def _load(args, bar):
    from quasar_core.data import Limits, load_dataset

    try:
        dataset = load_dataset(args.data, limits=Limits.from_env(max_images=args.max_images), on_progress=bar.checked)
    finally:
        bar.close()  # an error is printed on a line of its own, not stuck to the bar
    for line in dataset.report.summary_lines():
        print(line, file=sys.stderr)
    return dataset


def _read_photo(path: str):
    from quasar_core.data import ImageRejected, Limits, decode_image

    try:
        return decode_image(Path(path).read_bytes(), path, limits=Limits.from_env()).pixels
    except (ImageRejected, OSError) as exc:
        raise QuasarError(f"{path}: {getattr(exc, 'reason', None) or exc}") from None


def _need_ray(args) -> None:
    """--cluster without Ray installed: say how to install it before any photo is read."""
    if getattr(args, "cluster", None):
        from quasar_core.cluster_ray import require_ray

        require_ray()


def _on_cluster(args, dataset, configs, bar):
    """The feature pass on the Ray cluster, filling the feature cache a training then reads; the dataset less the
    photos that could not be used there (named, as the data report names a skipped file)."""
    from quasar_core import cluster

    try:
        dataset, done = cluster.cluster_features(dataset, configs, address=args.cluster, cache=_cache(),
                                                 workers=args.workers, threads=args.worker_cpus, hooks=bar.hooks())
    finally:
        bar.close()
    if done.failed:
        print(f"{len(done.failed)} {'file was' if len(done.failed) == 1 else 'files were'} skipped on the cluster:",
              file=sys.stderr)
        for problem in done.failed:
            print(f"  {problem.file}: {problem.reason}", file=sys.stderr)
    print(f"On the cluster: {done.words()}", file=sys.stderr)
    if any(config.fine_tunes for config in configs):
        print("Fine-tuning's activations are computed on this machine.", file=sys.stderr)
    return dataset


def cmd_features(args) -> int:
    from quasar_core import cluster

    _need_ray(args)
    bar = _progress()
    dataset = _load(args, bar)
    configs = candidates_from_args(args, dataset) or [config_from_args(args, dataset)]
    if args.cluster:
        _on_cluster(args, dataset, configs, bar)
    else:
        done = cluster.local_features(dataset, configs, cache=_cache(), hooks=bar.hooks())
        bar.close()
        print(f"On this machine: {done.words()}", file=sys.stderr)
    sizes = ", ".join(f"{c.image_size} px" for c in configs)
    print(f"The features of {len(dataset)} photos at {sizes} are in the feature cache ({_cache().root}).")
    return 0


def cmd_train(args) -> int:
    from quasar_core.runs.pipeline import train_run

    _need_ray(args)
    bar = _progress()
    dataset = _load(args, bar)
    config = config_from_args(args, dataset)
    candidates = candidates_from_args(args, dataset)  # Best accuracy: the settings it tries
    how = (f"trying {len(candidates)} settings" if candidates else
           'fine-tuning' if config.fine_tunes else 'feature extraction')
    print(f"Training on {len(dataset)} photos in {len(dataset.labels)} classes at {config.image_size} px "
          f"({args.preset} preset, {how}).", file=sys.stderr)
    if args.cluster:
        dataset = _on_cluster(args, dataset, candidates or [config], bar)
    run = train_run(dataset, config, args.out, hooks=bar.hooks(), cache=_cache(), candidates=candidates)
    bar.close()
    if run.path != Path(args.out):  # a multi-worker job's other workers: the chief keeps the run
        shutil.rmtree(run.path, ignore_errors=True)
        print("This worker is done; the chief (worker 0) wrote the run folder.")
        return 0
    print(f"VGG16 ran in {run.status.precision_reason}.", file=sys.stderr)
    if run.metrics:
        print(run.metrics.summary())
    print(f"Run saved in {run.path}")
    return 0


def _open_run(run_dir):
    from quasar_core.runs.folder import Run

    return Run.open(run_dir)


def cmd_evaluate(args) -> int:
    from quasar_core.runs.pipeline import evaluate_run

    run = _open_run(args.run_dir)
    bar = _progress()
    dataset = _load(args, bar)
    unknown = [label for label in dataset.labels if label not in run.labels]
    if unknown:
        print(f"note: classes not known to this model are left out: {', '.join(unknown)}", file=sys.stderr)
    evaluation = evaluate_run(run, dataset, hooks=bar.hooks(), cache=_cache())
    bar.close()
    if args.json:
        print(json.dumps(evaluation.to_dict(), ensure_ascii=False))
    else:
        print(evaluation.summary())
        for label, scores in evaluation.per_class.items():
            print(f"  {label}: precision {percent(scores['precision'])}, recall {percent(scores['recall'])}, "
                  f"F1 {scores['f1']:.2f} ({scores['support']} photos)")
    return 0


PREDICT_CHUNK = 64  # photos decoded and answered at a time by `quasar predict` (memory does not grow with more)


def cmd_predict(args) -> int:
    from quasar_core.predicting import classify_photos, drift_sentence, answer_words

    run = _open_run(args.run_dir)
    results, failed = [], 0
    for start in range(0, len(args.images), PREDICT_CHUNK):  # a chunk of photos in memory at a time
        photos = []
        for path in args.images[start : start + PREDICT_CHUNK]:
            try:
                photos.append((path, _read_photo(path)))
            except QuasarError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
        results += classify_photos(run, photos)
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
    else:
        for result in results:
            print(f"{result['image']}: {answer_words(result, run.labels)}")
        if len(results) > 1 and drift_sentence(results):
            print(drift_sentence(results))
    return 2 if failed and not results else 0


def cmd_export(args) -> int:
    from quasar_core.runs.export import export_run

    result = export_run(args.run_dir, format=args.format, out=args.out)
    print(f"Wrote {result['path']} ({result['format']}); it reproduces the run's predictions on "
          f"{result['images']} example photos within {result['tolerance']:.0e} "
          f"(largest difference {result['max_difference']:.1e}).")
    if args.format == "app":
        print(f"Its model: {result['model']}; model.onnx {result['model_bytes'] / 1e6:.1f} MB, run by ONNX Runtime "
              "(no TensorFlow).")
        print(f"Start it with: cd {result['path']} && pip install -r requirements.txt && streamlit run app.py")
    if args.format == "tflite":
        size = _open_run(args.run_dir).config.image_size
        print(f"The TFLite model takes photos already resized to {size} x {size} px (TFLite has no antialiased "
              "resize); the other formats resize inside the model.")
    return 0


def cmd_explain(args) -> int:
    from PIL import Image

    from quasar_core.explain import explain_image
    from quasar_core.runs.learned import classifier_of

    run = _open_run(args.run_dir)
    pixels = _read_photo(args.image)
    result = explain_image(classifier_of(run).model(), pixels, run.labels, class_name=args.class_name,
                           image_size=run.config.image_size)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(result["overlay"]).save(args.out)
    print(f"Wrote {args.out}: where the model looked for '{result['class_name']}' "
          f"(probability {confidence(result['probability'])}).")
    return 0


def cmd_report(args) -> int:
    from quasar_core.runs.report import write_model_card

    path = write_model_card(args.run_dir, args.out)
    print(f"Wrote the model card to {path}")
    return 0


def cmd_compare(args) -> int:
    from quasar_core.charts import comparison_figure
    from quasar_core.compare import compare_transfer
    from quasar_core.runs.folder import FILES, write_json

    try:  # argument checks first, before any photo is read
        fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    except ValueError:
        raise QuasarError(f"--fractions must be numbers separated by commas, got {args.fractions!r}.") from None
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise QuasarError(f"--fractions must be above 0 and at most 1, got {args.fractions!r}.")
    bar = _progress()
    dataset = _load(args, bar)
    config = config_from_args(args, dataset)
    summary = compare_transfer(dataset, config, fractions=fractions, cache=_cache(), hooks=bar.hooks())
    bar.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / FILES.COMPARISON, {**summary, "config": config.to_dict()})
    comparison_figure(summary["results"]).write_html(out / "comparison.html", include_plotlyjs=True)
    print(summary["conclusion"])
    print(f"Wrote {out / FILES.COMPARISON} and {out / 'comparison.html'}")
    return 0


def cmd_check(args) -> int:
    """The photo check (`quasar check`; `quasar doctor`, its old name, still works)."""
    from quasar_core.photo_check import check_photos
    from quasar_core.photo_findings import readable_report
    from quasar_core.presets import DEFAULT

    bar = _progress()
    dataset = _load(args, bar)
    config = DEFAULT.config(dataset)
    if args.image_size is not None:
        config = config.replace(image_size=args.image_size)
    report = check_photos(dataset, config, cache=_cache(), hooks=bar.hooks()).report
    bar.close()
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        print("\n".join(readable_report(report)))
    return 0


def cmd_project(args) -> int:
    from quasar_core.features.cache import default_cache_dir
    from quasar_core.project import open_project, save_project
    from quasar_core.runs.folder import default_runs_root

    if args.project_action == "save":
        print(save_project(args.workspace, args.out, features_only=args.features_only).words())
        return 0
    into = Path(args.into).resolve()
    # A dashboard workspace (under the runs root) keeps its own feature cache; elsewhere the CLI's cache.
    cache_root = None if into.parent == default_runs_root() else default_cache_dir()
    opened = open_project(args.file, into, cache_root=cache_root)
    print(opened.words())
    if opened.current_run is not None:
        print(f"Its current model: {opened.current_run}")
    return 0


def cmd_suggest(args) -> int:
    from quasar_core.data import Limits, load_unlabelled
    from quasar_core.label_assist import suggest_for_run

    if args.count < 1:
        raise QuasarError(f"--count must be a whole number of at least 1, got {args.count}.")
    run = _open_run(args.run_dir)
    bar = _progress()
    try:
        photos = load_unlabelled(args.unlabelled, limits=Limits.from_env(max_images=args.max_images),
                                 on_progress=bar.checked)
    finally:
        bar.close()
    print(f"{photos.report.source}: {len(photos)} photos to label.", file=sys.stderr)
    for problem in photos.report.problems:
        print(f"  {problem.file}: {problem.reason}", file=sys.stderr)
    bar = _progress()
    found = suggest_for_run(run, photos, cache=_cache(), count=args.count, hooks=bar.hooks())
    bar.close()
    if args.json:
        print(json.dumps(found.to_dict(), ensure_ascii=False))
        return 0
    print(f"Label these next ({len(found.next)}):")
    for number, item in enumerate(found.next, start=1):
        answer = {"unknown": "looks like none of the classes, closest", "unusual": "unusual photo, closest"}.get(
            item.answer, "maybe")
        print(f"  {number}. {item.file}: {answer} {item.suggested} ({confidence(item.confidence, 0)}; {item.reason})")
    if found.band is None or not found.confident:
        print("No pre-label is sure enough to accept in bulk yet: label these first.")
    else:
        print(f"Sure enough to accept in bulk: {len(found.confident)} of {found.pool_size} photos "
              f"({percent(found.coverage, 0)}); {found.band.words()}.")
        for item in found.confident[:10]:
            print(f"  {item.file}: {item.suggested} ({confidence(item.confidence, 0)})")
        if len(found.confident) > 10:
            print(f"  …and {len(found.confident) - 10} more (--json lists them all).")
    return 0


COMMANDS = {"train": cmd_train, "features": cmd_features, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "export": cmd_export, "explain": cmd_explain, "report": cmd_report, "compare": cmd_compare,
            "check": cmd_check, "project": cmd_project}
COMMANDS["suggest"] = cmd_suggest  # label assist
