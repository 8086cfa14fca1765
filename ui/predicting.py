"""Predict page support: uploaded photos to answers, checked downloads, and opening a model file.

Thin adapters: decoding and classifying are quasar_core.predicting's (the CLI's ``predict``
answers the same way), exports quasar_core.runs.export's, opening a model
quasar_core.runs.model_files'. TensorFlow loads only on a user's action.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from quasar_core import predicting
from quasar_core.data import ImageRejected, Limits, decode_image
from quasar_core.errors import QuasarError
from quasar_core.runs.export import export_run, run_zip_bytes, zip_folder
from quasar_core.runs.folder import FILES, Run, new_run_dir
from ui import resources

# Formats written, reloaded and checked against the model's own predictions before they are offered.
CHECKED_FORMATS = {
    "app": ("Share as an app", "a folder with a small web app of its own: run it, or put it on Streamlit Community "
                               "Cloud, for people to try the model without this app", "application/zip"),
    "savedmodel": ("SavedModel", "a zipped folder for TensorFlow, TensorFlow Serving and converters", "application/zip"),
    "tflite": ("TFLite", "one file for phones and small devices (TensorFlow Lite / LiteRT)", "application/octet-stream"),
}


def classify(run: Run, uploads: list[tuple[str, bytes]]) -> tuple[list[dict], list[str]]:
    """(answers for the photos that could be read, one message per photo that could not)."""
    photos, problems = [], []
    limits = Limits.from_env()
    for name, content in uploads:
        try:
            photos.append((name, decode_image(content, name, limits=limits).pixels))
        except ImageRejected as exc:
            problems.append(f"{name} cannot be used: {exc.reason}.")
    results = predicting.classify_photos(run, photos, base_loader=resources.base_loader(run.config.weights))
    return results, problems


def zip_maker(run: Run) -> Callable[[], bytes]:
    """The zip's bytes, made only when the user clicks Download (st.download_button defers it)."""

    def make() -> bytes:  # assembles the model: TensorFlow loads then
        return run_zip_bytes(run.path, base_loader=resources.base_loader(run.config.weights))

    return make


@dataclass(frozen=True)
class PreparedExport:
    """An export that reproduced the model's predictions, ready to download."""

    format: str
    content: bytes
    file_name: str
    mime: str
    max_difference: float
    tolerance: float
    images: int

    @property
    def check_text(self) -> str:
        return (f"checked: reproduces the model's answers within {self.tolerance:.0e} (largest difference "
                f"{self.max_difference:.1e}, on {self.images} of its photos)")

    def reader(self) -> Callable[[], bytes]:
        return lambda: self.content


def can_check_exports(run: Run) -> bool:
    """Exports are checked on the run's example photos; a model opened from a file has none."""
    return any((run.path / FILES.EXAMPLES).glob("*"))


def prepare_export(run: Run, format: str) -> PreparedExport:
    """Write the export into a temporary folder, check it, and return its bytes (a folder comes zipped).

    Raises QuasarError when the export does not reproduce the model's predictions.
    """
    if format not in CHECKED_FORMATS:
        raise ValueError(f"format must be one of {', '.join(CHECKED_FORMATS)}, got {format!r}.")
    try:
        return _prepare(run, format)
    except ValueError as exc:  # e.g. the app's own checks of what goes into it: said, not shown as a trace
        raise QuasarError(f"The {CHECKED_FORMATS[format][0]} export could not be made: {exc}") from None


def _prepare(run: Run, format: str) -> PreparedExport:
    with tempfile.TemporaryDirectory(prefix="quasar-download-") as scratch:
        package = Path(scratch) / "package"
        out = package / {"savedmodel": "saved_model", "tflite": "model.tflite", "app": "quasar-app"}[format]
        result = export_run(run.path, format=format, out=out, base_loader=resources.base_loader(run.config.weights))
        if format == "tflite":
            content, file_name = out.read_bytes(), f"quasar-{run.name}.tflite"
        else:
            if format == "savedmodel":  # the order of its outputs goes with it
                (package / FILES.LABELS).write_bytes((run.path / FILES.LABELS).read_bytes())
            content = zip_folder(package)
            file_name = f"quasar-{run.name}-{'savedmodel' if format == 'savedmodel' else 'app'}.zip"
    return PreparedExport(format, content, file_name, CHECKED_FORMATS[format][2], float(result["max_difference"]),
                          float(result["tolerance"]), int(result["images"]))


def open_model(content: bytes, file_name: str, runs_root: Path) -> Run:
    """A new run in `runs_root` from an uploaded .keras file or Quasar export zip (checked first).

    Raises QuasarError (UnsafeModelError for code-carrying models) naming the file.
    """
    from quasar_core.runs.model_files import import_model  # loads TensorFlow

    return import_model(content, file_name, new_run_dir(runs_root))
