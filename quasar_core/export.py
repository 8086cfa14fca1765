"""Exports of a run that are checked before they are offered.

Each export is reloaded and must reproduce the run's own predictions on its held-out
example images within a stated tolerance; otherwise it is not written.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import QuasarError
from .runs import MODEL_FILE, Run, load_run_model

FORMATS = ("zip", "savedmodel", "tflite")
# Largest allowed difference in any class probability between the run's model and an export.
TOLERANCE = {"zip": 1e-6, "savedmodel": 1e-5, "tflite": 1e-4}
ZIP_MEMBERS = ("model.keras", "labels.json", "config.json", "metrics.json", "history.json", "data_report.json",
               "status.json")

PREDICT_SCRIPT = '''"""Classify images with this exported Quasar Nexus model.

    pip install tensorflow pillow      # tensorflow-cpu on Linux x86-64 / Windows
    python predict.py photo1.jpg [photo2.png ...]

The model takes raw RGB pixels: resizing and VGG16's preprocessing are inside it.
"""
import json
import sys
from pathlib import Path

import keras
import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent


def load_rgb(path):
    image = ImageOps.exif_transpose(Image.open(path))
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def main(paths):
    model = keras.saving.load_model(HERE / "model.keras", safe_mode=True, compile=False)
    labels = json.loads((HERE / "labels.json").read_text(encoding="utf-8"))
    for path in paths:
        probabilities = model.predict(load_rgb(path)[None], verbose=0)[0]
        best = int(np.argmax(probabilities))
        print(f"{path}: {labels[best]} ({probabilities[best]:.1%})")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python predict.py IMAGE [IMAGE ...]")
    main(sys.argv[1:])
'''


def reference_images(run: Run, limit: int = 16) -> np.ndarray:
    """The run's held-out example images resized to its input size: what exports are checked on."""
    from PIL import Image

    size = run.config.image_size
    paths = sorted((run.path / "examples").glob("*.png"))[:limit]
    if not paths:
        raise QuasarError(f"Run {run.name!r} has no held-out example images to check an export against.")
    return np.stack([
        np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32)
        for p in paths
    ])


def run_zip_bytes(run_dir: str | Path) -> bytes:
    """The run as a zip: model, labels, settings, metrics, history and a runnable predict.py."""
    run = Run.open(run_dir)
    if not run.has_model:
        raise QuasarError(f"Run {run.name!r} has no trained model to export yet.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member in ZIP_MEMBERS:
            path = run.path / member
            if path.is_file():
                archive.write(path, member)
        archive.writestr("predict.py", PREDICT_SCRIPT)
        archive.writestr("README.txt", _zip_readme(run))
    return buffer.getvalue()


def export_run(run_dir: str | Path, *, format: str = "zip", out: str | Path) -> dict:
    """Write an export and verify it. Returns {"path", "format", "max_difference", "tolerance", "images"}."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}.")
    run = Run.open(run_dir)
    if not run.has_model:
        raise QuasarError(f"Run {run.name!r} has no trained model to export yet.")
    out = Path(out)
    images = reference_images(run)
    expected = np.asarray(load_run_model(run.path / MODEL_FILE).predict(images, verbose=0))
    with tempfile.TemporaryDirectory(prefix="quasar-export-") as scratch:
        staged = Path(scratch) / "export"
        if format == "zip":
            staged.write_bytes(run_zip_bytes(run.path))
            actual = _predict_zip(staged, images, Path(scratch))
        elif format == "savedmodel":
            _write_savedmodel(run, staged)
            actual = _predict_savedmodel(staged, images)
        else:
            saved = Path(scratch) / "savedmodel"
            _write_savedmodel(run, saved)
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


def _write_savedmodel(run: Run, path: Path) -> None:
    model = load_run_model(run.path / MODEL_FILE)
    model.export(str(path), format="tf_saved_model", verbose=False)


def _tflite_bytes(saved_model: Path) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    return converter.convert()


def _predict_zip(archive_path: Path, images: np.ndarray, scratch: Path) -> np.ndarray:
    folder = scratch / "unzipped"
    with zipfile.ZipFile(archive_path) as archive:
        archive.extractall(folder)  # our own archive, written a moment ago
    model = load_run_model(folder / "model.keras")
    return np.asarray(model.predict(images, verbose=0))


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
    accuracy = f"{run.metrics.accuracy:.1%}" if run.metrics else "not measured"
    return (
        "Quasar Nexus model export\n"
        f"Classes: {', '.join(run.labels)}\n"
        f"Held-out accuracy: {accuracy}\n"
        f"Input: RGB images of any size (resized inside the model to {run.config.image_size} px).\n"
        "Run: python predict.py IMAGE [IMAGE ...]\n"
        "Files: model.keras (Keras 3, loads with safe_mode=True), labels.json (class order of the outputs), "
        "config.json (training settings), metrics.json (held-out evaluation), history.json (per-epoch curves).\n"
    )

