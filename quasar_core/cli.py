"""Command line: `python -m quasar_core train|evaluate|predict|explain|report|export|compare`.

Errors a user can fix print one line and exit with status 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

from .config import MODES, PRECISIONS, STRATEGIES, TrainConfig
from .errors import QuasarError
from .progress import Progress, TrainingHooks


class StderrProgress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, every few seconds otherwise)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.last = 0.0
        self.last_phase = None

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        finished = progress.fraction >= 1.0 and progress.step >= progress.total_steps
        phase_changed = progress.phase != self.last_phase
        if not (phase_changed or finished or now - self.last >= (0.2 if self.interactive else 5.0)):
            return
        self.last, self.last_phase = now, progress.phase
        width = 28
        filled = int(width * progress.fraction)
        where = f"epoch {progress.epoch}/{progress.total_epochs} " if progress.total_epochs else ""
        eta = f" ETA {progress.eta_seconds:.0f}s" if progress.eta_seconds is not None else ""
        line = (f"{progress.label:<36} [{'#' * filled}{'.' * (width - filled)}] {progress.fraction:4.0%} "
                f"{where}step {progress.step}/{progress.total_steps}{eta}")
        if self.interactive:
            self.stream.write("\r" + line.ljust(110))
            if finished:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def epoch(self, row: dict) -> None:
        val = f", validation accuracy {row['val_accuracy']:.1%}" if row.get("val_accuracy") is not None else ""
        text = f"epoch {row['epoch']} ({row['phase']}): loss {row['loss']:.3f}, accuracy {row['accuracy']:.1%}{val}"
        self.stream.write(("\r" if self.interactive else "") + text.ljust(110 if self.interactive else 0) + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.stream.write(("\n" if self.interactive else "") + text + "\n")


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--image-size", type=int, default=None,
                        help="input size in pixels (default: suggested from the images)")
    parser.add_argument("--mode", choices=MODES, default=defaults.mode)
    parser.add_argument("--weights", default=defaults.weights, help="imagenet, none, or a .weights.h5 file")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--val-split", type=float, default=defaults.val_fraction)
    parser.add_argument("--test-split", type=float, default=defaults.test_fraction)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--augment", action="store_true", help="train on augmented copies too")
    parser.add_argument("--fine-tune-epochs", type=int, default=defaults.fine_tune_epochs)
    parser.add_argument("--fine-tune-blocks", type=int, default=defaults.fine_tune_blocks)
    parser.add_argument("--dense-units", type=int, default=defaults.dense_units)
    parser.add_argument("--early-stopping", action="store_true", help="stop when validation loss stalls")
    parser.add_argument("--precision", choices=PRECISIONS, default=defaults.precision)
    parser.add_argument("--strategy", choices=STRATEGIES, default=defaults.strategy)


def config_from_args(args, dataset) -> TrainConfig:
    from .data import suggest_image_size

    return TrainConfig(
        mode=args.mode, weights=args.weights,
        image_size=args.image_size or suggest_image_size(dataset),
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        val_fraction=args.val_split, test_fraction=args.test_split, seed=args.seed, augment=args.augment,
        fine_tune_epochs=args.fine_tune_epochs, fine_tune_blocks=args.fine_tune_blocks,
        dense_units=args.dense_units, precision=args.precision, strategy=args.strategy,
        early_stopping=args.early_stopping,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m quasar_core",
                                     description="Train image classifiers by transfer learning from VGG16.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a classifier on a folder or .zip of class folders")
    train.add_argument("data")
    train.add_argument("--out", required=True, help="run folder to write")
    add_training_flags(train)

    evaluate = commands.add_parser("evaluate", help="score a trained run on labelled images")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("data")
    evaluate.add_argument("--json", action="store_true")

    predict = commands.add_parser("predict", help="classify images with a trained run")
    predict.add_argument("run_dir")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--json", action="store_true")

    export = commands.add_parser("export", help="export a run (checked against the run's predictions)")
    export.add_argument("run_dir")
    export.add_argument("--format", choices=("zip", "savedmodel", "tflite"), default="zip")
    export.add_argument("--out", required=True)
    _add_later_commands(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return COMMANDS[args.command](args)
    except QuasarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a setting out of range: the message quotes it
        if os.environ.get("QUASAR_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _print_problems(report) -> None:
    for line in report.summary_lines():
        print(line, file=sys.stderr)


def cmd_train(args) -> int:
    from .data import load_dataset
    from .runs import train_run

    dataset = load_dataset(args.data)
    _print_problems(dataset.report)
    config = config_from_args(args, dataset)
    bar = StderrProgress()
    cancel = threading.Event()
    hooks = TrainingHooks(bar, bar.epoch, bar.message)
    print(f"Training on {len(dataset)} images in {len(dataset.labels)} classes at {config.image_size} px "
          f"({config.mode}).", file=sys.stderr)
    try:
        run = train_run(dataset, config, args.out, hooks=hooks, cancel=cancel)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    if run.path != Path(args.out):  # a multi-worker job's other workers: the chief keeps the run
        shutil.rmtree(run.path, ignore_errors=True)
        print("This worker is done; the chief (worker 0) wrote the run folder.")
        return 0
    if run.metrics:
        print(run.metrics.summary())
    print(f"Run saved in {run.path}")
    return 0


def _open_classifier(run_dir):
    from .runs import Run

    run = Run.open(run_dir)
    return run, run.classifier()


def cmd_evaluate(args) -> int:
    from .data import load_dataset
    from .runs import Run, evaluate_classifier

    run = Run.open(args.run_dir)
    dataset = load_dataset(args.data)
    _print_problems(dataset.report)
    unknown = [label for label in dataset.labels if label not in run.labels]
    if unknown:
        print(f"note: classes not known to this model are left out: {', '.join(unknown)}", file=sys.stderr)
    keep = [i for i, s in enumerate(dataset.samples) if s.label in run.labels]
    if not keep:
        raise QuasarError(f"None of the classes in {args.data!r} are classes this model knows "
                          f"({', '.join(run.labels)}).")
    evaluation = evaluate_classifier(run.classifier(), dataset, keep, hooks=TrainingHooks(StderrProgress()))
    if args.json:
        print(json.dumps(evaluation.to_dict(), ensure_ascii=False))
    else:
        print(evaluation.summary())
        for label, scores in evaluation.per_class.items():
            print(f"  {label}: precision {scores['precision']:.1%}, recall {scores['recall']:.1%}, "
                  f"F1 {scores['f1']:.2f} ({scores['support']} images)")
    return 0


def cmd_predict(args) -> int:
    from .data import ImageRejected, Limits, decode_image

    run, classifier = _open_classifier(args.run_dir)
    limits = Limits.from_env()
    results, failed = [], 0
    for path in args.images:
        try:
            pixels, _, _ = decode_image(Path(path).read_bytes(), path, limits=limits)
        except (ImageRejected, OSError) as exc:
            print(f"error: {path}: {getattr(exc, 'reason', None) or exc}", file=sys.stderr)
            failed += 1
            continue
        probabilities = classifier.predict_proba([pixels])[0]
        best = int(probabilities.argmax())
        results.append({"image": path, "label": run.labels[best],
                        "probabilities": {label: float(p) for label, p in zip(run.labels, probabilities)}})
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
    else:
        for result in results:
            print(f"{result['image']}: {result['label']} ({result['probabilities'][result['label']]:.1%})")
    return 2 if failed and not results else 0


def cmd_export(args) -> int:
    from .export import export_run

    result = export_run(args.run_dir, format=args.format, out=args.out)
    print(f"Wrote {result['path']} ({result['format']}); it reproduces the run's predictions on "
          f"{result['images']} held-out images within {result['tolerance']:.0e} "
          f"(largest difference {result['max_difference']:.1e}).")
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "export": cmd_export}


def cmd_explain(args) -> int:
    from PIL import Image

    from .data import ImageRejected, Limits, decode_image
    from .explain import explain_image

    run, classifier = _open_classifier(args.run_dir)
    try:
        pixels, _, _ = decode_image(Path(args.image).read_bytes(), args.image, limits=Limits.from_env())
    except (ImageRejected, OSError) as exc:
        raise QuasarError(f"{args.image}: {getattr(exc, 'reason', None) or exc}") from None
    result = explain_image(classifier.model_, pixels, run.labels, class_name=args.class_name)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(result["overlay"]).save(args.out)
    print(f"Wrote {args.out}: where the model looked for '{result['class_name']}' "
          f"(probability {result['probability']:.1%}).")
    return 0


def cmd_report(args) -> int:
    from .report import write_model_card

    path = write_model_card(args.run_dir, args.out)
    print(f"Wrote the model card to {path}")
    return 0


def cmd_compare(args) -> int:
    from .charts import comparison_figure
    from .compare import compare_transfer
    from .data import load_dataset
    from .runs import write_json

    try:  # argument checks first, before any photo is read
        fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    except ValueError:
        raise QuasarError(f"--fractions must be numbers separated by commas, got {args.fractions!r}.") from None
    dataset = load_dataset(args.data)
    _print_problems(dataset.report)
    config = config_from_args(args, dataset)
    bar = StderrProgress()
    summary = compare_transfer(dataset, config, fractions=fractions, hooks=TrainingHooks(bar, None, bar.message))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "comparison.json", {**summary, "config": config.to_dict()})
    comparison_figure(summary["results"]).write_html(out / "comparison.html", include_plotlyjs=True)
    print(summary["conclusion"])
    print(f"Wrote {out / 'comparison.json'} and {out / 'comparison.html'}")
    return 0


def _add_later_commands(commands) -> None:
    explain = commands.add_parser("explain", help="Grad-CAM heatmap: where the model looked")
    explain.add_argument("run_dir")
    explain.add_argument("image")
    explain.add_argument("--out", required=True)
    explain.add_argument("--class", dest="class_name", default=None)

    report = commands.add_parser("report", help="write the model card (self-contained HTML)")
    report.add_argument("run_dir")
    report.add_argument("--out", required=True)

    compare = commands.add_parser("compare", help="transfer learning vs from scratch on your data")
    compare.add_argument("data")
    compare.add_argument("--out", required=True)
    compare.add_argument("--fractions", default="0.25,0.5,1.0")
    add_training_flags(compare)


COMMANDS.update(explain=cmd_explain, report=cmd_report, compare=cmd_compare)
