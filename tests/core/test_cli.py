"""The command line (quasar_core.cli, quasar_core.commands): every command end to end, flags made from the settings'
declarations, presets, user errors in one line with exit status 2 and never a traceback, no TensorFlow start-up
noise, and the package as installed by pip.

Most tests call main() in this process. Three start a child as a user would: `python -m quasar_core` (twice) and
the `quasar` console script of a `pip install .` into a fresh virtualenv (slow-ish: about a minute). Every training
is from random weights at 32 px on the 24 shapes of tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from quasar_core import flags
from quasar_core.cli import build_parser, main
from quasar_core.config import Augmentation, TrainConfig, declared
from quasar_core.presets import PRESETS
from quasar_core.runs.folder import FILES, Run, read_json

REPO = Path(__file__).resolve().parents[2]
TRAIN_FLAGS = ["--image-size", "32", "--weights", "none"]
TF_START_UP = ("cpu_feature_guard", "absl::InitializeLog", "oneDNN custom operations", "Unable to register cu",
               "TF-TRT Warning", "rebuild TensorFlow with the appropriate compiler flags")
SHARED_WEIGHTS = REPO.parent / "shared" / "weights" / "vgg16_imagenet_notop.weights.h5"
IMAGENET_FILE = os.environ.get("QUASAR_VGG16_WEIGHTS") or (str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_file() else "")


@pytest.fixture(autouse=True)
def quiet_environment(monkeypatch, tmp_path_factory):
    """Default limits, and a feature cache of the tests' own (never the user's ~/.cache)."""
    for name in [name for name in os.environ if name.startswith("QUASAR_") and name != "QUASAR_VGG16_WEIGHTS"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("QUASAR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cli-features"))
    monkeypatch.setenv("COLUMNS", "100")


def child_env(shapes, **extra) -> dict:
    """What a user's shell has: no TF_CPP_MIN_LOG_LEVEL (the CLI must quiet TensorFlow itself)."""
    env = shapes.env(QUASAR_CACHE_DIR=extra.pop("cache"), **extra)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


def run_module(shapes, *args, cwd, cache, timeout=900):
    return subprocess.run([shapes.python, "-m", "quasar_core", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=child_env(shapes, cache=cache), cwd=cwd)


def one_error_line(stderr: str) -> str:
    """The one line a user error prints, last, after at most the finished progress bar of the photo check."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    assert "Traceback" not in stderr
    return errors[0]


def assert_no_tensorflow_noise(stderr: str):
    for noise in TF_START_UP:
        assert noise not in stderr, stderr


def check_run_folder(path, *, config=None):
    run = Run.open(path)
    assert run.state == "done" and run.has_model
    assert run.labels == ["circle", "square", "triangle"]
    assert run.config == (config or TrainConfig(weights="none", image_size=32))
    assert run.metrics is not None and run.metrics.n_images == 24
    return run


@pytest.fixture(scope="module")
def cli_run(shapes_zip, tmp_path_factory):
    """`quasar train shapes.zip --out run` in this process: the run every other command uses."""
    out = tmp_path_factory.mktemp("cli") / "run"
    capture = {}
    import contextlib
    import io

    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        capture["code"] = main(["train", str(shapes_zip), "--out", str(out), *TRAIN_FLAGS])
    capture.update(out=std.getvalue(), err=err.getvalue())
    return out, capture


# --------------------------------------------------------------------------- flags and presets


def training_flags():
    """(flag, the default its help must show) for every declared setting."""
    found = []
    for cls, prefix in ((TrainConfig, ""), (Augmentation, "augment-")):
        for name, default, _ in declared(cls):
            if name in flags.NOT_FLAGS:
                continue
            flag = flags._flag(name) if not prefix else f"--{prefix}{name.replace('_', '-')}"
            found.append((flag, "suggested from the photos" if name == "image_size" else str(default)))
    return found


def test_every_training_flag_has_help_that_shows_its_default(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--help"])
    assert exited.value.code == 0
    page = "".join(capsys.readouterr().out.split())  # argparse wraps lines (even at hyphens): compare unwrapped
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    by_flag = {option: action for action in train._actions for option in action.option_strings}
    assert len(training_flags()) >= 15
    for flag, default in training_flags():
        action = by_flag[flag]
        assert action.help and f"(default: {default})" in action.help, (flag, action.help)
        assert flag in page and "".join(action.help.split()) in page, flag
    assert "(default:balanced)" in page and "--preset{quick,balanced,best}" in page
    for preset in PRESETS.values():
        assert "".join(preset.description.split()) in page
    assert "--no-class-weights" in page and "--augment-flip" in page  # on/off settings have both forms


def test_the_training_flags_are_the_settings_declared_in_config():
    declared_names = {name for name, _, _ in declared(TrainConfig)} - flags.NOT_FLAGS
    args = build_parser().parse_args(["train", "data", "--out", "run"])
    assert {name for name in declared_names if hasattr(args, name)} == declared_names
    assert all(getattr(args, name) is None for name in declared_names)  # not given: the preset's value


@pytest.fixture
def captured_training(monkeypatch):
    """train_run replaced by a recorder: what the CLI would train, without training."""
    seen = {}

    def fake_train_run(dataset, config, run_dir, **kwargs):
        seen.update(dataset=dataset, config=config, run_dir=Path(run_dir), **kwargs)
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        return types.SimpleNamespace(path=Path(run_dir), metrics=None,
                                     status=types.SimpleNamespace(precision_reason="float32"))

    import quasar_core.runs.pipeline

    monkeypatch.setattr(quasar_core.runs.pipeline, "train_run", fake_train_run)
    return seen


@pytest.mark.parametrize("preset", ["quick", "balanced", "best"])
def test_presets_give_their_settings(preset, captured_training, shapes_folder, tmp_path, capsys):
    assert main(["train", str(shapes_folder), "--out", str(tmp_path / "run"), "--preset", preset]) == 0
    config, candidates = captured_training["config"], captured_training["candidates"]
    err = capsys.readouterr().err
    assert config.image_size == 128  # 40 px photos: about 3 times their side
    if preset == "quick":
        assert config == PRESETS["quick"].config(captured_training["dataset"]) and not config.augment
        assert candidates is None and "(quick preset, feature extraction)" in err
    elif preset == "balanced":
        assert config == PRESETS["balanced"].config(captured_training["dataset"]) and candidates is None
    else:  # Best tries its candidates, on the same photos, and keeps the winner (selection.py)
        assert candidates == PRESETS["best"].candidates(captured_training["dataset"])
        assert len(candidates) >= 2 and not any(c.fine_tunes for c in candidates) and any(c.augment for c in candidates)
        assert f"(best preset, trying {len(candidates)} settings)" in err


def test_flags_given_override_the_preset_and_every_candidate(captured_training, shapes_folder, tmp_path):
    assert main(["train", str(shapes_folder), "--out", str(tmp_path / "run"), "--preset", "best", *TRAIN_FLAGS,
                 "--fine-tune-epochs", "1", "--no-class-weights", "--augment-views", "3"]) == 0
    candidates = captured_training["candidates"]
    assert all(c.image_size == 32 and c.weights == "none" and c.fine_tune_epochs == 1 and not c.class_weights
               and c.augmentation.views == 3 for c in candidates)
    assert len(candidates) == len(set(candidates)) >= 2  # the ones the flags made equal are tried once


def test_the_best_preset_trains_its_candidates_and_keeps_the_winner(shapes_folder, tmp_path, capsys):
    out = tmp_path / "best"
    # --mode feature-extraction keeps it quick: Quick look's and Balanced's settings at 32 px are left to try.
    assert main(["train", str(shapes_folder), "--out", str(out), "--preset", "best", *TRAIN_FLAGS,
                 "--mode", "feature-extraction"]) == 0
    captured = capsys.readouterr()
    table = read_json(out / FILES.SELECTION)
    assert [row["setting"] for row in table] == ["32 px", "32 px, 1 augmented copy of each photo"]
    assert sum(row["chosen"] for row in table) == 1
    assert "Best accuracy tried 2 settings" in captured.err and "(best preset, trying 2 settings)" in captured.err
    assert Run.open(out).state == "done" and f"Run saved in {out}" in captured.out


# --------------------------------------------------------------------------- train, evaluate, predict


def test_train_a_zip(cli_run):
    out, captured = cli_run
    assert captured["code"] == 0
    assert "Traceback" not in captured["err"]
    assert "Training on 24 photos in 3 classes at 32 px (balanced preset, feature extraction)." in captured["err"]
    assert "VGG16 ran in float32" in captured["err"] or "VGG16 ran in bfloat16" in captured["err"]
    assert captured["out"].splitlines()[-1] == f"Run saved in {out}"
    assert "photos correctly that the model testing them had never seen" in captured["out"]
    run = check_run_folder(out)
    assert run.status.source == "shapes.zip"


def test_evaluate_json_is_one_object(cli_run, shapes_folder, capsys):
    out, _ = cli_run
    assert main(["evaluate", str(out), str(shapes_folder), "--json"]) == 0
    printed = capsys.readouterr().out
    assert len(printed.strip().splitlines()) == 1
    result = json.loads(printed)
    assert {"accuracy", "labels", "confusion_matrix", "per_class", "accuracy_interval", "method"} <= set(result)
    assert result["labels"] == ["circle", "square", "triangle"]
    assert sum(map(sum, result["confusion_matrix"])) == 24
    assert all(scores["support"] == 8 for scores in result["per_class"].values())
    correct = sum(result["confusion_matrix"][i][i] for i in range(3))
    assert result["accuracy"] == pytest.approx(correct / 24)


def test_evaluate_in_words_and_with_an_unknown_class(cli_run, shapes, tmp_path, capsys):
    out, _ = cli_run
    data = shapes.write_folder(tmp_path / "data", per_class=5, classes=("circle", "square"))
    shapes.write_folder(tmp_path / "extra", per_class=5, classes=("triangle",))
    (tmp_path / "extra" / "triangle").rename(data / "hexagon")  # a class the model does not know
    assert main(["evaluate", str(out), str(data)]) == 0
    captured = capsys.readouterr()
    assert "classes not known to this model are left out: hexagon" in captured.err
    assert "of 10 photos correctly" in captured.out  # the 5 hexagons are not counted
    assert re.search(r"circle: precision \d+\.\d %, recall \d+\.\d %, F1 \d\.\d\d \(5 photos\)", captured.out)


def test_predict_json_gives_label_probabilities_familiarity_unknown_and_unusual_per_image(cli_run, shapes, tmp_path,
                                                                                          capsys):
    out, _ = cli_run
    circle, noise = tmp_path / "circle.png", tmp_path / "noise.png"
    shapes.image("circle", 50).save(circle)
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(noise)
    assert main(["predict", str(out), str(circle), str(noise), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in results] == [str(circle), str(noise)]
    for result in results:
        assert set(result) == {"image", "label", "probabilities", "familiarity", "unknown", "unusual", "answer"}
        assert set(result["probabilities"]) == {"circle", "square", "triangle"}
        assert result["answer"] in ("familiar", "unusual", "unknown") and not (result["unknown"] and result["unusual"])
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
        assert 0 <= result["familiarity"] <= 1
    assert results[0]["label"] == "circle" and results[0]["unknown"] is False and results[0]["answer"] == "familiar"
    assert results[1]["unknown"] is True and results[1]["unusual"] is False and results[1]["answer"] == "unknown"
    from quasar_core.runs.learned import classifier_of

    expected = classifier_of(Run.open(out)).predict_proba([np.asarray(shapes.image("circle", 50))])[0]
    assert list(results[0]["probabilities"].values()) == pytest.approx(list(expected), abs=1e-5)


def test_predict_in_words_and_a_file_that_is_not_a_picture(cli_run, shapes, tmp_path, capsys):
    out, _ = cli_run
    picture, text = tmp_path / "shape.png", tmp_path / "notes.png"
    shapes.image("square", 51).save(picture)
    text.write_text("not a picture")
    assert main(["predict", str(out), str(picture), str(text)]) == 0  # one of two worked
    captured = capsys.readouterr()
    sure = r"(\d+\.\d|more than 99) % sure"  # wording.confidence: never "100.0 %"
    assert re.fullmatch(rf"{re.escape(str(picture))}: It is most likely square \({sure}\)\n", captured.out), captured.out
    assert one_error_line(captured.err).startswith(f"error: {text}: ")
    assert main(["predict", str(out), str(text)]) == 2  # nothing worked
    assert one_error_line(capsys.readouterr().err)


def test_predict_in_words_says_which_of_the_three_answers_and_never_100_percent(cli_run, shapes, tmp_path, capsys):
    out, _ = cli_run
    circle, noise = tmp_path / "circle.png", tmp_path / "noise.png"
    shapes.image("circle", 52).save(circle)
    from PIL import Image

    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(noise)
    assert main(["predict", str(out), str(circle), str(noise)]) == 0
    words = capsys.readouterr().out
    assert f"{circle}: It is most likely circle (" in words
    assert f"{noise}: This doesn't look like any of your classes\n" in words
    assert "100 %" not in words and "100.0 %" not in words and " 0 %" not in words and "0.0 %" not in words


def test_explain_writes_a_heatmap_for_the_predicted_or_a_named_class(cli_run, shapes, tmp_path, capsys):
    out, _ = cli_run
    picture = tmp_path / "circle.png"
    shapes.image("circle", 3).save(picture)
    heat = tmp_path / "maps" / "heat.png"
    assert main(["explain", str(out), str(picture), "--out", str(heat)]) == 0
    assert re.search(r"where the model looked for 'circle' \(probability (\d+\.\d|more than 99) %\)",
                     capsys.readouterr().out)
    from PIL import Image

    with Image.open(heat) as image:
        assert image.mode == "RGB" and min(image.size) >= 224  # small pictures are enlarged to be legible
    assert main(["explain", str(out), str(picture), "--out", str(heat), "--class", "square"]) == 0
    assert "'square'" in capsys.readouterr().out
    assert main(["explain", str(out), str(picture), "--out", str(heat), "--class", "cat"]) == 2
    assert "'cat' is not one of" in one_error_line(capsys.readouterr().err)


def test_report_writes_a_self_contained_model_card(cli_run, tmp_path, capsys):
    out, _ = cli_run
    card = tmp_path / "card.html"
    assert main(["report", str(out), "--out", str(card)]) == 0
    page = card.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Model card" in page and "Limitations" in page
    assert str(card) in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
@pytest.mark.parametrize("fmt", ["zip", "tflite"])
def test_export_is_checked_against_the_run(cli_run, tmp_path, capsys, fmt):
    out, _ = cli_run
    target = tmp_path / f"model.{fmt}"
    assert main(["export", str(out), "--format", fmt, "--out", str(target)]) == 0
    said = capsys.readouterr().out
    assert "reproduces the run's predictions" in said and target.is_file() and target.stat().st_size > 1000
    assert ("already resized to 32 x 32 px" in said) == (fmt == "tflite")


def test_compare_writes_numbers_and_a_chart(shapes_folder, tmp_path, capsys):
    out = tmp_path / "comparison"
    assert main(["compare", str(shapes_folder), "--out", str(out), "--fractions", "0.5,1.0", *TRAIN_FLAGS]) == 0
    numbers = read_json(out / FILES.COMPARISON)
    assert {(r["weights"], r["fraction"]) for r in numbers["results"]} == {
        ("imagenet", 0.5), ("imagenet", 1.0), ("scratch", 1.0)}
    for result in numbers["results"]:
        assert {"images_per_class", "accuracy", "accuracy_interval", "train_seconds"} <= set(result)
    assert (out / "comparison.html").is_file()
    assert numbers["conclusion"] in capsys.readouterr().out
    assert main(["compare", str(shapes_folder), "--out", str(out), "--fractions", "half"]) == 2
    assert "--fractions must be numbers" in one_error_line(capsys.readouterr().err)
    assert main(["compare", str(shapes_folder), "--out", str(out), "--fractions", "0,1"]) == 2
    assert "above 0 and at most 1" in one_error_line(capsys.readouterr().err)


@pytest.mark.skipif(not IMAGENET_FILE, reason="the photo check reads ImageNet features: needs QUASAR_VGG16_WEIGHTS or "
                                              "../shared/weights/vgg16_imagenet_notop.weights.h5")
def test_check_json_has_every_finding(shapes_folder, capsys, monkeypatch):
    monkeypatch.setenv("QUASAR_VGG16_WEIGHTS", IMAGENET_FILE)
    assert main(["check", str(shapes_folder), "--json", "--image-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert len(printed.strip().splitlines()) == 1
    report = json.loads(printed)
    assert {"label_issues", "near_duplicates", "outliers", "classes"} <= set(report)
    assert [c["label"] for c in report["classes"]] == ["circle", "square", "triangle"]
    assert all(c["count"] == 8 for c in report["classes"])


def test_doctor_still_runs_the_photo_check_but_is_not_listed(shapes_folder, capsys, monkeypatch):
    from quasar_core import commands

    seen = []
    monkeypatch.setitem(commands.COMMANDS, "check", lambda args: seen.append((args.data, args.json)) or 0)
    assert main(["doctor", str(shapes_folder), "--json"]) == 0 and seen == [(str(shapes_folder), True)]
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert "check" in listed and "doctor" not in listed


# --------------------------------------------------------------------------- user errors


@pytest.mark.parametrize(("given", "quoted"), [
    (["--fine-tune-epochs", "101"], "101"), (["--image-size", "20"], "20"), (["--fine-tune-learning-rate", "2"], "2.0"),
    (["--holdout", "0.7"], "0.7"), (["--folds", "1"], "1"), (["--augment-views", "9"], "9"),
])
def test_bad_settings_are_one_line_errors(shapes_folder, tmp_path, capsys, given, quoted):
    out = tmp_path / "run"
    assert main(["train", str(shapes_folder), "--out", str(out), "--weights", "none", *given]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"got {quoted}" in line
    assert not out.exists()


@pytest.mark.parametrize("where", ["missing", "file"])
def test_data_that_is_not_a_folder_or_a_zip(tmp_path, capsys, where):
    path = tmp_path / "data.txt"
    if where == "file":
        path.write_text("hello")
    assert main(["train", str(path), "--out", str(tmp_path / "run"), *TRAIN_FLAGS]) == 2
    assert str(path) in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_a_folder_that_is_not_a_run(tmp_path, capsys):
    picture = tmp_path / "x.png"
    picture.write_bytes(b"")
    for command in (["predict", str(tmp_path), str(picture)],
                    ["report", str(tmp_path), "--out", str(tmp_path / "x.html")],
                    ["export", str(tmp_path), "--out", str(tmp_path / "x.zip")]):
        assert main(command) == 2
        assert "not a Quasar run folder" in one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- as a user runs it


def test_python_m_quasar_core_trains_quietly_and_names_the_bad_file(shapes, shapes_folder, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(shapes_folder, data)
    (data / "square" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a PNG cut short
    done = run_module(shapes, "train", data, "--out", tmp_path / "run", *TRAIN_FLAGS, cwd=tmp_path,
                      cache=tmp_path / "features")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert_no_tensorflow_noise(done.stderr)
    skipped = [line for line in done.stderr.splitlines() if "square/broken.png" in line]
    assert len(skipped) == 1 and skipped[0].strip().startswith("square/broken.png: "), done.stderr
    assert len(skipped[0].split(": ", 1)[1]) > 10  # with its reason
    assert "1 file was skipped" in done.stderr
    assert "Training on 24 photos in 3 classes at 32 px" in done.stderr
    assert done.stdout.splitlines()[-1] == f"Run saved in {tmp_path / 'run'}"
    run = check_run_folder(tmp_path / "run")
    assert any(p.file == "square/broken.png" and p.kind == "skipped" for p in run.report.problems)


def test_one_class_exits_2_with_one_line(shapes, tmp_path):
    data = shapes.write_folder(tmp_path / "data", per_class=6, classes=("circle",))
    done = run_module(shapes, "train", data, "--out", tmp_path / "run", *TRAIN_FLAGS, cwd=tmp_path,
                      cache=tmp_path / "features")
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "Only one class ('circle')" in line and "at least 2" in line
    assert done.stdout == "" and not (tmp_path / "run").exists()
    assert_no_tensorflow_noise(done.stderr)


def _project_copy(destination: Path) -> Path:
    """What `pip install .` needs, copied (so the build's own folders are never written into the repository)."""
    destination.mkdir()
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        shutil.copy2(REPO / name, destination / name)
    shutil.copytree(REPO / "quasar_core", destination / "quasar_core",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


def test_the_installed_package_trains_and_predicts_from_another_folder(shapes, shapes_zip, tmp_path):
    """The proof the package installs: `pip install .` into a new virtualenv that sees this Python's packages
    (TensorFlow is not downloaded again), then the `quasar` script, from a folder that is not the repository, with
    no PYTHONPATH, trains and predicts. Slow-ish (about a minute); skipped, saying why, if pip cannot build here
    without the network."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=300)
    python, quasar = venv / "bin" / "python", venv / "bin" / "quasar"
    built = subprocess.run([str(python), "-m", "pip", "install", "--no-build-isolation", "--no-index", "--no-deps",
                            "--quiet", str(_project_copy(tmp_path / "source"))], capture_output=True, text=True,
                           timeout=600, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if built.returncode != 0:
        pytest.skip("pip could not build the package offline here: "
                    + (built.stderr.strip().splitlines() or ["(no message)"])[-1])
    assert quasar.is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = child_env(shapes, cache=tmp_path / "features")
    env.pop("PYTHONPATH", None)
    where = subprocess.run([str(python), "-c", "import quasar_core, sys; print(quasar_core.__file__)"],
                           capture_output=True, text=True, cwd=elsewhere, env=env, timeout=120)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout + where.stderr  # not the repository's
    helped = subprocess.run([str(quasar), "train", "--help"], capture_output=True, text=True, cwd=elsewhere,
                            env=env, timeout=120)
    assert helped.returncode == 0 and "(default: balanced)" in helped.stdout
    trained = subprocess.run([str(quasar), "train", str(shapes_zip), "--out", "run", *TRAIN_FLAGS],
                             capture_output=True, text=True, cwd=elsewhere, env=env, timeout=900)
    assert trained.returncode == 0, trained.stderr
    assert_no_tensorflow_noise(trained.stderr)
    check_run_folder(elsewhere / "run")
    picture = elsewhere / "triangle.png"
    shapes.image("triangle", 77).save(picture)
    predicted = subprocess.run([str(quasar), "predict", "run", "triangle.png", "--json"], capture_output=True,
                               text=True, cwd=elsewhere, env=env, timeout=900)
    assert predicted.returncode == 0, predicted.stderr
    [result] = json.loads(predicted.stdout)
    assert result["image"] == "triangle.png" and result["label"] == "triangle" and result["unknown"] is False
    assert_no_tensorflow_noise(predicted.stderr)
    look = ("import pathlib, quasar_core; root = pathlib.Path(quasar_core.__file__).parent; "
            "print((root / 'runs/share_app_template/app.py').is_file(), "
            "any((root / 'features/calibration').iterdir()))")
    packaged = subprocess.run([str(python), "-c", look], capture_output=True, text=True, cwd=elsewhere, env=env,
                              timeout=120)
    assert packaged.stdout.split() == ["True", "True"], packaged.stderr  # the package data came along


def test_predict_says_unusual_in_json_and_in_words(cli_run, shapes, tmp_path, capsys):
    """The run's reference with its unusual band widened to nearly every familiarity (a copy of the run): a
    photo that is not unknown but less typical than the most typical training photo answers "unusual"."""
    import shutil

    out, _ = cli_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    with np.load(copy / "familiarity.npz", allow_pickle=False) as saved:
        arrays = {name: saved[name] for name in saved.files}
    arrays["unusual_below"] = np.array(0.999999)
    np.savez(copy / "familiarity.npz", **arrays)
    circle, blurred = tmp_path / "circle.png", tmp_path / "blurred.png"
    shapes.image("circle", 53).save(circle)
    from PIL import Image, ImageFilter

    shapes.image("circle", 54).filter(ImageFilter.GaussianBlur(2)).save(blurred)
    assert main(["predict", str(copy), str(circle), str(blurred), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    unusual = [r for r in results if r["answer"] == "unusual"]
    assert unusual and all(r["unusual"] is True and r["unknown"] is False for r in unusual), results
    assert all(0.025 <= r["familiarity"] < 0.999999 for r in unusual)
    assert main(["predict", str(copy), unusual[0]["image"]]) == 0
    words = capsys.readouterr().out
    assert words.startswith(f"{unusual[0]['image']}: Not sure: this photo looks unusual for your classes; "
                            f"the closest is {unusual[0]['label']} ("), words
    assert "100 %" not in words and "100.0 %" not in words
