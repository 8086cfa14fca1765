"""Using a trained run: classify one photo, package it for download, or open a model from a file.

TensorFlow loads only when a photo is classified (run.classifier() loads the model), when
an export is prepared, or when a model file is opened: each is a user's action.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from quasar_core import data, runs
from quasar_core.errors import QuasarError
from quasar_core.runs import Run

# Formats that are written, reloaded and checked against the run's own predictions before they are offered.
CHECKED_FORMATS = {
    "savedmodel": ("SavedModel", "a zipped folder for TensorFlow, TensorFlow Serving and converters"),
    "tflite": ("TFLite", "one file for phones and small devices (TensorFlow Lite / LiteRT)"),
}


def classify(run: Run, content: bytes, name: str) -> dict[str, float]:
    """Class -> probability for one uploaded photo. Raises data.ImageRejected with the reason."""
    pixels, _, _ = data.decode_image(content, name, limits=data.Limits.from_env())
    probabilities = run.classifier().predict_proba([pixels])[0]
    return {label: float(p) for label, p in zip(run.labels, probabilities)}


def export_available() -> bool:
    """Whether quasar_core.export is installed (it is looked for, not imported)."""
    return importlib.util.find_spec("quasar_core.export") is not None


def zip_maker(run_dir: Path) -> Callable[[], bytes]:
    """The zip's bytes, made only when the user clicks Download (st.download_button defers it)."""

    def make() -> bytes:
        from quasar_core.export import run_zip_bytes  # imported here: heavy, and only needed on click

        return run_zip_bytes(run_dir)

    return make


# --- checked exports --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreparedExport:
    """An export that reproduced the run's predictions, ready to download."""

    format: str
    content: bytes
    file_name: str
    mime: str
    max_difference: float
    tolerance: float
    images: int

    @property
    def check_text(self) -> str:
        return (f"checked: reproduces the run's predictions within {self.tolerance:.0e} (largest difference "
                f"{self.max_difference:.1e}, on {self.images} held-out photos)")

    def reader(self) -> Callable[[], bytes]:
        """For st.download_button's deferred data: the bytes are handed over only on click."""
        return lambda: self.content


def can_check_exports(run: Run) -> bool:
    """Exports are checked on the run's held-out photos; a model opened from a file has none."""
    return any((run.path / "examples").glob("*.png"))


def prepare_export(run: Run, format: str) -> PreparedExport:
    """Write the export into a temporary folder, check it (quasar_core.export), and return its bytes.

    Raises QuasarError when the export does not reproduce the run's predictions.
    """
    from quasar_core.export import export_run  # imported here: loads TensorFlow

    if format not in CHECKED_FORMATS:
        raise ValueError(f"format must be one of {', '.join(CHECKED_FORMATS)}, got {format!r}.")
    with tempfile.TemporaryDirectory(prefix="quasar-download-") as scratch:
        out = Path(scratch) / ("saved_model" if format == "savedmodel" else "model.tflite")
        result = export_run(run.path, format=format, out=out)
        if format == "savedmodel":
            content, mime = _zip_saved_model(out, run), "application/zip"
            file_name = f"quasar-{run.name}-savedmodel.zip"
        else:
            content, mime = out.read_bytes(), "application/octet-stream"
            file_name = f"quasar-{run.name}.tflite"
    return PreparedExport(format, content, file_name, mime, float(result["max_difference"]),
                          float(result["tolerance"]), int(result["images"]))


def _zip_saved_model(folder: Path, run: Run) -> bytes:
    """saved_model/ (the folder TensorFlow loads) and labels.json (the order of its outputs), zipped."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, (Path("saved_model") / path.relative_to(folder)).as_posix())
        archive.write(run.path / "labels.json", "labels.json")
    return buffer.getvalue()


# --- opening a model from a file --------------------------------------------------------------------
def open_model(content: bytes, file_name: str, runs_root: Path) -> Run:
    """A new run folder in `runs_root` from an uploaded .keras file or Quasar export zip.

    The file is checked before Keras reads it (quasar_core.model_files). On any problem the
    new folder is removed and QuasarError (UnsafeModelError for code-carrying models) says
    why, naming the file.
    """
    from quasar_core.model_files import import_model  # imported here: loads TensorFlow

    run_dir = runs.new_run_dir(runs_root)
    try:
        return import_model(content, file_name, run_dir)
    except QuasarError:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    except Exception as exc:  # a damaged or hostile file must not show a traceback
        shutil.rmtree(run_dir, ignore_errors=True)
        raise QuasarError(
            f"{file_name!r} could not be opened as a model ({exc.__class__.__name__}). Open the model.keras or "
            "the zip downloaded from Quasar Nexus's Predict page."
        ) from None
