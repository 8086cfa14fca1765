"""Using a trained run: classify one photo, and package the run for download.

TensorFlow loads only when a photo is classified (run.classifier() loads the model).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

from quasar_core import data
from quasar_core.runs import Run


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
