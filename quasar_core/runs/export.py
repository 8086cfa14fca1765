"""Exports of a run that are checked before they are offered.

The self-contained model (VGG16 and the learned head, resizing and preprocessing inside) is
assembled from the run folder, written in the chosen format, reloaded, and must reproduce
the assembled model's predictions on the run's example photos within a stated tolerance;
otherwise nothing is written. Formats: a zip (model.keras, labels, evaluation, "none of
these" reference and a predict.py), a TensorFlow SavedModel folder, a TFLite file (for photos
already resized to the run's size: TFLite has no antialiased resize), and a predict-only
Streamlit app (share_app.py).
"""

from __future__ import annotations

import io
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from quasar_core.data.images import resize_square
from quasar_core.errors import QuasarError
from quasar_core.familiarity import SCORING_SNIPPET
from quasar_core.runs.folder import FILES, Run
from quasar_core.runs.learned import classifier_of
from quasar_core.runs.model_files import load_checked_model
from quasar_core.runs.share_app import app_requirements, project_requirements_text, write_app

FORMATS = ("zip", "savedmodel", "tflite", "app")
# Largest allowed difference in any class probability between the assembled model and an export.
TOLERANCE = {"zip": 1e-6, "savedmodel": 1e-5, "tflite": 1e-4, "app": 1e-6}
ZIP_MEMBERS = (FILES.LABELS, FILES.CONFIG, FILES.METRICS, FILES.HISTORY, FILES.DATA_REPORT, FILES.STATUS,
               FILES.FAMILIARITY)

PREDICT_SCRIPT = '''"""Classify photos with this exported Quasar Nexus model.

    pip install tensorflow pillow      # tensorflow-cpu on Linux x86-64 / Windows
    python predict.py photo1.jpg [photo2.png ...]

The model takes raw RGB pixels of any size: resizing and VGG16's preprocessing are inside it.
A photo unlike every training photo is reported as "does not look like any of" the classes.
"""
import json
import sys
from pathlib import Path

import keras
import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent

%(snippet)s

def load_rgb(path):
    image = ImageOps.exif_transpose(Image.open(path))
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def main(paths):
    model = keras.saving.load_model(HERE / "%(model)s", safe_mode=True, compile=False)
    pooled = "features" if any(layer.name == "features" for layer in model.layers) else "pool"  # "pool": older runs
    both = keras.Model(model.inputs[0], [model.outputs[0], model.get_layer(pooled).output])
    labels = json.loads((HERE / "%(labels)s").read_text(encoding="utf-8"))
    reference = HERE / "%(familiarity)s"
    arrays = dict(np.load(reference)) if reference.is_file() else None
    for path in paths:
        probabilities, features = (np.asarray(x) for x in both(load_rgb(path)[None], training=False))
        best = int(np.argmax(probabilities[0]))
        answer = f"{labels[best]} ({probabilities[0][best] * 100:.1f} %%)"
        if arrays is not None:
            score, unknown = familiarity(features, arrays)
            if unknown[0]:
                answer = (f"does not look like any of: {', '.join(labels)} "
                          f"(closest: {labels[best]}, {probabilities[0][best] * 100:.0f} %%)")
        print(f"{path}: {answer}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python predict.py IMAGE [IMAGE ...]")
    main(sys.argv[1:])
'''


def reference_images(run: Run, limit: int = 16) -> np.ndarray:
    """The run's example photos resized to its input size: what exports are checked on."""
    from PIL import Image

    paths = sorted((run.path / FILES.EXAMPLES).glob("*"))[:limit]
    if not paths:
        raise QuasarError(f"Run {run.name!r} has no example photos to check an export against.")
    return np.stack([resize_square(np.asarray(Image.open(p).convert("RGB")), run.config.image_size)
                     for p in paths])


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
                                                         "labels": FILES.LABELS, "familiarity": FILES.FAMILIARITY})
        archive.writestr("README.txt", _zip_readme(run))
    return buffer.getvalue()


def export_run(run_dir: str | Path, *, format: str = "zip", out: str | Path, base_loader=None) -> dict:
    """Write an export and verify it. Returns {"path", "format", "max_difference", "tolerance", "images"}."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}.")
    run = Run.open(run_dir)
    if not run.has_model:
        raise QuasarError(f"Run {run.name!r} has no trained model to export yet.")
    out = Path(out)
    images = reference_images(run)
    model = classifier_of(run, base_loader=base_loader).model()
    expected = np.asarray(model.predict(images, verbose=0))
    with tempfile.TemporaryDirectory(prefix="quasar-export-") as scratch:
        staged = Path(scratch) / "export"
        if format == "zip":
            staged.write_bytes(run_zip_bytes(run.path, base_loader=base_loader))
            actual = _predict_zip(staged, images, Path(scratch))
        elif format == "app":
            write_share_app(run, staged, base_loader=base_loader)
            actual = np.asarray(load_checked_model(staged / FILES.MODEL).predict(images, verbose=0))
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
            "images": int(len(images))}


def write_share_app(run: Run, folder: Path, *, base_loader=None) -> Path:
    """The predict-only Streamlit app of a run (share_app.py): model, labels, one photo per class, headline."""
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
    return write_app(folder, model_keras=model_bytes(run, base_loader=base_loader), labels=run.labels,
                     headline={k: v for k, v in headline.items() if v is not None}, examples=examples,
                     familiarity=run.arrays(FILES.FAMILIARITY), scoring_snippet=SCORING_SNIPPET,
                     requirements=app_requirements(project_requirements_text()))


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
