"""Exports of a run that are checked before they are offered.

The self-contained model (VGG16 and the learned head, resizing and preprocessing inside) is
assembled from the run folder, written in the chosen format, reloaded, and must reproduce
the assembled model's predictions on the run's example photos within a stated tolerance;
otherwise nothing is written. Formats: a zip (model.keras, labels, evaluation, "none of
these" reference, a predict.py and the decoder and answers it uses), a TensorFlow SavedModel
folder, a TFLite file (for photos already resized to the run's size: TFLite has no antialiased
resize), and a predict-only Streamlit app without TensorFlow (share_app.py, app_model.py), which
must reproduce the product's own answers (runs/serving.py: int8 where the run trained in int8).

The zip's predict.py and the app read photos with a byte-for-byte copy of
data/photo_decoding.py, written into them here from that one file.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from quasar_core.data.photo_decoding import decode_photo, resize_square
from quasar_core.errors import QuasarError
from quasar_core.familiarity import SCORING_SNIPPET
from quasar_core.runs import app_model
from quasar_core.runs.folder import FILES, Run
from quasar_core.runs.learned import classifier_of
from quasar_core.runs.model_files import load_checked_model
from quasar_core.runs.share_app import ANSWERS, DECODER, app_requirements, project_requirements_text, write_app

FORMATS = ("zip", "savedmodel", "tflite", "app")
# Largest allowed difference in any class probability between the assembled model and an export.
TOLERANCE = {"zip": 1e-6, "savedmodel": 1e-5, "tflite": 1e-4, "app": 1e-3}
# The app's model files: the smallest VGG16 storage that reproduces the product within the tolerance.
APP_BUDGET_BYTES = 25 * 1024**2
ZIP_MEMBERS = (FILES.LABELS, FILES.CONFIG, FILES.METRICS, FILES.HISTORY, FILES.DATA_REPORT, FILES.STATUS,
               FILES.FAMILIARITY)

PREDICT_SCRIPT = '''"""Classify photos with this exported Quasar Nexus model.

    pip install tensorflow pillow      # tensorflow-cpu on Linux x86-64 / Windows
    python predict.py photo1.jpg [photo2.png ...]

Photos are read and resized by photo_decoding.py, the very file Quasar Nexus reads them with (the
model resizes inside too; a photo already at its size is left as it is). Each gets one of three
answers (answers.py): "It is most likely X (N %% sure).", "Not sure: this photo looks unusual for
your classes; ...", or "This doesn't look like any of your classes ...".
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import answers  # noqa: E402  (this folder's own files)
import photo_decoding  # noqa: E402

IMAGE_SIZE = %(image_size)d

%(snippet)s

def main(paths):
    model = keras.saving.load_model(HERE / "%(model)s", safe_mode=True, compile=False)
    pooled = "features" if any(layer.name == "features" for layer in model.layers) else "pool"  # "pool": older runs
    both = keras.Model(model.inputs[0], [model.outputs[0], model.get_layer(pooled).output])
    labels = json.loads((HERE / "%(labels)s").read_text(encoding="utf-8"))
    reference = HERE / "%(familiarity)s"
    arrays = dict(np.load(reference, allow_pickle=False)) if reference.is_file() else None
    failed = 0
    for path in paths:
        try:
            pixels, _ = photo_decoding.decode_photo(Path(path).read_bytes())
        except (photo_decoding.PhotoRejected, OSError) as problem:
            print(f"{path}: could not be answered: {getattr(problem, 'reason', None) or problem}")
            failed += 1
            continue
        image = photo_decoding.resize_square(pixels, IMAGE_SIZE)[None]
        probabilities, features = (np.asarray(x) for x in both(image, training=False))
        unknown = unusual = False
        if arrays is not None:
            _, unknown_flags, unusual_flags = answers.familiarity_verdicts(familiarity, features, arrays)
            unknown, unusual = bool(unknown_flags[0]), bool(unusual_flags[0])
        print(f"{path}: {answers.verdict(probabilities[0], labels, unknown=unknown, unusual=unusual)[1]}")
    return 1 if failed and failed == len(paths) else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python predict.py IMAGE [IMAGE ...]")
    sys.exit(main(sys.argv[1:]))
'''


def example_photos(run: Run, limit: int = 16) -> list[np.ndarray]:
    """The run's example photos as uint8 RGB pixels (read by THE decoder): what exports are checked on."""
    paths = sorted((run.path / FILES.EXAMPLES).glob("*"))[:limit]
    if not paths:
        raise QuasarError(f"Run {run.name!r} has no example photos to check an export against.")
    return [decode_photo(path.read_bytes(), min_side=1)[0] for path in paths]


def reference_images(run: Run, limit: int = 16) -> np.ndarray:
    """The run's example photos resized to its input size (THE resize)."""
    return np.stack([resize_square(pixels, run.config.image_size) for pixels in example_photos(run, limit)])


def model_bytes(run: Run, *, base_loader=None) -> bytes:
    """The self-contained model.keras of a run (assembled from its head and the shared VGG16)."""
    if run.opened_from_file:
        return (run.path / FILES.MODEL).read_bytes()
    with tempfile.TemporaryDirectory(prefix="quasar-model-") as scratch:
        path = Path(scratch) / FILES.MODEL
        classifier_of(run, base_loader=base_loader).model().save(path)
        return path.read_bytes()


def run_zip_bytes(run_dir: str | Path, *, base_loader=None) -> bytes:
    """The run as a zip: model, labels, settings, evaluation, history, "none of these" and a predict.py."""
    run = Run.open(run_dir)
    if not run.has_model:
        raise QuasarError(f"Run {run.name!r} has no trained model to export yet.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(FILES.MODEL, model_bytes(run, base_loader=base_loader))
        for member in ZIP_MEMBERS:
            path = run.path / member
            if path.is_file():
                archive.write(path, member)
        archive.writestr("predict.py", PREDICT_SCRIPT % {"snippet": SCORING_SNIPPET, "model": FILES.MODEL,
                                                         "labels": FILES.LABELS, "familiarity": FILES.FAMILIARITY,
                                                         "image_size": run.config.image_size})
        archive.writestr("photo_decoding.py", DECODER.read_bytes())  # THE decoder, byte for byte
        archive.writestr("answers.py", ANSWERS.read_bytes())
        archive.writestr("README.txt", _zip_readme(run))
    return buffer.getvalue()


def export_run(run_dir: str | Path, *, format: str = "zip", out: str | Path, base_loader=None, cache=None) -> dict:
    """Write an export and verify it. Returns {"path", "format", "max_difference", "tolerance", "images"} (and for
    the app "model": what runs, "model_bytes": the model file's size).

    The app is checked against the product's own answers (the feature pass and the head: int8 where the run
    trained in int8); the other formats against the assembled Keras model."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}.")
    run = Run.open(run_dir)
    if not run.has_model:
        raise QuasarError(f"Run {run.name!r} has no trained model to export yet.")
    out = Path(out)
    images = reference_images(run)
    extra = {}
    with tempfile.TemporaryDirectory(prefix="quasar-export-") as scratch:
        staged = Path(scratch) / "export"
        if format == "app":
            built = write_share_app(run, staged, base_loader=base_loader, cache=cache)
            expected, actual = built["expected"], built["actual"]
            extra = {"model": built["model"], "storage": built["storage"], "model_bytes": built["model_bytes"]}
        else:
            model = classifier_of(run, base_loader=base_loader).model()
            expected = np.asarray(model.predict(images, verbose=0))
            if format == "zip":
                staged.write_bytes(run_zip_bytes(run.path, base_loader=base_loader))
                actual = _predict_zip(staged, images, Path(scratch))
            elif format == "savedmodel":
                model.export(str(staged), format="tf_saved_model", verbose=False)
                actual = _predict_savedmodel(staged, images)
            else:
                saved = Path(scratch) / "savedmodel"
                _fixed_size(model, run.config.image_size).export(str(saved), format="tf_saved_model", verbose=False)
                staged.write_bytes(_tflite_bytes(saved))
                actual = _predict_tflite(staged, images)
        difference = float(np.max(np.abs(actual - expected)))
        if not difference <= TOLERANCE[format]:
            raise QuasarError(
                f"The {format} export does not reproduce the run's predictions (largest difference "
                f"{difference:.2e}, allowed {TOLERANCE[format]:.0e}); it was not written."
            )
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), out)
    return {"path": str(out), "format": format, "max_difference": difference, "tolerance": TOLERANCE[format],
            "images": int(len(images)), **extra}


def app_candidates(run: Run, *, base_loader=None, cache=None):
    """The app models to try for a run, smallest first: (storage, build()) pairs (app_model.py says which)."""
    from quasar_core.runs.serving import served_model

    served = served_model(run, base_loader=base_loader, cache=cache)
    size = run.config.image_size
    if served.route == "feature pass" and served.precision == "int8":
        def int8_model():
            import onnx

            from quasar_core import backbone
            from quasar_core.features import extract, int8

            network = int8.load_int8_network(
                weights_path=extract.local_weights(run.config.weights, served._base),
                weights_id=backbone.weights_id(run.config.weights), image_size=size,
                models_dir=extract.models_dir(cache))
            return app_model.build(conv_model=onnx.load_from_string(network.model_path.read_bytes()),
                                   head=served.head, image_size=size, storage="int8")

        return served, [("int8", int8_model)]
    weights: dict = {}

    def parts():
        if not weights:
            if served.route == "kept model":
                kept = classifier_of(run, base_loader=base_loader).model()
                weights["conv"] = app_model.conv_weights_of(kept)
                weights["head"] = served_head(run) or app_model.head_of(kept)
            else:
                weights["conv"], weights["head"] = _base_conv_weights(run, served), served.head
        return weights["conv"], weights["head"]

    def builder(storage):
        return lambda: app_model.build(conv_weights=parts()[0], head=parts()[1], image_size=size, storage=storage)

    return served, [(storage, builder(storage)) for storage in ("int8 weights", "mixed weights", "float16 weights",
                                                                "float32")]


def served_head(run: Run):
    """The run's head arrays (a fine-tuned run keeps them beside its tuned blocks); None for an opened model."""
    from quasar_core.head import Head

    arrays = None if run.opened_from_file else run.arrays(FILES.HEAD)
    return Head.from_arrays(arrays) if arrays else None


def _base_conv_weights(run: Run, served):
    """VGG16's conv weights as the run's features saw them: the weights file, else (random weights) the base."""
    from quasar_core import backbone
    from quasar_core.features import vgg16_onnx

    path = backbone.weights_file(run.config.weights)
    if path is not None:
        return vgg16_onnx.read_vgg16_weights(path)
    return app_model.conv_weights_of(served._base())


def write_share_app(run: Run, folder: Path, *, base_loader=None, cache=None) -> dict:
    """The predict-only Streamlit app of a run (share_app.py): ONNX model, labels, one photo per class, headline.

    The model is the smallest of app_candidates whose answers on the run's example photos (read and resized by
    the copy of photo_decoding.py written into the app) are within TOLERANCE["app"] of the product's.
    Returns {"path", "expected", "actual", "storage", "model", "model_bytes", "tried"}.
    """
    metrics = run.metrics
    headline = {"title": f"{', '.join(run.labels)}: a photo classifier", "dataset": run.status.source or None,
                "n_photos": run.report.total if run.report else None,
                "trained_at": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.status.finished))
                if run.status.finished else None}
    if metrics is not None:
        headline.update(accuracy=metrics.accuracy, accuracy_interval=metrics.accuracy_interval, method=metrics.method)
    examples = {}
    for prediction in (metrics.predictions if metrics else []):
        path = run.example_path(prediction)
        if path is not None and prediction["true"] == prediction["predicted"] and prediction["true"] not in examples:
            examples[prediction["true"]] = path.read_bytes()
    photos = example_photos(run)
    served, candidates = app_candidates(run, base_loader=base_loader, cache=cache)
    expected = served.predict_proba(photos)
    size = run.config.image_size
    tried = []
    for storage, build in candidates:
        model = build()
        actual, _ = app_model.run(model.onnx, np.stack([resize_square(p, size) for p in photos]))
        difference = float(np.max(np.abs(actual - expected)))
        tried.append({"storage": storage, "bytes": len(model.onnx), "max_difference": difference})
        if difference <= TOLERANCE["app"]:
            break
    write_app(folder, model_onnx=model.onnx, image_size=size, labels=run.labels,
              headline={k: v for k, v in headline.items() if v is not None}, examples=examples,
              familiarity=run.arrays(FILES.FAMILIARITY), scoring_snippet=SCORING_SNIPPET,
              requirements=app_requirements(project_requirements_text()), model_words=model.words)
    actual = _predict_app(folder, photos)  # the written folder itself: its decoder copy, its model file
    return {"path": str(folder), "expected": expected, "actual": actual, "storage": model.storage,
            "model": model.words, "model_bytes": len(model.onnx), "tried": tried}


def _predict_app(folder: Path, photos: list[np.ndarray]) -> np.ndarray:
    """The app folder's answers for photos: its own photo_decoding.py's resize and its model.onnx."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("quasar_exported_photo_decoding", folder / "photo_decoding.py")
    decoding = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(decoding)
    size = int(json.loads((folder / "card.json").read_text(encoding="utf-8"))["image_size"])
    probabilities, _ = app_model.run((folder / "model.onnx").read_bytes(),
                                     np.stack([decoding.resize_square(p, size) for p in photos]))
    return probabilities


def zip_folder(folder: Path, *, prefix: str = "") -> bytes:
    """A folder's files as zip bytes (a SavedModel or an app, for a download button)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                archive.write(path, (Path(prefix) / path.relative_to(folder)).as_posix())
    return buffer.getvalue()


def _tflite_bytes(saved_model: Path) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    return converter.convert()


def _fixed_size(model, image_size: int):
    """The model from its preprocessing on, for photos already resized to `image_size` (for TFLite, which has no
    antialiased resize, tf.ScaleAndTranslate: resize first, as data.images.resize_square does)."""
    import keras

    try:
        resized = model.get_layer("resize").output
    except ValueError:  # not a Quasar model: exported as it is
        return model
    # Keras builds a model from an inner tensor by cloning the graph after it (the two feature taps included).
    after_resize = keras.Model(resized, model.outputs[0])
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    return keras.Model(inputs, after_resize(inputs), name=f"{model.name}_{image_size}px")


def _predict_zip(archive_path: Path, images: np.ndarray, scratch: Path) -> np.ndarray:
    folder = scratch / "unzipped"
    with zipfile.ZipFile(archive_path) as archive:
        archive.extractall(folder)  # our own archive, written a moment ago
    return np.asarray(load_checked_model(folder / FILES.MODEL).predict(images, verbose=0))


def _predict_savedmodel(path: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return np.concatenate([np.asarray(loaded.serve(tf.constant(images[i : i + 1]))) for i in range(len(images))])


def _predict_tflite(path: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    signature = interpreter.get_signature_runner()
    input_name = next(iter(signature.get_input_details()))
    outputs = []
    for image in images:
        result = signature(**{input_name: image[None]})
        outputs.append(np.asarray(next(iter(result.values()))))
    return np.concatenate(outputs)


def _zip_readme(run: Run) -> str:
    accuracy = run.metrics.headline() if run.metrics else "not measured"
    return (
        "Quasar Nexus model export\n"
        f"Classes: {', '.join(run.labels)}\n"
        f"Accuracy: {accuracy}\n"
        f"Input: RGB images of any size (resized inside the model to {run.config.image_size} px).\n"
        "Run: python predict.py IMAGE [IMAGE ...]\n"
        "Files: model.keras (Keras 3, loads with safe_mode=True), labels.json (class order of the outputs), "
        "config.json (training settings), metrics.json (evaluation), history.json (training), "
        "familiarity.npz (the training photos' features, to tell photos unlike all of them).\n"
    )
