"""Exports are checked against the run's own predictions before they are written."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile

import numpy as np
import pytest

from quasar_core import export
from quasar_core.errors import QuasarError
from quasar_core.export import FORMATS, TOLERANCE, export_run, reference_images, run_zip_bytes
from quasar_core.runs import Run


@pytest.fixture(scope="module")
def zip_export(trained_run, tmp_path_factory):
    """The run exported once as a zip, over an older file of the same name."""
    out = tmp_path_factory.mktemp("zip-export") / "model.zip"
    out.write_text("an older export")
    return out, export_run(trained_run.path, format="zip", out=out)


def test_zip_holds_the_model_labels_and_a_predict_script(zip_export, trained_run):
    out, _ = zip_export
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        assert {"predict.py", "model.keras", "labels.json", "config.json", "metrics.json", "history.json",
                "README.txt"} <= names
        assert json.loads(archive.read("labels.json")) == trained_run.labels
        assert archive.read("model.keras") == (trained_run.path / "model.keras").read_bytes()
        readme = archive.read("README.txt").decode()
        assert ", ".join(trained_run.labels) in readme
        assert f"{trained_run.metrics.accuracy:.1%}" in readme
        compile(archive.read("predict.py"), "predict.py", "exec")  # valid Python


def test_zip_export_is_verified_and_written(zip_export, trained_run):
    out, result = zip_export
    assert result["path"] == str(out) and out.is_file()
    assert result["format"] == "zip"
    assert result["max_difference"] <= TOLERANCE["zip"] == result["tolerance"]
    assert result["images"] == min(16, len(list((trained_run.path / "examples").glob("*.png"))))
    assert zipfile.is_zipfile(out)


def test_extracted_predict_script_prints_a_label(zip_export, trained_run, tmp_path, shapes):
    out, _ = zip_export
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(folder)
    picture = tmp_path / "triangle.png"
    shapes.image("triangle", 99).save(picture)
    completed = subprocess.run([shapes.python, str(folder / "predict.py"), str(picture)], capture_output=True,
                               text=True, timeout=300, env=shapes.env(), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    line = completed.stdout.strip().splitlines()[-1]
    match = re.fullmatch(rf"{re.escape(str(picture))}: (.+) \((\d+\.\d)%\)", line)
    assert match, line
    # The script gives the run's own answer for the picture (the model resizes inside).
    pixels = np.asarray(shapes.image("triangle", 99), dtype=np.float32)[None]
    probabilities = np.asarray(Run.open(trained_run.path).classifier().model_(pixels))[0]
    assert match.group(1) == trained_run.labels[int(probabilities.argmax())]
    assert float(match.group(2)) == pytest.approx(100 * probabilities.max(), abs=0.051)


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
@pytest.mark.parametrize("format", ["savedmodel", "tflite"])
def test_savedmodel_and_tflite_exports_reproduce_the_run(trained_run, tmp_path, format):
    out = tmp_path / f"model.{format}"
    result = export_run(trained_run.path, format=format, out=out)
    assert result["max_difference"] <= TOLERANCE[format] == result["tolerance"]
    assert result["images"] >= 1
    if format == "savedmodel":
        assert (out / "saved_model.pb").is_file()
    else:
        assert out.is_file() and out.read_bytes()[4:8] == b"TFL3"  # the TFLite flatbuffer identifier


def test_an_export_that_does_not_reproduce_the_run_is_not_written(trained_run, tmp_path, monkeypatch):
    # The reloaded export answers something else (all zeros) for the reference images.
    monkeypatch.setattr(export, "_predict_zip", lambda archive, images, scratch: np.zeros((len(images), 3)))
    out = tmp_path / "bad.zip"
    with pytest.raises(QuasarError, match="does not reproduce") as raised:
        export_run(trained_run.path, format="zip", out=out)
    assert "1e-06" in str(raised.value)
    assert not out.exists()


def test_reference_images_are_the_held_out_examples_at_the_input_size(trained_run):
    images = reference_images(trained_run)
    size = trained_run.config.image_size
    assert images.shape == (len(list((trained_run.path / "examples").glob("*.png"))), size, size, 3)
    assert images.dtype == np.float32 and images.max() <= 255
    assert reference_images(trained_run, limit=1).shape[0] == 1


def test_bad_format_and_runs_without_a_model_are_refused(trained_run, tmp_path, dataset, tiny_config, base):
    import threading

    from quasar_core.runs import train_run

    with pytest.raises(ValueError, match="'onnx'"):
        export_run(trained_run.path, format="onnx", out=tmp_path / "x")
    assert set(FORMATS) == {"zip", "savedmodel", "tflite"}
    cancel = threading.Event()
    cancel.set()
    empty = train_run(dataset, tiny_config, tmp_path / "empty-run", base=base, cancel=cancel)
    with pytest.raises(QuasarError, match="no trained model"):
        export_run(empty.path, format="zip", out=tmp_path / "x.zip")
    with pytest.raises(QuasarError, match="no trained model"):
        run_zip_bytes(empty.path)
    with pytest.raises(QuasarError, match="no held-out example"):
        reference_images(empty)
    assert not (tmp_path / "x.zip").exists()
