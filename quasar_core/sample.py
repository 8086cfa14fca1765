"""The bundled sample dataset: 5 Fashion-MNIST classes, 60 images each (see sample_data/README.md)."""

from __future__ import annotations

from pathlib import Path

from quasar_core.data import Dataset, Limits, load_folder
from quasar_core.errors import DatasetError

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data" / "fashion"


def load_sample(limits: Limits | None = None) -> Dataset:
    if not SAMPLE_DIR.is_dir():
        raise DatasetError(
            f"The sample dataset is missing ({SAMPLE_DIR}). Run scripts/make_sample_dataset.py to recreate it."
        )
    return load_folder(SAMPLE_DIR, limits=limits)
