"""Save project / Open project (quasar_core.project): a workspace round-trips through one zip file, and hostile
project files are refused with a clear message and nothing changed. Run folders are written through RunWriter, as
a training writes them; no training here."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from quasar_core import cli
from quasar_core.config import TrainConfig
from quasar_core.data import load_zip
from quasar_core.errors import DatasetError, QuasarError
from quasar_core.features.cache import FeatureCache, FeatureSpec
from quasar_core.project import FORMAT, VERSION, ProjectRefused, open_project, project_bytes, save_project
from quasar_core.runs.folder import FILES, Run, RunWriter, new_run_dir
from quasar_core.workspace import Decision, Workspace
from tests import hostile

SPEC = FeatureSpec("random-0", 32, "float32")
BOUNDARY = FeatureSpec("random-0", 32, "float32", layer="block4_pool")
LABELS = ["cat", "dog", "fox"]


@pytest.fixture(autouse=True)
def own_cache_and_limits(monkeypatch):
    for name in ("QUASAR_CACHE_DIR", "QUASAR_MAX_UPLOAD_MB", "QUASAR_MAX_EXTRACTED_MB", "QUASAR_MAX_IMAGES",
                 "QUASAR_WORKSPACE_CACHE_MB"):
        monkeypatch.delenv(name, raising=False)


def new_space(tmp_path, name="a1") -> Workspace:
    return Workspace(tmp_path / "runs" / name, workspace_id=name)


def stock_keras_bytes(class_name="Dense") -> bytes:
    """A .keras archive whose description names only stock layers (or `class_name`); never loaded here."""
    config = {"module": "keras", "class_name": "Functional", "config": {"layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"name": "input"}},
        {"module": "keras.layers", "class_name": class_name,
         "config": {"name": "top", "function": {"class_name": "__lambda__", "config": {"code": "print('hi')"}}}
         if class_name == "Lambda" else {"name": "top", "units": 3}}]}}
    return hostile.zip_bytes({"config.json": json.dumps(config).encode(), "metadata.json": b"{}",
                              "model.weights.h5": b"\x89HDF\r\n\x1a\n" + bytes(64)})


def write_run(space: Workspace, *, model: bytes | None = None, state="done") -> Run:
    """A finished run folder as the pipeline writes one: settings, history, a head (or a model), an example."""
    writer = RunWriter(new_run_dir(space.root), TrainConfig(image_size=32, weights="none"), LABELS)
    writer.add_history({"epoch": 1, "phase": "head", "accuracy": 0.8, "loss": 0.5})
    writer.write(FILES.DATA_REPORT, {"source": "pets.zip", "counts": {"cat": 5}, "problems": []})
    if model is None:
        writer.write_arrays(FILES.HEAD, {"kernel": np.ones((512, 3), np.float32), "bias": np.zeros(3, np.float32)})
    else:
        (writer.path / FILES.MODEL).write_bytes(model)
        writer.write_status(opened_from="model.keras")
    writer.write_example(1, hostile.jpeg(1))
    if state != "running":
        writer.finish(state, "Trained.")
    return Run.open(writer.path)


@pytest.fixture
def saved_space(tmp_path) -> Workspace:
    """Photos uploaded as a zip, checked; two decisions, settings, the check's result, a pinned run, cached
    features (small ones and a fine-tuning activation), two finished runs and one still training."""
    space = new_space(tmp_path)
    folder = space.new_photos_folder()
    members = {f"{label}/{label}_{i}.png": hostile.png(100 * n + i) for n, label in enumerate(LABELS) for i in range(5)}
    upload = space.save_upload(folder, "pets.zip", hostile.zip_bytes(members))
    dataset = load_zip(upload)
    space.keep_dataset(dataset, photos_folder=folder)
    space.keep_settings("Quick look", TrainConfig(image_size=48, weights="none"), chosen=True)
    space.decide(Decision("cat/cat_0.png", "remove"))
    space.decide(Decision("dog/dog_1.png", "move", "fox"))
    space.keep_check({"report": {"label_issues": [{"file": "dog/dog_1.png"}], "near_duplicates": [], "outliers": []}})
    cache = space.cache()
    for sample in dataset.samples:
        cache.put(sample.digest, SPEC, np.full(512, 0.5, np.float32))
    cache.put(dataset.samples[0].digest, BOUNDARY, np.zeros((6, 6, 512), np.float32))  # 72 KB: left out
    first = write_run(space)
    second = write_run(space, model=stock_keras_bytes())
    space.pin(first.name)
    write_run(space, state="running")
    return space


def opened_model_run(space: Workspace) -> str:
    """The run opened from a model file: the one the tests make current (not the newest with a model)."""
    return next(run.name for run in space.runs() if run.opened_from_file)


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` by relative path, with a digest of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()} if Path(folder).is_dir() else {}


def run_files(run_dir: Path) -> dict[str, str]:
    return tree(run_dir)


# --- the round trip -----------------------------------------------------------------------------------------
def test_a_saved_project_opens_into_an_empty_workspace_with_everything_equal(saved_space, tmp_path):
    current = opened_model_run(saved_space)
    saved = save_project(saved_space.root, tmp_path / "project.zip", current_run=current)
    assert saved.photos == 15 and saved.features == 15 and len(saved.runs) == 2
    assert any("still training" in words for words in saved.left_out)
    assert "Saved the project" in saved.words() and "15 photos" in saved.words()

    target = new_space(tmp_path, "b2")
    opened = open_project(tmp_path / "project.zip", target.root)
    assert opened.photos == 15 and opened.decisions == 2 and opened.settings
    assert sorted(opened.runs) == sorted(saved.runs)
    assert opened.current_run == target.root / current
    assert "Opened 'project.zip' (saved " in opened.words() and "2 runs" in opened.words()

    before, after = saved_space.dataset(), target.dataset()
    assert [s.to_dict() | {"source": None} for s in after.samples] == \
           [s.to_dict() | {"source": None} for s in before.samples]
    assert all(np.array_equal(before.pixels(i), after.pixels(i)) for i in range(len(before)))
    assert all(Path(s.source.path).is_relative_to(target.photos) for s in after.samples)  # its own copies
    assert target.decisions() == saved_space.decisions()
    assert target.settings() == saved_space.settings()
    assert target.check() == saved_space.check()
    assert target.pinned() == saved_space.pinned()
    assert [s.name for s in target.effective_dataset().samples] == \
           [s.name for s in saved_space.effective_dataset().samples]
    for name in saved.runs:
        assert run_files(target.root / name) == run_files(saved_space.root / name)  # charts' data, model, examples
        assert Run.open(target.root / name).has_model
    cache = target.cache()
    assert all(cache.get(s.digest, SPEC) is not None for s in after.samples)
    assert cache.get(after.samples[0].digest, BOUNDARY) is None  # fine-tuning's activations stay behind


def test_features_only_leaves_the_photos_out(saved_space, tmp_path):
    data = project_bytes(saved_space.root, features_only=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert not [name for name in archive.namelist() if name.startswith("photos/")]
        assert json.loads(archive.read("manifest.json"))["photos_left_out"] is True
    target = new_space(tmp_path, "b2")
    opened = open_project(data, target.root, name="project.zip")
    assert opened.photos == 0 and opened.photos_left_out and "left out" in opened.words()
    dataset = target.dataset()
    assert len(dataset) == 15 and all(s.source is None for s in dataset.samples)
    assert all(target.cache().get(s.digest, SPEC) is not None for s in dataset.samples)  # training needs no photo
    with pytest.raises(DatasetError, match="was not kept"):
        dataset.pixels(0)


def test_opening_replaces_the_photos_and_settings_and_keeps_other_runs(saved_space, tmp_path):
    target = new_space(tmp_path, "b2")
    own_run = write_run(target)
    target.keep_settings("Best accuracy", TrainConfig(image_size=96), chosen=False)
    target.pin(own_run.name)
    open_project(project_bytes(saved_space.root), target.root)
    assert own_run.path.is_dir()
    assert target.settings() == saved_space.settings()
    assert target.pinned() == saved_space.pinned() | {own_run.name}
    assert not list(target.root.parent.glob(".*opening*"))  # the staging folder is gone


def test_a_folder_of_runs_from_the_command_line_round_trips(tmp_path, capsys):
    runs = tmp_path / "my-runs"
    run = write_run(Workspace(runs, workspace_id="my-runs"))
    assert cli.main(["project", "save", str(runs), "--out", str(tmp_path / "p.zip")]) == 0
    assert "Saved the project" in capsys.readouterr().out
    assert cli.main(["project", "open", str(tmp_path / "p.zip"), "--into", str(tmp_path / "back")]) == 0
    assert "Opened 'p.zip'" in capsys.readouterr().out
    assert run_files(tmp_path / "back" / run.name) == run_files(run.path)


def test_nothing_to_save_says_so(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["project", "save", str(tmp_path / "empty"), "--out", str(tmp_path / "p.zip")]) == 2
    assert "nothing to save" in capsys.readouterr().err
    assert not (tmp_path / "p.zip").exists()


# --- hostile project files ------------------------------------------------------------------------------------
def rebuilt(data: bytes, *, add: dict[str, bytes] | None = None, drop=(), change=None) -> bytes:
    """The project with members added, dropped, or changed (change(name, bytes) -> bytes)."""
    members = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if name not in drop:
                content = archive.read(name)
                members[name] = change(name, content) if change else content
    members.update(add or {})
    return hostile.zip_bytes(members)


def manifest_with(**changes):
    def change(name, content):
        return json.dumps({**json.loads(content), **changes}).encode() if name == "manifest.json" else content
    return change


@pytest.fixture
def project(saved_space) -> bytes:
    return project_bytes(saved_space.root)


@pytest.fixture
def lived_in(tmp_path) -> Workspace:
    """The workspace a hostile file is opened into: its own photos, settings, run and cached features."""
    space = new_space(tmp_path, "c3")
    folder = space.new_photos_folder()
    space.save_upload(folder, "cat/a.png", hostile.png(7))
    space.keep_settings("Balanced", TrainConfig(image_size=64), chosen=True)
    space.cache().put("d" * 64, SPEC, np.ones(512, np.float32))
    write_run(space)
    return space


def refused(data: bytes, space: Workspace, tmp_path, *, limits=None) -> str:
    before = (tree(space.root), tree(space.cache().root))
    with pytest.raises(ProjectRefused) as raised:
        open_project(data, space.root, name="project.zip", limits=limits)
    assert (tree(space.root), tree(space.cache().root)) == before  # nothing changed
    assert not list(space.root.parent.glob(".*opening*"))
    message = str(raised.value)
    assert message.startswith("'project.zip' was not opened: ") and "Nothing in this workspace was changed." in message
    return message


def test_a_zip_slip_is_refused(project, lived_in, tmp_path):
    for path in ("../../evil.txt", "/etc/evil.txt", "runs/../../evil.json", "C:/evil.txt"):
        message = refused(rebuilt(project, add={path: b"{}"}), lived_in, tmp_path)
        assert repr(path) in message and "points outside" in message
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "runs" / "evil.json").exists()


def test_a_zip_bomb_is_refused_before_it_is_unpacked(project, lived_in, tmp_path):
    bomb = rebuilt(project, add={"photos/000099.png": bytes(20 * 1024**2)})
    assert len(bomb) < len(project) + 1024**2
    message = refused(bomb, lived_in, tmp_path)
    assert "'photos/000099.png' unpacks from" in message and "zip bomb" in message


def test_a_model_with_a_lambda_layer_inside_a_run_is_refused(project, saved_space, lived_in, tmp_path):
    run = saved_space.runs()[-1].name
    message = refused(rebuilt(project, add={f"runs/{run}/model.keras": stock_keras_bytes("Lambda")}), lived_in,
                      tmp_path)
    assert "contains a Lambda layer" in message and f"runs/{run}/model.keras" in message


def test_a_newer_version_a_wrong_format_or_no_manifest_is_refused(project, lived_in, tmp_path):
    message = refused(rebuilt(project, change=manifest_with(version=VERSION + 1)), lived_in, tmp_path)
    assert "newer Quasar Nexus" in message and "Update Quasar Nexus" in message
    assert "another format" in refused(rebuilt(project, change=manifest_with(format="other")), lived_in, tmp_path)
    assert "no format version" in refused(rebuilt(project, change=manifest_with(version="1")), lived_in, tmp_path)
    message = refused(rebuilt(project, drop=("manifest.json",)), lived_in, tmp_path)
    assert "not a Quasar Nexus project file (it has no manifest.json inside)" in message
    assert "not a zip file" in refused(b"PK\x03\x04 not really a zip", lived_in, tmp_path)
    assert FORMAT == "quasar-nexus-project"


def test_nested_zips_pickles_strangers_and_damage_are_refused(project, saved_space, lived_in, tmp_path):
    run = saved_space.runs()[-1].name
    assert "another zip" in refused(rebuilt(project, add={"photos/000099.zip": hostile.zip_bytes({"a": b"1"})}),
                                    lived_in, tmp_path)
    pickled = io.BytesIO()
    np.savez(pickled, kernel=np.array([{"a": 1}], dtype=object))
    message = refused(rebuilt(project, add={f"runs/{run}/{FILES.HEAD}": pickled.getvalue()}), lived_in, tmp_path)
    assert "Python objects" in message
    assert "never holds" in refused(rebuilt(project, add={"runs/x/run.py": b"print()"}), lived_in, tmp_path)
    assert "not a picture" in refused(rebuilt(project, add={"photos/000099.png": b"hello"}), lived_in, tmp_path)
    huge = rebuilt(project, add={"photos/000099.png": hostile.huge_png(10_000, 10_000)})
    assert "megapixels" in refused(huge, lived_in, tmp_path)
    photo = next(name for name in zipfile.ZipFile(io.BytesIO(project)).namelist() if name.startswith("photos/"))
    assert "which it does not hold" in refused(rebuilt(project, drop=(photo,)), lived_in, tmp_path)
    damaged = rebuilt(project, change=lambda name, content: b"{" if name.endswith(FILES.CONFIG) else content)
    assert "damaged" in refused(damaged, lived_in, tmp_path)


def test_a_project_over_the_limits_is_refused(project, lived_in, tmp_path):
    from quasar_core.data import Limits

    assert "upload limit" in refused(project, lived_in, tmp_path, limits=Limits(max_upload_bytes=1000))
    assert "QUASAR_MAX_EXTRACTED_MB" in refused(project, lived_in, tmp_path, limits=Limits(max_extracted_bytes=1000))
    assert "QUASAR_MAX_IMAGES" in refused(project, lived_in, tmp_path, limits=Limits(max_images=3))


def test_the_command_line_prints_a_refusal_in_one_line(project, tmp_path, capsys):
    (tmp_path / "evil.zip").write_bytes(rebuilt(project, add={"../evil.txt": b"x"}))
    assert cli.main(["project", "open", str(tmp_path / "evil.zip"), "--into", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'evil.zip' was not opened") and "\n" not in err.strip()
    assert not (tmp_path / "w").exists()
    with pytest.raises(QuasarError, match="does not exist"):
        open_project(tmp_path / "missing.zip", tmp_path / "w")
