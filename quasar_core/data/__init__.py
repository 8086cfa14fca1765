"""Users' labelled photos, loaded safely: ``load_dataset(path)`` for a folder or a zip of class folders.

records.py (what a dataset is), images.py (decoding and THE one resize), sources.py
(folders, uploads), zips.py (zip safety), assembly.py (checks, duplicates, warnings),
split.py (folds and hold-out).
"""

from quasar_core.data.images import DecodedImage, decode_image, fit_within, resize, resize_square
from quasar_core.data.records import (DataReport, Dataset, DatasetRejected, ImageRejected, Limits, PhotoRef,
                                      Problem, Sample)
from quasar_core.data.assembly import UNLABELLED, is_unlabelled_folder
from quasar_core.data.sources import load_dataset, load_folder, load_unlabelled, load_uploads
from quasar_core.data.split import Folds, cross_validation_folds, holdout_folds
from quasar_core.data.zips import load_zip

__all__ = [
    "UNLABELLED", "DataReport", "Dataset", "DatasetRejected", "DecodedImage", "Folds", "ImageRejected", "Limits",
    "PhotoRef", "Problem", "Sample", "cross_validation_folds", "decode_image", "fit_within", "holdout_folds",
    "is_unlabelled_folder", "load_dataset", "load_folder", "load_unlabelled", "load_uploads", "load_zip", "resize",
    "resize_square",
]
