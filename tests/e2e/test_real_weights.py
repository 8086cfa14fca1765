"""End to end with the real ImageNet weights: the bundled sample, trained through the CLI,
names Fashion-MNIST pictures it has never seen correctly, reports an accuracy within 5 points of
that, and calls real colour photos (flowers) unlike anything it learned.

Not asserted here: "transfer beats --weights none by a wide margin". Measured on this sample
(96 px, 10 epochs, 200 unseen pictures, seeds 0/1/2), frozen *random* VGG16 features with the
normalised linear head reach 0.935/0.955/0.92 against 0.965/0.945/0.955 with ImageNet weights
(0.925/0.935/0.92 vs 0.92/0.95/0.92 before the head's variance floor): these five classes are
too easy to show the gap, so such an assertion would be false.

Needs QUASAR_VGG16_WEIGHTS (a local VGG16 notop weights file; CI sets it) and the
Fashion-MNIST source files that scripts/make_sample_dataset.py reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from quasar_core.sample import SAMPLE_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]
MAKE_SAMPLE = REPO_ROOT / "scripts" / "make_sample_dataset.py"
FASHION_SOURCE = REPO_ROOT.parent / "shared" / "datasets" / "fashion-mnist"
IMAGE_SIZE = 96
HOLDOUT_PER_CLASS = 40
FLOWERS_ZIP = REPO_ROOT.parent / "shared" / "datasets" / "flowers-full" / "flowers.zip"
OFF_TOPIC = 20
# Measured: 0.945-0.965 held-out accuracy across seeds 0-2 (0.92-0.95 before the variance floor).
TRANSFER_AT_LEAST = 0.92

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("QUASAR_VGG16_WEIGHTS"),
                       reason="needs the ImageNet weights: set QUASAR_VGG16_WEIGHTS to a VGG16 notop .weights.h5 file"),
]


def cli(shapes, *args, timeout=900):
    env = {key: value for key, value in shapes.env().items() if key != "QUASAR_NO_INT8"}  # the real default
    completed = subprocess.run([shapes.python, "-m", "quasar_core", *map(str, args)], capture_output=True,
                               text=True, timeout=timeout, env=env, cwd=REPO_ROOT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr
    return completed


@pytest.fixture(scope="module")
def sample_zip(tmp_path_factory, shapes):
    assert SAMPLE_DIR.is_dir(), f"the bundled sample is missing: {SAMPLE_DIR}"
    return shapes.zip_folder(SAMPLE_DIR, tmp_path_factory.mktemp("sample") / "fashion.zip")


@pytest.fixture(scope="module")
def holdout(tmp_path_factory, shapes):
    if not (FASHION_SOURCE / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the Fashion-MNIST source files are not in {FASHION_SOURCE}")
    folder = tmp_path_factory.mktemp("holdout") / "unseen"
    subprocess.run([shapes.python, str(MAKE_SAMPLE), "--holdout", str(folder), "--per-class",
                    str(HOLDOUT_PER_CLASS)], check=True, capture_output=True, text=True, timeout=300)
    return folder


def train_and_score(shapes, sample_zip, holdout, out, *extra):
    cli(shapes, "train", sample_zip, "--out", out, "--image-size", IMAGE_SIZE, *extra)
    result = json.loads(cli(shapes, "evaluate", out, holdout, "--json").stdout)
    assert sum(map(sum, result["confusion_matrix"])) == 5 * HOLDOUT_PER_CLASS
    return result


def test_transfer_learning_names_unseen_pictures(shapes, sample_zip, holdout, tmp_path):
    out = tmp_path / "transfer"
    result = train_and_score(shapes, sample_zip, holdout, out)
    assert sorted(result["labels"]) == sorted(p.name for p in SAMPLE_DIR.iterdir() if p.is_dir())
    assert result["accuracy"] >= TRANSFER_AT_LEAST, result["per_class"]
    assert all(scores["support"] == HOLDOUT_PER_CLASS for scores in result["per_class"].values())
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "done" and status["precision"] in ("float32", "bfloat16", "int8")
    if status["precision"] == "int8":  # chosen by "auto": the check on the first photos is in the reason
        assert "agreed with float32" in status["precision_reason"], status["precision_reason"]
    assert json.loads((out / "config.json").read_text())["weights"] == "imagenet"
    # The number the run reports (cross-validation over the sample) is honest about unseen photos.
    reported = json.loads((out / "metrics.json").read_text())
    assert reported["method"] == "10-fold cross-validation over 300 photos, repeated 3 times"
    assert abs(reported["accuracy"] - result["accuracy"]) <= 0.05, (reported["accuracy"], result["accuracy"])
    low, high = reported["accuracy_interval"]
    assert low - 0.02 <= result["accuracy"] <= high + 0.02, (reported["accuracy_interval"], result["accuracy"])

    # None of these: real colour photos of flowers are unlike every piece of clothing it learned.
    if not FLOWERS_ZIP.is_file():
        pytest.skip(f"no flowers to show it: {FLOWERS_ZIP} is missing")
    flowers = tmp_path / "flowers"
    with zipfile.ZipFile(FLOWERS_ZIP) as archive:
        photos = sorted(n for n in archive.namelist() if n.lower().endswith(".jpg"))[::97][:OFF_TOPIC]
        for name in photos:
            archive.extract(name, flowers)
    answers = json.loads(cli(shapes, "predict", out, *sorted(flowers.rglob("*.jpg")), "--json").stdout)
    assert len(answers) == OFF_TOPIC and all(0 <= a["familiarity"] <= 1 for a in answers)
    assert sum(a["unknown"] for a in answers) >= 0.9 * OFF_TOPIC, [a["familiarity"] for a in answers]
    own = json.loads(cli(shapes, "predict", out, *sorted(holdout.rglob("*.png"))[:40], "--json").stdout)
    assert sum(a["unknown"] for a in own) <= 0.1 * len(own), [a["familiarity"] for a in own]
