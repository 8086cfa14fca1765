"""The command line: train, evaluate, predict; user errors are one line, never a traceback.

Two tests start `python -m quasar_core` as a user would; the rest call main() in-process.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from quasar_core.cli import main
from quasar_core.config import TrainConfig
from quasar_core.runs import Run

TRAIN_FLAGS = ["--epochs", "1", "--image-size", "32", "--weights", "none"]


def run_cli(shapes, *args, cwd=None, timeout=600):
    return subprocess.run([shapes.python, "-m", "quasar_core", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=shapes.env(), cwd=cwd)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def check_run_folder(path, *, epochs=1, size=32):
    run = Run.open(path)
    assert run.state == "done" and run.has_model
    assert run.labels == ["circle", "square", "triangle"]
    assert run.config == TrainConfig(weights="none", image_size=size, epochs=epochs)
    assert len(run.history) == epochs
    assert run.metrics is not None
    return run


def test_train_a_folder_with_a_corrupt_file(shapes, shapes_folder, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(shapes_folder, data)
    (data / "square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a PNG cut short
    out = tmp_path / "run"
    completed = run_cli(shapes, "train", data, "--out", out, *TRAIN_FLAGS)
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    skipped = [line for line in completed.stderr.splitlines() if "square/broken.png" in line]
    assert len(skipped) == 1, completed.stderr
    assert skipped[0].strip().startswith("square/broken.png: ")
    assert len(skipped[0].split(": ", 1)[1]) > 10  # with its reason
    assert "1 file was skipped" in completed.stderr
    assert "Training on 24 images in 3 classes at 32 px" in completed.stderr
    assert completed.stdout.splitlines()[-1] == f"Run saved in {out}"
    assert "images it had never seen correctly" in completed.stdout
    run = check_run_folder(out)
    assert any(p["file"] == "square/broken.png" for p in run.report["problems"])


def test_one_class_exits_with_one_line_and_no_traceback(shapes, tmp_path):
    data = shapes.write_folder(tmp_path / "data", per_class=6, classes=("circle",))
    completed = run_cli(shapes, "train", data, "--out", tmp_path / "run", *TRAIN_FLAGS)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    line = one_error_line(completed.stderr)
    assert "Only one class ('circle')" in line and "at least 2" in line
    assert not (tmp_path / "run").exists()


def test_train_a_zip(shapes_zip, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(shapes_zip), "--out", str(out), *TRAIN_FLAGS, "--epochs", "2"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert f"Run saved in {out}" in captured.out
    assert "epoch 2 (head)" in captured.err
    check_run_folder(out, epochs=2)


def test_evaluate_json_is_one_object(trained_run, shapes_folder, capsys):
    assert main(["evaluate", str(trained_run.path), str(shapes_folder), "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    result = json.loads(out)
    assert isinstance(result, dict)
    assert {"accuracy", "labels", "confusion_matrix", "per_class"} <= set(result)
    assert result["labels"] == trained_run.labels
    assert sum(map(sum, result["confusion_matrix"])) == 24
    assert set(result["per_class"]) == set(trained_run.labels)
    assert all(scores["support"] == 8 for scores in result["per_class"].values())
    correct = sum(result["confusion_matrix"][i][i] for i in range(3))
    assert result["accuracy"] == pytest.approx(correct / 24)


def test_evaluate_in_words_and_with_an_unknown_class(trained_run, shapes, tmp_path, capsys):
    data = shapes.write_folder(tmp_path / "data", per_class=5, classes=("circle", "square"))
    shapes.write_folder(tmp_path / "extra", per_class=5, classes=("triangle",))
    (tmp_path / "extra" / "triangle").rename(data / "hexagon")  # a class the model does not know
    assert main(["evaluate", str(trained_run.path), str(data)]) == 0
    captured = capsys.readouterr()
    assert "classes not known to this model are left out: hexagon" in captured.err
    assert "images it had never seen correctly" in captured.out
    assert "of 10 images" in captured.out  # the 5 hexagons are not counted
    assert "circle: precision" in captured.out


def test_predict_json_gives_the_label_and_every_probability(trained_run, shapes, tmp_path, capsys):
    picture = tmp_path / "shape.png"
    shapes.image("circle", 50).save(picture)
    assert main(["predict", str(trained_run.path), str(picture), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 1
    result = results[0]
    assert result["image"] == str(picture)
    assert set(result["probabilities"]) == set(trained_run.labels)
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    expected = Run.open(trained_run.path).classifier().predict_proba([np.asarray(shapes.image("circle", 50))])[0]
    assert [result["probabilities"][label] for label in trained_run.labels] == pytest.approx(expected, abs=1e-5)


def test_predict_in_words_and_a_file_that_is_not_a_picture(trained_run, shapes, tmp_path, capsys):
    picture, text = tmp_path / "shape.png", tmp_path / "notes.png"
    shapes.image("square", 51).save(picture)
    text.write_text("not a picture")
    assert main(["predict", str(trained_run.path), str(picture), str(text)]) == 0  # one of two worked
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{picture}: ")
    assert captured.out.strip().endswith("%)")
    assert one_error_line(captured.err).startswith(f"error: {text}: ")
    assert main(["predict", str(trained_run.path), str(text)]) == 2  # nothing worked
    assert one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("flags", "quoted"),
    [(["--epochs", "0"], "0"), (["--image-size", "20"], "20"), (["--learning-rate", "2"], "2.0"),
     (["--val-split", "0.7"], "0.7")],
)
def test_bad_settings_are_one_line_errors(shapes_folder, tmp_path, capsys, flags, quoted):
    out = tmp_path / "run"
    assert main(["train", str(shapes_folder), "--out", str(out), "--weights", "none", *flags]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1]  # after the data report, last
    assert f"got {quoted}" in errors[0]
    assert not out.exists()


@pytest.mark.parametrize("where", ["missing", "file"])
def test_data_that_is_not_a_folder_or_zip(tmp_path, capsys, where):
    path = tmp_path / "data.txt"
    if where == "file":
        path.write_text("hello")
    assert main(["train", str(path), "--out", str(tmp_path / "run"), *TRAIN_FLAGS]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(path) in line


def test_a_folder_that_is_not_a_run(tmp_path, capsys):
    picture = tmp_path / "x.png"
    picture.write_bytes(b"")
    assert main(["predict", str(tmp_path), str(picture)]) == 2
    assert "not a Quasar run folder" in one_error_line(capsys.readouterr().err)


def test_explain_writes_a_heatmap_for_the_predicted_or_a_named_class(trained_run, shapes, tmp_path, capsys):
    picture = tmp_path / "circle.png"
    shapes.image("circle", 3).save(picture)
    out = tmp_path / "maps" / "heat.png"
    assert main(["explain", str(trained_run.path), str(picture), "--out", str(out)]) == 0
    assert "where the model looked for" in capsys.readouterr().out
    from PIL import Image

    with Image.open(out) as heat:
        assert heat.mode == "RGB" and min(heat.size) >= 224  # small pictures are enlarged to be legible
    assert main(["explain", str(trained_run.path), str(picture), "--out", str(out), "--class", "square"]) == 0
    assert "'square'" in capsys.readouterr().out
    assert main(["explain", str(trained_run.path), str(picture), "--out", str(out), "--class", "cat"]) == 2
    assert "'cat' is not one of" in one_error_line(capsys.readouterr().err)


def test_report_writes_a_self_contained_model_card(trained_run, tmp_path, capsys):
    out = tmp_path / "card.html"
    assert main(["report", str(trained_run.path), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "Model card" in html and "Limitations" in html
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["zip", "tflite"])
def test_export_is_checked_against_the_run(trained_run, tmp_path, capsys, fmt):
    out = tmp_path / f"model.{fmt}"
    assert main(["export", str(trained_run.path), "--format", fmt, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "reproduces the run's predictions" in said and out.is_file() and out.stat().st_size > 1000


def test_compare_writes_numbers_and_chart(shapes_folder, tmp_path, capsys):
    out = tmp_path / "comparison"
    assert main(["compare", str(shapes_folder), "--out", str(out), "--fractions", "0.5,1.0", *TRAIN_FLAGS]) == 0
    numbers = json.loads((out / "comparison.json").read_text())
    results = numbers["results"]
    assert {(r["weights"], r["fraction"]) for r in results} == {
        ("imagenet", 0.5), ("imagenet", 1.0), ("none", 0.5), ("none", 1.0)}
    for result in results:
        assert {"images_per_class", "accuracy", "train_seconds"} <= set(result)
    assert (out / "comparison.html").is_file()
    assert numbers["conclusion"] in capsys.readouterr().out
    assert main(["compare", str(shapes_folder), "--out", str(out), "--fractions", "half"]) == 2
    assert "--fractions must be numbers" in one_error_line(capsys.readouterr().err)
