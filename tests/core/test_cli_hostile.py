"""The hostile corpus (tests/hostile.py) through `python -m quasar_core train`, as a user would run it.

Each command runs in a child process from an empty working directory, with the zip in a
folder of its own, the run folder in a third and TMPDIR and HOME in folders of their own,
so what the command writes, and where, can be checked. The children train at 32 px, from the
ImageNet weights file named by QUASAR_VGG16_WEIGHTS (or the shared copy next to the repository)
when there is one, else from random weights ("none").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import hostile

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_WEIGHTS = REPO_ROOT.parent / "shared" / "weights" / "vgg16_imagenet_notop.weights.h5"
WEIGHTS_FILE = os.environ.get("QUASAR_VGG16_WEIGHTS") or (str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_file() else "")
TRAIN_FLAGS = ["--image-size", "32", "--weights", "imagenet" if WEIGHTS_FILE else "none"]
HANG_GUARD_SECONDS = 900  # only so a hung child cannot hang the suite; not a speed requirement


@pytest.fixture
def places(tmp_path) -> dict[str, Path]:
    """Separate, initially empty folders: the working directory, the zip's, the runs', TMPDIR and HOME."""
    folders = {name: tmp_path / name for name in ("cwd", "zips", "runs", "tmp", "home")}
    for folder in folders.values():
        folder.mkdir()
    return folders


def run_cli(args: list[str], places: dict[str, Path], *, pythonpath_first: Path | None = None):
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUASAR_")}  # default limits
    if WEIGHTS_FILE:
        env["QUASAR_VGG16_WEIGHTS"] = WEIGHTS_FILE
    paths = [str(pythonpath_first)] if pythonpath_first else []
    env.update(
        PYTHONPATH=os.pathsep.join([*paths, str(REPO_ROOT)]),
        PYTHONDONTWRITEBYTECODE="1",  # the repository's __pycache__ is not the command's doing
        TMPDIR=str(places["tmp"]),
        HOME=str(places["home"]),
    )
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the CLI quiets TensorFlow by itself
    return subprocess.run([sys.executable, "-m", "quasar_core", *args], cwd=places["cwd"], env=env,
                          capture_output=True, text=True, encoding="utf-8", errors="replace",
                          timeout=HANG_GUARD_SECONDS)


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `folder` with its size and modification time."""
    return {path.relative_to(folder).as_posix(): (path.lstat().st_size, path.lstat().st_mtime_ns)
            for path in folder.rglob("*")}


def no_slip_file_anywhere(places: dict[str, Path], tmp_path: Path) -> None:
    """No zip-slip entry was written: not under any folder of the test, nor where a slip would land."""
    assert sorted(p.as_posix() for p in tmp_path.rglob("*evil*")) == []
    for base in (*places.values(), tmp_path, REPO_ROOT):
        for target in hostile.slip_targets(base):
            assert not target.exists(), f"{target} was written from a zip-slip entry"


@pytest.fixture
def shadow_tensorflow(tmp_path) -> Path:
    """A folder whose `tensorflow` and `keras` fail to import: a refusal must come before either loads."""
    folder = tmp_path / "shadow"
    for package in ("tensorflow", "keras"):
        (folder / package).mkdir(parents=True)
        (folder / package / "__init__.py").write_text(
            f"raise ImportError('{package} was imported: the zip was not refused before training began')\n")
    return folder


def test_train_on_the_hostile_corpus_uses_the_good_photos_and_names_every_bad_file(places, tmp_path):
    corpus = places["zips"] / "corpus.zip"
    corpus.write_bytes(hostile.corpus_zip())
    run = places["runs"] / "run"
    zips_before, cwd_before = tree(places["zips"]), tree(places["cwd"])

    result = run_cli(["train", str(corpus), "--out", str(run), *TRAIN_FLAGS], places)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    # Every bad file by name, with its reason, as the report lists it ("  name: reason").
    assert f"{len(hostile.CORPUS_SKIPPED)} files were skipped:" in lines
    for file, words in hostile.CORPUS_SKIPPED.items():
        said = [line for line in lines if line.startswith(f"  {file}: ")]
        assert len(said) == 1 and words in said[0], (file, words, said)
    for file, words in hostile.CORPUS_WARNINGS.items():
        assert any(line.startswith(f"Warning: {file}: ") and words in line for line in lines), (file, words)
    for words in (hostile.CORPUS_FEW_PHOTOS_WORDS, hostile.CORPUS_UNBALANCED_WORDS):
        assert any(line.startswith("Warning: ") and all(w in line for w in words) for line in lines), words
    for file, original in hostile.CORPUS_DUPLICATES.items():
        assert f"  {file}: same picture as {original}; used once" in lines
    for ignored in hostile.CORPUS_IGNORED:
        assert ignored not in result.stderr
    usable = sum(hostile.CORPUS_COUNTS.values())
    assert f"Training on {usable} photos in {len(hostile.CORPUS_COUNTS)} classes at 32 px" in result.stderr

    # It trained on exactly the usable photos, and the run says so.
    hostile.check_corpus_report(json.loads((run / "data_report.json").read_text(encoding="utf-8")))
    folds = json.loads((run / "folds.json").read_text(encoding="utf-8"))
    assert sorted(folds["names"]) == sorted(hostile.CORPUS_USED)
    # Every photo is tested once, by a model that did not learn from it.
    assert folds["folds"]["method"] == "cross-validation"
    assert len(folds["folds"]["assignment"]) == len(folds["names"])
    assert all(fold >= 0 for fold in folds["folds"]["assignment"])
    assert json.loads((run / "status.json").read_text(encoding="utf-8"))["state"] == "done"
    assert json.loads((run / "labels.json").read_text(encoding="utf-8")) == sorted(hostile.CORPUS_COUNTS)
    assert (run / "head.npz").is_file()  # what was learned; the shared VGG16 base is not copied into runs
    assert f"Run saved in {run}" in result.stdout

    # Nothing written beside the zip or in the working directory; no zip-slip file anywhere.
    assert tree(places["zips"]) == zips_before
    assert tree(places["cwd"]) == cwd_before == {}
    no_slip_file_anywhere(places, tmp_path)


@pytest.mark.parametrize("case", ["zip bomb", "one class"])
def test_a_zip_that_cannot_be_used_is_refused_in_one_line_before_training(case, places, tmp_path,
                                                                           shadow_tensorflow):
    if case == "zip bomb":
        archive = hostile.write_zip_bomb(places["zips"] / "bomb.zip")
        expected = ("error: bomb.zip was refused: 'cat/zeros.png' unpacks from", "which only a zip bomb does",
                    "Zip the images again from their folders.")
    else:
        archive = places["zips"] / "one-class.zip"
        archive.write_bytes(hostile.one_class_zip())
        expected = ("error: Only one class ('cat') was found in one-class.zip",
                    "Add a folder of pictures for each other class.")
    zips_before = tree(places["zips"])
    run = places["runs"] / "run"

    # With TensorFlow made unimportable: the refusal comes from the zip's directory, before any training.
    result = run_cli(["train", str(archive), "--out", str(run), *TRAIN_FLAGS], places,
                     pythonpath_first=shadow_tensorflow)

    assert result.returncode == 2
    # One line says why. Photos that were checked first leave only their finished progress bar above it.
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    message = lines[-1]
    assert message.startswith("error: ") and all(words in message for words in expected), result.stderr
    assert all(line.startswith("Checking your photos") for line in lines[:-1]), result.stderr
    if case == "zip bomb":  # refused from the zip's directory: not one photo was checked
        assert lines == [message]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not run.exists()
    assert tree(places["zips"]) == zips_before
    assert tree(places["cwd"]) == {} and tree(places["tmp"]) == {}
