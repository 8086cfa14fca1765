"""`quasar ...` with its phases timed: the CLI itself (quasar_core.cli.main), plus wall-clock spans.

    python bench/_train_probe.py --spans OUT.json -- train DATA --out RUN [flags]

The same process as ``python -m quasar_core train ...`` (it calls the same ``cli.main``), with
a few engine functions wrapped by timers (module attributes replaced before the CLI runs, no
engine file changed) and the first import of the heavy libraries timed. On exit it writes the
spans (time.time() stamps, so the parent can place process start and exit around them):

    imports        interpreter start aside, every first import of TensorFlow, Keras, ONNX Runtime,
                   scikit-learn, SciPy, Pillow, ... wherever it happens, and importing the CLI
    check          reading, decoding and checking every photo (commands._load)
    precision      the int8-vs-float32 agreement check of precision "auto" (training.int8_agreement)
    weights        building VGG16 and loading its weights (backbone.load_vgg16)
    network        tracing the shared Keras network / building or loading the int8 ONNX model
    features       the feature pass itself: decode + resize + VGG16 + cache writes (FeaturePass)
    head           the heads on the folds (cross_validate), copy groups, the kept head, temperature,
                   "none of these" (training.fit minus its features)
    saving         out-of-fold evaluation, example pictures and every run file (train_run minus fit)
    cli            what is left of the CLI (argument parsing, printing)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402  (adds the repository to sys.path)


def install(spans: common.Spans) -> None:
    from quasar_core import backbone, commands, compare, training
    from quasar_core.features import extract, int8, networks
    from quasar_core.runs import pipeline

    spans.wrap(commands, "_load", "check", "read and check the photos")
    spans.wrap(training, "int8_agreement", "precision", "int8 agreement check")
    spans.wrap(backbone, "load_vgg16", "weights", "VGG16 weights")
    spans.wrap(networks, "keras_network", "network", "Keras feature network")
    spans.wrap(int8, "load_int8_network", "network", "int8 ONNX model (built or loaded)")
    spans.wrap(int8, "float_network", "network", "float ONNX model (agreement check)")
    spans.wrap(extract.FeaturePass, "features", "features", "feature pass")
    spans.wrap(training.TransferClassifier, "fit", "head", "TransferClassifier.fit")
    spans.wrap(training.TransferClassifier, "validate", "head", "validate")
    spans.wrap(pipeline, "train_run", "saving", "train_run")
    spans.wrap(compare, "compare_transfer", "head", "compare_transfer (folds and heads)")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--spans" not in argv or "--" not in argv:
        sys.exit(__doc__)
    out = Path(argv[argv.index("--spans") + 1])
    cli_argv = argv[argv.index("--") + 1 :]
    spans = common.Spans()
    common.ImportTimer(spans).install()
    entered = time.time()
    code = 1
    try:
        with spans.span("cli", "quasar " + " ".join(cli_argv[:1])):
            with spans.span("imports", "import quasar_core.cli"):
                from quasar_core import cli
            with spans.span("imports", "import the engine's modules (timers)"):
                install(spans)
            code = cli.main(cli_argv)
    finally:
        left = time.time()
        out.write_text(json.dumps({"entered": entered, "left": left, "returncode": code,
                                   "tensorflow_imported": "tensorflow" in sys.modules,
                                   "onnxruntime_imported": "onnxruntime" in sys.modules,
                                   "peak_rss_mb_before_exit": common.peak_rss_mb(), **spans.to_dict()}))
    return code


if __name__ == "__main__":
    sys.exit(main())
