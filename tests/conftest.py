"""Shared fixtures for the core and end-to-end tests.

The data is made here, not committed: 3 classes x 8 pictures of coloured shapes (a red
circle, a green square, a blue triangle) at 40 px, each jittered in place, size and
background so no two are the same picture. Model tests train from random weights
("none") at 32 px on it, sharing one VGG16 base per session.
"""

from __future__ import annotations

import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("circle", "square", "triangle")
COLOURS = {"circle": (230, 40, 40), "square": (40, 200, 40), "triangle": (40, 60, 230)}
PER_CLASS = 8
SIDE = 40
# Trainings in tests run VGG16 in float: building an int8 model per image size costs 5-20 s, paid again in
# every fresh cache folder. The int8 path is tested on its own (tests/core/features/test_int8.py,
# test_precision.py) and end to end with the real weights (tests/e2e), which lifts this.
os.environ.setdefault("QUASAR_NO_INT8", "1")

QUASAR_ENV_VARS = ("QUASAR_MAX_UPLOAD_MB", "QUASAR_MAX_IMAGES", "QUASAR_MAX_IMAGE_PIXELS",
                   "QUASAR_MAX_EXTRACTED_MB", "QUASAR_MEMORY_LIMIT_MB", "QUASAR_MAX_CONCURRENT_JOBS")


def shape_image(label: str, number: int, side: int = SIDE) -> Image.Image:
    """A picture of class `label`; `number` varies the position, size and background."""
    rng = np.random.default_rng([CLASSES.index(label), number])
    background = tuple(int(v) for v in rng.integers(0, 70, 3))
    image = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(image)
    extent = int(rng.integers(side * 55 // 100, side * 75 // 100))
    left, top = (int(v) for v in rng.integers(1, side - extent, 2))
    box = (left, top, left + extent, top + extent)
    fill = COLOURS[label]
    if label == "circle":
        draw.ellipse(box, fill=fill)
    elif label == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=fill)
    return image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write_shapes_folder(root: Path, per_class: int = PER_CLASS, classes=CLASSES) -> Path:
    for label in classes:
        (root / label).mkdir(parents=True, exist_ok=True)
        for number in range(per_class):
            shape_image(label, number).save(root / label / f"{label}_{number:02d}.png")
    return root


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


def subprocess_env(**extra) -> dict:
    """Environment for `python -m quasar_core` children: quiet TensorFlow, the repo importable."""
    env = {key: value for key, value in os.environ.items() if key not in QUASAR_ENV_VARS}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def shapes():
    """The helpers above, for tests that make their own pictures or folders."""

    class Shapes:
        classes = CLASSES
        per_class = PER_CLASS
        side = SIDE
        image = staticmethod(shape_image)
        png = staticmethod(png_bytes)
        write_folder = staticmethod(write_shapes_folder)
        zip_folder = staticmethod(zip_folder)
        env = staticmethod(subprocess_env)
        python = sys.executable

    return Shapes


@pytest.fixture(scope="session")
def dataset():
    """The 24-picture dataset, loaded the way browser uploads are."""
    from quasar_core.data import Limits, load_uploads

    items = [(f"{label}_{n:02d}.png", png_bytes(shape_image(label, n)), label)
             for label in CLASSES for n in range(PER_CLASS)]
    return load_uploads(items, limits=Limits())


@pytest.fixture(scope="session")
def shapes_folder(tmp_path_factory) -> Path:
    """The same pictures as a folder of class folders (read-only: copy it to change it)."""
    return write_shapes_folder(tmp_path_factory.mktemp("shapes") / "data")


@pytest.fixture(scope="session")
def shapes_zip(tmp_path_factory, shapes_folder) -> Path:
    return zip_folder(shapes_folder, tmp_path_factory.mktemp("shapes-zip") / "shapes.zip")


@pytest.fixture(scope="session")
def base():
    """VGG16 with random weights, shared read-only by every model test."""
    from quasar_core.backbone import load_vgg16

    return load_vgg16("none")


@pytest.fixture(scope="session")
def base_loader(base):
    """What TransferClassifier, train_run and compare take: a function returning the shared base."""
    return lambda: base


@pytest.fixture(scope="session")
def tiny_config():
    """Random weights at 32 px: the settings every model test starts from (precision left to "auto")."""
    from quasar_core.config import TrainConfig

    return TrainConfig(weights="none", image_size=32)


@pytest.fixture(scope="session")
def fine_tuned(tmp_path_factory, dataset, tiny_config, base_loader):
    """One tiny fine-tuning (block 5, 1 epoch) shared read-only by the training and tuning tests: the
    classifier, its progress rows and the folder its per-epoch checkpoint went to."""
    from quasar_core.features.cache import FeatureCache
    from quasar_core.progress import TrainingHooks
    from quasar_core.training import TransferClassifier

    root = tmp_path_factory.mktemp("fine-tuned")
    config = tiny_config.replace(mode="fine-tune", fine_tune_epochs=1, fine_tune_blocks=1, batch_size=8,
                                 fine_tune_learning_rate=1e-3)
    rows, seen = [], []
    classifier = TransferClassifier(config, cache=FeatureCache(root / "features"), base_loader=base_loader)
    classifier.fit(dataset, hooks=TrainingHooks(on_progress=seen.append, on_epoch_end=rows.append),
                   checkpoint_dir=root / "checkpoint")
    return {"classifier": classifier, "rows": rows, "progress": seen, "checkpoint_dir": root / "checkpoint"}


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """An empty runs root, also set as QUASAR_RUNS_DIR."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("QUASAR_RUNS_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, dataset, tiny_config, base_loader):
    """One finished run folder shared by read-only tests (export, CLI): do not modify it."""
    from quasar_core.runs.pipeline import train_run

    return train_run(dataset, tiny_config, tmp_path_factory.mktemp("shared-runs") / "run", base_loader=base_loader)
