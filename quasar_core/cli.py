"""Command line: ``quasar train|evaluate|predict|explain|report|export|compare|check|project`` (also
``python -m quasar_core``).

Every training flag is made from the setting's declaration in config.py (help, range, default).
Progress goes through the progress seam into tqdm bars on stderr (photos/s and ETA for the
VGG16 pass). Errors a user can fix print one line and exit with status 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import os
import sys

from quasar_core import commands
from quasar_core.errors import QuasarError
from quasar_core.flags import add_training_flags
from quasar_core.quiet_start import quiet_tensorflow_start


def _data_argument(parser, help_text="a folder with one sub-folder per class, or a .zip of one"):
    parser.add_argument("data", help=help_text)
    parser.add_argument("--max-images", type=int, default=None,
                        help="the most photos read (default: QUASAR_MAX_IMAGES, else 3000); raise it for big folders")


def _cluster_arguments(parser):
    group = parser.add_argument_group("the feature pass on a Ray cluster (pip install 'quasar-nexus[cluster]')")
    group.add_argument("--cluster", default=None, metavar="auto|ray://HOST:PORT",
                       help="compute VGG16's features on a Ray cluster: 'auto' joins the one named by RAY_ADDRESS or "
                            "started on this machine (`ray start --head`), else starts one here; ray://HOST:PORT joins "
                            "an existing one. The photos must be at the same path on every machine")
    group.add_argument("--workers", type=int, default=None,
                       help="Ray workers to run (default: the cluster's CPUs / --worker-cpus)")
    group.add_argument("--worker-cpus", type=int, default=1, help="cores each worker uses (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quasar", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Train image classifiers by transfer learning from VGG16, see why "
                                                 "they work and which photos hurt them.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a classifier on a folder or .zip of class folders")
    _data_argument(train)
    train.add_argument("--out", required=True, help="run folder to write (created)")
    add_training_flags(train)
    _cluster_arguments(train)

    features = sub.add_parser("features", help="fill the feature cache only (VGG16 once per photo), here or on a Ray "
                                               "cluster; a training then reads them")
    _data_argument(features)
    add_training_flags(features)
    _cluster_arguments(features)

    evaluate = sub.add_parser("evaluate", help="score a trained run on labelled photos")
    evaluate.add_argument("run_dir", help="a run folder written by train")
    _data_argument(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object (default: sentences)")

    predict = sub.add_parser("predict", help="classify photos with a trained run, saying when one looks like none")
    predict.add_argument("run_dir", help="a run folder written by train")
    predict.add_argument("images", nargs="+", help="photo files")
    predict.add_argument("--json", action="store_true", help="print a JSON list, one object per photo")

    suggest = sub.add_parser("suggest", help="label assist: the unlabelled photos to label next, and the pre-labels "
                                             "sure enough to accept in bulk")
    suggest.add_argument("run_dir", help="a run folder written by train")
    suggest.add_argument("unlabelled", help="a folder or .zip of photos to label (class folders not needed)")
    suggest.add_argument("--count", type=int, default=20, help="how many photos to list to label next "
                                                               "(default: %(default)s)")
    suggest.add_argument("--max-images", type=int, default=None,
                         help="the most photos read (default: QUASAR_MAX_IMAGES, else 3000); raise it for big folders")
    suggest.add_argument("--json", action="store_true",
                         help="print one JSON object: next (file, suggested, confidence, familiarity, answer, reason) "
                              "and confident (the band's photos, threshold and stated error)")

    explain = sub.add_parser("explain", help="Grad-CAM heatmap: where the model looked")
    explain.add_argument("run_dir", help="a run folder written by train")
    explain.add_argument("image", help="a photo file")
    explain.add_argument("--out", required=True, help="PNG file to write")
    explain.add_argument("--class", dest="class_name", default=None,
                         help="the class to explain (default: the predicted one)")

    report = sub.add_parser("report", help="write the model card (one self-contained HTML file)")
    report.add_argument("run_dir", help="a run folder written by train")
    report.add_argument("--out", required=True, help="HTML file to write")

    export = sub.add_parser("export", help="export a run (checked against the run's own predictions)")
    export.add_argument("run_dir", help="a run folder written by train")
    export.add_argument("--format", choices=("zip", "savedmodel", "tflite", "app"), default="zip",
                        help="zip: model + predict.py; savedmodel/tflite: for TensorFlow tools; app: a predict-only "
                             "Streamlit app to share (default: %(default)s)")
    export.add_argument("--out", required=True, help="file (zip, tflite) or folder (savedmodel, app) to write")

    compare = sub.add_parser("compare", help="transfer learning vs from scratch on your photos")
    _data_argument(compare)
    compare.add_argument("--out", required=True, help="folder for comparison.json and comparison.html")
    compare.add_argument("--fractions", default="0.25,0.5,1.0",
                         help="shares of the photos to learn from, comma-separated (default: %(default)s)")
    add_training_flags(compare)

    check = sub.add_parser("check", help="the photo check: the photos that hurt (wrong labels, near-copies, outliers)")
    _data_argument(check)
    check.add_argument("--image-size", type=int, default=None,
                       help="default: the default preset's size for these photos (at most 224 px)")
    check.add_argument("--json", action="store_true", help="print one JSON object (default: a readable report)")

    project = sub.add_parser("project", help="save a workspace (photos, decisions, settings, runs) to one file, or "
                                             "open one")
    project_actions = project.add_subparsers(dest="project_action", required=True)
    save = project_actions.add_parser("save", help="write a project file (.zip)")
    save.add_argument("workspace", help="a dashboard workspace folder (runs/<id>) or a folder of runs")
    save.add_argument("--out", required=True, help="project file to write (.zip)")
    save.add_argument("--features-only", action="store_true",
                      help="leave the photos out and keep their saved VGG16 features and thumbnails (a smaller file; "
                           "the photos cannot be shown again)")
    open_ = project_actions.add_parser("open", help="restore a project file into a workspace folder")
    open_.add_argument("file", help="a project file written by `quasar project save` or the dashboard")
    open_.add_argument("--into", required=True, help="workspace folder to restore into (created; its photos and "
                                                     "settings are replaced, its other runs kept)")
    for name, command in commands.COMMANDS.items():
        sub.choices[name].set_defaults(run=command)
    return parser


# Old command names that still work, unlisted: the photo check was `quasar doctor`.
HIDDEN_ALIASES = {"doctor": "check"}


def main(argv=None) -> int:
    quiet_tensorflow_start()  # TensorFlow's start-up lines are not for users
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in HIDDEN_ALIASES:
        argv[0] = HIDDEN_ALIASES[argv[0]]
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except QuasarError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a setting out of range: the message quotes it
        if os.environ.get("QUASAR_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
