"""A user's workspace on disk (quasar_core.workspace): photos kept as uploaded, the checked dataset and the settings
read back after a restart, the photo check's decisions applied without touching a file, runs within a budget, and
one feature cache per workspace. No training here: run folders are written by hand."""

from __future__ import annotations

import os
import time

import pytest

from quasar_core.config import TrainConfig
from quasar_core.data import Limits, load_folder
from quasar_core.errors import QuasarError
from quasar_core.runs.folder import FILES, write_json
from quasar_core.workspace import (DEFAULT_RUNS_BUDGET_MB, RUNS_BUDGET_ENV, WORKSPACE_CACHE_ENV, Decision,
                                   Workspace)

MB = 1024**2


@pytest.fixture(autouse=True)
def default_budgets(monkeypatch):
    for name in (RUNS_BUDGET_ENV, WORKSPACE_CACHE_ENV, "QUASAR_CACHE_DIR", "QUASAR_MAX_IMAGES"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def space(tmp_path):
    return Workspace(tmp_path / "runs" / "ws-1", workspace_id="ws-1")


def upload_shapes(space, shapes, per_class=5, classes=("circle", "square", "triangle")):
    """The shapes uploaded into a new photos folder, as the upload page saves them."""
    folder = space.new_photos_folder()
    for label in classes:
        for number in range(per_class):
            space.save_upload(folder, f"{label}/{label}_{number}.png", shapes.png(shapes.image(label, number)))
    return folder


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- photos and the dataset


def test_uploads_are_kept_as_uploaded_under_safe_names(space):
    folder = space.new_photos_folder()
    assert folder.parent == space.photos and folder.is_dir()
    kept = space.save_upload(folder, "cats/a.png", b"png bytes")
    assert kept == folder / "cats" / "a.png" and kept.read_bytes() == b"png bytes"
    for hostile, expected in (("../../escape.png", folder / "escape.png"), ("/etc/passwd", folder / "etc" / "passwd"),
                              ("dogs\\b.png", folder / "dogs" / "b.png"), ("./../", folder / "upload")):
        assert space.save_upload(folder, hostile, b"x") == expected
    assert all(p.resolve().is_relative_to(folder.resolve()) for p in folder.rglob("*"))
    assert space.new_photos_folder() != folder  # a new upload never mixes with the last one


def test_the_dataset_manifest_round_trips_and_needs_its_photos(space, shapes):
    folder = upload_shapes(space, shapes)
    dataset = load_folder(folder, limits=Limits(), source="shapes.zip")
    older = upload_shapes(space, shapes, per_class=1)  # an earlier upload, no longer used once these are kept
    space.keep_dataset(dataset, photos_folder=folder)
    assert not older.exists() and folder.is_dir()
    again = Workspace(space.root, workspace_id=space.id).dataset()  # after a restart
    assert again is not None
    assert again.labels == dataset.labels == ["circle", "square", "triangle"]
    assert [s.to_dict() for s in again.samples] == [s.to_dict() for s in dataset.samples]
    assert again.report.to_dict() == dataset.report.to_dict()
    assert (again.pixels(0) == dataset.pixels(0)).all()
    space.discard_photos()
    assert space.dataset() is None and not space.photos.exists()


def test_a_dataset_whose_photos_are_gone_or_whose_manifest_is_damaged_is_none(space, shapes):
    import shutil

    folder = upload_shapes(space, shapes)
    space.keep_dataset(load_folder(folder, limits=Limits()), photos_folder=folder)
    shutil.rmtree(folder)
    assert space.dataset() is None
    (space.folder / "dataset.json").write_text('{"samples": [{"name": 1}]}')
    assert space.dataset() is None
    assert Workspace(space.root.parent / "new", workspace_id="new").dataset() is None


# --------------------------------------------------------------------------- the photo check's decisions


@pytest.fixture
def kept(space, shapes):
    folder = upload_shapes(space, shapes)
    space.keep_dataset(load_folder(folder, limits=Limits()), photos_folder=folder)
    return folder


def test_decisions_move_remove_and_keep_photos_without_touching_a_file(space, kept):
    before = snapshot(kept)
    space.decide(Decision("circle/circle_0.png", "move", to="square"))
    space.decide(Decision("triangle/triangle_1.png", "remove"))
    space.decide(Decision("square/square_2.png", "keep"))
    effective = space.effective_dataset()
    by_name = {s.name: s.label for s in effective.samples}
    assert by_name["circle/circle_0.png"] == "square"
    assert "triangle/triangle_1.png" not in by_name
    assert by_name["square/square_2.png"] == "square"
    assert len(effective) == 14 and effective.report.counts == {"circle": 4, "square": 6, "triangle": 4}
    assert space.dataset().report.counts == {"circle": 5, "square": 5, "triangle": 5}  # the upload as it was
    assert snapshot(kept) == before
    assert [d.words() for d in space.decisions()] == ["moved to square", "left out", "kept as it is"]


def test_a_new_decision_replaces_the_old_one_and_undo_restores_the_photo(space, kept):
    space.decide(Decision("circle/circle_0.png", "remove"))
    space.decide(Decision("circle/circle_0.png", "move", to="triangle"))
    assert space.decisions() == [Decision("circle/circle_0.png", "move", to="triangle")]
    space.undo("circle/circle_0.png")
    assert space.decisions() == []
    assert space.effective_dataset().report.counts == {"circle": 5, "square": 5, "triangle": 5}
    space.decide(Decision("circle/circle_1.png", "remove"))
    space.clear_decisions()
    assert space.decisions() == [] and len(space.effective_dataset()) == 15


def test_decisions_that_would_leave_fewer_than_two_classes_are_refused(space, kept):
    for label in ("square", "triangle"):
        for number in range(5):
            space.decide(Decision(f"{label}/{label}_{number}.png", "move", to="circle"))
    with pytest.raises(QuasarError, match="fewer than 2 classes"):
        space.effective_dataset()
    space.undo("square/square_0.png")
    assert space.effective_dataset().labels == ["circle", "square"]


def test_keeping_new_photos_clears_the_decisions_and_the_check(space, shapes, kept):
    space.decide(Decision("circle/circle_0.png", "remove"))
    space.keep_check({"report": {"label_issues": []}})
    assert space.check() == {"report": {"label_issues": []}}
    folder = upload_shapes(space, shapes, per_class=5, classes=("circle", "square"))
    space.keep_dataset(load_folder(folder, limits=Limits()), photos_folder=folder)
    assert space.decisions() == [] and space.check() is None and not kept.exists()


# --------------------------------------------------------------------------- settings


def test_settings_round_trip(space):
    assert space.settings() is None
    config = TrainConfig(weights="none", image_size=64, augment=True, fine_tune_epochs=7)
    space.keep_settings("Balanced", config, chosen=True)
    assert Workspace(space.root, workspace_id=space.id).settings() == ("Balanced", config, True)
    write_json(space.folder / "settings.json", {"preset": "Quick look", "config": {"no_such_setting": 1}})
    assert space.settings() is None  # damaged or from another version: the defaults, not an error


# --------------------------------------------------------------------------- runs within a budget


def fake_run(space, name, *, started, megabytes=1.0, state="done", pid=None):
    path = space.root / name
    path.mkdir(parents=True)
    write_json(path / FILES.CONFIG, TrainConfig(weights="none").to_dict())
    write_json(path / FILES.STATUS, {"state": state, "started": started, "pid": pid,
                                     "host": os.uname().nodename, "heartbeat": time.time()})
    (path / FILES.HEAD).write_bytes(b"\0" * int(megabytes * MB))
    return path


def test_the_budget_deletes_the_oldest_unpinned_runs_only_and_records_them(space, monkeypatch):
    made = {name: fake_run(space, name, started=started)
            for name, started in (("a-oldest", 1.0), ("b-pinned", 2.0), ("c", 3.0), ("d", 4.0), ("e-newest", 5.0))}
    space.pin("b-pinned")
    monkeypatch.setenv(RUNS_BUDGET_ENV, "3.5")  # room for three of the five 1 MB runs
    deleted = space.enforce_budget()
    assert deleted == ["a-oldest", "c"]
    assert {run.name for run in space.runs()} == {"b-pinned", "d", "e-newest"}
    assert not made["a-oldest"].exists() and made["b-pinned"].exists()
    assert space.recently_deleted() == ["a-oldest", "c"]
    assert space.enforce_budget() == []  # within the budget now: nothing more goes
    assert space.recently_deleted() == ["a-oldest", "c"]  # the last deletion is still what is reported


def test_the_budget_spares_running_runs_kept_runs_and_a_budget_it_cannot_reach(space, monkeypatch):
    fake_run(space, "running", started=1.0, state="running", pid=os.getpid())
    fake_run(space, "kept", started=2.0)
    fake_run(space, "pinned", started=3.0)
    fake_run(space, "old", started=4.0)
    space.pin("pinned")
    monkeypatch.setenv(RUNS_BUDGET_ENV, "0.5")
    assert space.enforce_budget(keep={"kept"}) == ["old"]
    assert {run.name for run in space.runs()} == {"running", "kept", "pinned"}


def test_pins_and_unpins(space):
    space.pin("x")
    space.pin("y")
    space.pin("x", False)
    assert space.pinned() == {"y"}


def test_the_default_budget_keeps_small_runs(space):
    fake_run(space, "small", started=1.0, megabytes=0.1)
    assert DEFAULT_RUNS_BUDGET_MB >= 100 and space.enforce_budget() == []


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_a_bad_budget_says_what_is_expected(space, monkeypatch, value):
    monkeypatch.setenv(RUNS_BUDGET_ENV, value)
    with pytest.raises(ValueError, match=f"{RUNS_BUDGET_ENV}='{value}' is not valid: expected a number of megabytes"):
        space.enforce_budget()


# --------------------------------------------------------------------------- one feature cache per workspace


def test_each_workspace_has_its_own_feature_cache_beside_the_runs(tmp_path, monkeypatch):
    runs_root = tmp_path / "runs"
    first, second = (Workspace(runs_root / wid, workspace_id=wid) for wid in ("ws-1", "ws-2"))
    assert first.cache().root == (tmp_path / "features" / "ws-1").resolve()
    assert second.cache().root == (tmp_path / "features" / "ws-2").resolve()
    assert first.cache().max_bytes == 1024 * MB
    monkeypatch.setenv(WORKSPACE_CACHE_ENV, "5")
    assert first.cache().max_bytes == 5 * MB
    monkeypatch.setenv("QUASAR_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert first.cache().root == tmp_path / "elsewhere" / "ws-1"  # the server's cache folder, still per workspace
    assert first.cache(runs_root=tmp_path / "other").root == tmp_path / "elsewhere" / "ws-1"


def test_the_check_summary_counts_findings_and_lists_the_changes(space, kept):
    assert space.check_summary() is None  # no check, no decision
    space.keep_check({"report": {"label_issues": [{"file": "a"}, {"file": "b"}], "near_duplicates": [],
                                 "outliers": [{"file": "c"}]}})
    name = space.dataset().samples[0].name
    space.decide(Decision(name, "remove"))
    summary = space.check_summary()
    assert summary["found"] == {"label_issues": 2, "near_duplicates": 0, "outliers": 1}
    assert summary["changes"] == [{"file": name, "words": "left out", "action": "remove"}]
