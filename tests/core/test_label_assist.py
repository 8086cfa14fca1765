"""Label assist (quasar_core.label_assist): the strategies, the confident band, the estimator, photos to label
(data loading and the workspace's decisions), `quasar suggest`, and what the model card says.

Engine tests run on synthetic features (Gaussian blobs standing in for VGG16's pooled features); the run and
CLI tests on the 24 shapes of tests/conftest.py from random weights at 32 px.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from quasar_core.label_assist import (ANSWERS, DEFAULT_COUNT, LabelAssistant, Suggestions, confident_band,
                                      feature_view, labelling_round, margins, select, suggest_for_run)
from quasar_core.label_assist.band import neighbours, smoothing_k
from quasar_core.label_assist.strategy import STRATEGIES


def blobs(per_class=40, classes=3, dim=64, spread=0.6, seed=0):
    """Non-negative features in well-separated clusters (like pooled ReLU activations)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 3, (classes, dim))
    y = np.repeat(np.arange(classes), per_class)
    x = np.abs(centres[y] + rng.normal(0, spread, (len(y), dim))).astype(np.float32)
    return x, y


# --- strategies -----------------------------------------------------------------------------------
def test_margin_picks_the_photos_the_model_hesitates_over():
    p = np.array([[0.9, 0.1], [0.55, 0.45], [0.7, 0.3], [0.51, 0.49]])
    assert np.allclose(margins(p), [0.8, 0.1, 0.4, 0.02])
    chosen, reasons = select(p, feature_view(np.eye(4)), 2, strategy="margin")
    assert chosen == [3, 1] and reasons == ["uncertain", "uncertain"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_picks_count_distinct_eligible_photos(strategy):
    x, _ = blobs(per_class=30)
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(3), len(x))
    eligible = np.arange(len(x)) % 3 != 0
    chosen, reasons = select(p, feature_view(x), 10, strategy=strategy, eligible=eligible, seed=3,
                             labelled_view=feature_view(x[:5]))
    assert len(chosen) == len(set(chosen)) == 10
    assert all(eligible[i] for i in chosen)
    assert set(reasons) <= {"uncertain", "diverse"}
    assert select(p, feature_view(x), 10, strategy=strategy, eligible=eligible, seed=3,
                  labelled_view=feature_view(x[:5]))[0] == chosen  # seeded: the same batch again


def test_the_default_strategy_does_not_ask_about_twenty_near_copies():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (200, 32)).astype(np.float32)
    x[:30] = x[0] + rng.normal(0, 1e-3, (30, 32))  # 30 near-copies, the most uncertain of all
    p = np.tile([0.9, 0.1], (200, 1))
    p[:30] = [0.5, 0.5]
    p[30:100] = [0.6, 0.4]
    margin_pick, _ = select(p, feature_view(x), 20, strategy="margin")
    diverse_pick, reasons = select(p, feature_view(x), 20)  # margin-kmeans
    assert sum(i < 30 for i in margin_pick) == 20
    assert sum(i < 30 for i in diverse_pick) <= 3
    assert "diverse" in reasons


def test_bad_arguments_are_refused_with_a_clear_message():
    p, view = np.full((4, 2), 0.5), np.ones((4, 3))
    with pytest.raises(ValueError, match="strategy must be one of"):
        select(p, view, 2, strategy="greedy")
    with pytest.raises(ValueError, match="count must be a whole number"):
        select(p, view, 0)
    with pytest.raises(ValueError, match="one row per photo"):
        select(p, view[:3], 2)
    assert select(p, view, 2, eligible=np.zeros(4, bool)) == ([], [])


# --- the confident band ---------------------------------------------------------------------------
def test_the_band_is_the_surest_photos_whose_expected_mistakes_stay_under_the_target():
    confidence = np.array([0.999, 0.99, 0.98, 0.97, 0.95, 0.9, 0.6])
    familiar = np.array([True, True, True, True, True, False, True])
    mask, band = confident_band(confidence, familiar, right=0.97, oof_confidence=[0.99, 0.96, 0.5],
                                oof_correct=[True, False, True])
    # expected mistakes of the surest first: 0.1 %, 0.55 %, 1.03 %, 1.53 %, 2.22 %, (not familiar), 8.5 %
    assert mask.tolist() == [True, True, True, True, True, False, False]
    assert band.threshold == pytest.approx(0.95)
    assert band.stated_error == pytest.approx((0.001 + 0.01 + 0.02 + 0.03 + 0.05) / 5)
    assert (band.checked_on, band.wrong_there) == (2, 1)  # out of fold at or above 0.95: one right, one wrong
    assert band.words() == "about 2 in 100 of these may be wrong"


def test_no_band_when_no_photo_is_sure_enough():
    mask, band = confident_band([0.9, 0.8], [True, True], right=0.97)
    assert band is None and not mask.any()
    assert confident_band([0.99], [False], right=0.97)[1] is None  # a stranger is never in it


def test_the_band_is_never_stated_as_never_wrong():
    _, band = confident_band(np.full(10, 0.9999), np.ones(10, bool), right=0.97)
    assert band.stated_error < 0.001 and band.words() == "about 1 in 100 of these may be wrong"


# --- the estimator -------------------------------------------------------------------------------
def test_the_assistant_is_a_scikit_learn_style_estimator():
    assistant = LabelAssistant(count=5, strategy="margin", right=0.95, seed=2)
    assert assistant.params() == {"count": 5, "strategy": "margin", "right": 0.95, "pool_factor": 5,
                                  "familiarity": True, "seed": 2}
    assert not [k for k in vars(assistant) if k.endswith("_")]
    with pytest.raises(ValueError, match="not fitted"):
        assistant.suggest(np.ones((2, 4)))
    x, y = blobs()
    assert assistant.fit(x, y) is assistant
    assert {"head_", "fold_heads_", "oof_confidence_", "oof_correct_", "accuracy_", "familiarity_"} <= \
        set(vars(assistant))
    with pytest.raises(ValueError, match="strategy must be one of"):
        LabelAssistant(strategy="best").fit(x, y)
    with pytest.raises(ValueError, match="at least 2 labelled photos"):
        LabelAssistant().fit(x[:3], y[:3])


def test_suggestions_for_unlabelled_photos():
    x, y = blobs(per_class=60)
    labelled = np.concatenate([np.flatnonzero(y == c)[:10] for c in range(3)])
    pool = np.setdiff1d(np.arange(len(y)), labelled)
    assistant = LabelAssistant(seed=0).fit(x[labelled], y[labelled], tested=np.arange(len(labelled)) % 2 == 0)
    assert assistant.n_tested_ == 15 and assistant.accuracy_ > 0.9
    found = assistant.suggest(x[pool], files=[f"p{i}.jpg" for i in pool], labels=["ant", "bee", "wasp"])
    assert isinstance(found, Suggestions) and found.pool_size == len(pool)
    confident = {s.file for s in found.confident}
    assert len(found.next) == DEFAULT_COUNT  # asked about even when nearly every photo is sure
    assert sum(found.answers.values()) == len(pool) and set(found.answers) == set(ANSWERS)
    assert confident and not confident & {s.file for s in found.next}  # a sure photo is not asked about
    assert all(s.answer == "familiar" and s.confidence >= found.band.threshold for s in found.confident)
    truth = {f"p{i}.jpg": ["ant", "bee", "wasp"][y[i]] for i in pool}
    assert np.mean([truth[s.file] == s.suggested for s in found.confident]) >= 0.97
    data = json.loads(json.dumps(found.to_dict()))
    assert set(data["next"][0]) == {"file", "suggested", "confidence", "familiarity", "answer", "reason"}
    assert data["confident"]["coverage"] == pytest.approx(found.coverage)
    assert set(data["confident"]) >= {"photos", "threshold", "stated_error"}


def test_strangers_are_never_in_the_confident_band():
    x, y = blobs(per_class=50)
    assistant = LabelAssistant().fit(x, y)
    strangers = np.abs(np.random.default_rng(9).normal(8, 1, (30, x.shape[1]))).astype(np.float32)
    found = assistant.suggest(np.concatenate([x[:30], strangers]))
    assert found.answers["unknown"] >= 25
    assert not {s.position for s in found.confident} & set(range(30, 60))


def test_a_labelling_round_measures_the_model_and_suggests():
    x, y = blobs(per_class=40)
    _, found, row = labelling_round(x[::2], y[::2], labels=["a", "b", "c"], tested=np.ones(60, bool),
                                    pool_features=x[1::2], pool_files=[f"f{i}" for i in range(60)], count=7)
    assert len(found.next) <= 7 and row["labelled"] == 60 and row["tested"] == 60
    assert row["low"] <= row["accuracy"] <= row["high"]


def test_look_alikes_are_found_in_bounded_chunks():
    view = feature_view(np.abs(np.random.default_rng(0).normal(size=(2500, 8))))
    near = neighbours(view, view, 5)
    assert near.shape == (2500, 5)
    assert all(i in row for i, row in enumerate(near))  # a photo is its own nearest
    exact = np.argsort(-(view[:300] @ view.T), axis=1)[:, :5]
    assert all(set(a) == set(b) for a, b in zip(near[:300], exact))  # block by block, the same as all at once
    half = neighbours(view[:300].astype(np.float16), view.astype(np.float16), 5)
    assert np.mean([len(set(a) & set(b)) for a, b in zip(half, exact)]) > 4.5  # float16 storage: nearly the same
    assert smoothing_k(30) == 1 and smoothing_k(500) == 10 and smoothing_k(5000) == 20


def test_averaging_over_look_alikes_keeps_the_band_right():
    x, y = blobs(per_class=300, spread=1.6, seed=4)  # overlapping classes: many pre-labels wrong
    labelled = np.concatenate([np.flatnonzero(y == c)[:15] for c in range(3)])
    pool = np.setdiff1d(np.arange(len(y)), labelled)
    found = LabelAssistant(seed=0).fit(x[labelled], y[labelled]).suggest(x[pool])
    assert 0.1 < found.coverage < 1
    right = np.mean([int(s.suggested) == y[pool][s.position] for s in found.confident])
    assert right >= 1 - found.band.stated_error - 0.01


# --- photos to label: loading ---------------------------------------------------------------------
def test_a_folder_or_zip_of_photos_without_class_folders(tmp_path, shapes):
    from quasar_core.data import UNLABELLED, load_unlabelled

    folder = tmp_path / "later"
    (folder / "trip").mkdir(parents=True)
    for n in range(3):
        shapes.image("circle", 20 + n).save(folder / f"a{n}.png")
        shapes.image("square", 20 + n).save(folder / "trip" / f"b{n}.png")
    shapes.image("square", 20).save(folder / "copy.png")  # the same picture twice: used once
    (folder / "notes.txt").write_text("not a photo")
    photos = load_unlabelled(folder)
    assert sorted(s.name for s in photos.samples) == ["a0.png", "a1.png", "a2.png", "copy.png", "trip/b1.png",
                                                      "trip/b2.png"]
    assert photos.labels == [] and {s.label for s in photos.samples} == {UNLABELLED}
    assert any(p.file == "notes.txt" and p.kind == "skipped" for p in photos.report.problems)
    assert any(p.kind == "duplicate" for p in photos.report.problems)
    zipped = shapes.zip_folder(folder, tmp_path / "later.zip")
    assert len(load_unlabelled(zipped)) == 6


def test_photos_to_label_are_checked_like_any_upload(tmp_path):
    from quasar_core.data import DatasetRejected, load_unlabelled, load_zip
    from quasar_core.errors import DatasetError

    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.png", b"x")
        zf.writestr("inner.zip", b"PK")
        zf.writestr("broken.jpg", b"not a picture")
    with pytest.raises(DatasetRejected, match="No usable photos were found in bad.zip") as refused:
        load_unlabelled(archive)
    reasons = {p.file: p.reason for p in refused.value.report.problems}
    assert "unsafe path" in reasons["../evil.png"] and "zip inside the zip" in reasons["inner.zip"]
    assert "broken.jpg" in reasons
    with pytest.raises(DatasetError, match="does not exist"):
        load_unlabelled(tmp_path / "missing")
    with pytest.raises(DatasetRejected):
        load_zip(archive, unlabelled=True)


def test_an_unlabelled_folder_beside_the_classes_is_kept_apart(tmp_path, shapes_folder, shapes):
    import shutil

    from quasar_core.data import load_dataset

    folder = tmp_path / "data"
    shutil.copytree(shapes_folder, folder)
    (folder / "Unlabelled").mkdir()
    for n in range(4):
        shapes.image("triangle", 30 + n).save(folder / "Unlabelled" / f"t{n}.png")
    shutil.copy(folder / "circle" / "circle_00.png", folder / "Unlabelled" / "already.png")
    for source in (folder, shapes.zip_folder(folder, tmp_path / "data.zip")):
        dataset = load_dataset(source)
        assert dataset.labels == ["circle", "square", "triangle"] and len(dataset) == 24
        assert sorted(s.name.rsplit("/", 1)[-1] for s in dataset.unlabelled) == ["t0.png", "t1.png", "t2.png", "t3.png"]
        assert any("which is labelled" in p.reason for p in dataset.report.problems)
        assert "Unlabelled" not in dataset.report.counts


# --- photos to label: the workspace ---------------------------------------------------------------
@pytest.fixture
def labelled_space(tmp_path, shapes):
    """A workspace with 5 shapes a class labelled and 6 photos to label (2 of each shape), both uploaded."""
    from quasar_core.data import load_folder, load_unlabelled
    from quasar_core.workspace import Workspace

    space = Workspace(tmp_path / "runs" / "ws-1", workspace_id="ws-1")
    folder = space.new_photos_folder()
    for label in shapes.classes:
        for number in range(5):
            space.save_upload(folder, f"{label}/{label}_{number}.png", shapes.png(shapes.image(label, number)))
    space.keep_dataset(load_folder(folder), photos_folder=folder)
    later = space.new_photos_folder()
    for label in shapes.classes:
        for number in (40, 41):
            space.save_upload(later, f"{label[0]}{number}.png", shapes.png(shapes.image(label, number)))
    assert space.keep_unlabelled(load_unlabelled(later)) == 6
    return space


def test_labels_join_the_photos_the_next_training_learns_from_and_can_be_undone(labelled_space):
    from quasar_core.workspace import Decision

    space = labelled_space
    uploaded = {p: p.read_bytes() for p in space.photos.rglob("*") if p.is_file()}
    assert len(space.unlabelled()) == 6 and len(space.dataset()) == 15  # kept apart from the classes
    space.label(Decision("c40.png", "label", "circle", how="hand", round=1))
    space.label(Decision("s40.png", "label", "circle", how="hand", round=1))
    space.label(Decision("s40.png", "label", "square", how="hand", round=1))  # changed: the last word counts
    space.label_many([Decision("t40.png", "label", "triangle", how="bulk", round=1),
                      Decision("t41.png", "label", "triangle", how="bulk", round=1)])
    space.label(Decision("c41.png", "none", round=1))
    space.label(Decision("s41.png", "skip", round=1))
    effective = space.effective_dataset()
    assert effective.report.counts == {"circle": 6, "square": 6, "triangle": 7}
    assert {s.name: s.label for s in effective.samples if s.name[1:3] == "40" or s.name == "t41.png"} == {
        "c40.png": "circle", "s40.png": "square", "t40.png": "triangle", "t41.png": "triangle"}
    assert [d.words() for d in space.labelling()] == [
        "labelled circle", "labelled square", "labelled triangle (a pre-label accepted in bulk)",
        "labelled triangle (a pre-label accepted in bulk)", "not any of these classes", "skipped for now"]
    space.undo_label("t41.png")
    assert space.effective_dataset().report.counts["triangle"] == 6
    assert {p: p.read_bytes() for p in space.photos.rglob("*") if p.is_file()} == uploaded  # files never changed
    summary = space.check_summary()
    assert summary == {"labelling": {"by_hand": 2, "bulk": 1, "rounds": [{"round": 1, "by_hand": 2, "bulk": 1}]}}
    with pytest.raises(ValueError, match="labelling decision"):
        space.label(Decision("c41.png", "move", "circle"))


def test_photos_to_label_survive_a_restart_and_a_new_upload_of_labelled_photos(labelled_space, shapes):
    from quasar_core.data import load_folder
    from quasar_core.workspace import Decision, Workspace

    space = labelled_space
    space.label(Decision("c40.png", "label", "circle", how="hand", round=1))
    space.keep_label_round({"round": 0, "labelled": 15, "accuracy": 0.8, "low": 0.6, "high": 0.9, "tested": 15})
    again = Workspace(space.root, workspace_id="ws-1")  # a restart: everything from disk
    assert len(again.unlabelled()) == 6 and len(again.effective_dataset()) == 16
    assert again.label_rounds()[0]["accuracy"] == 0.8
    assert [d.to_dict() for d in again.decisions()] == []  # the photo check's decisions untouched
    folder = again.new_photos_folder()
    for label in shapes.classes:
        for number in range(6):
            again.save_upload(folder, f"{label}/{label}_{number}.png", shapes.png(shapes.image(label, number)))
    again.keep_dataset(load_folder(folder), photos_folder=folder)
    assert len(again.dataset()) == 18 and len(again.unlabelled()) == 6  # the photos to label stay (files too)
    assert again.labelling() == [] and again.label_rounds() == []  # decisions about the old photos go
    again.discard_unlabelled()
    assert again.unlabelled() is None and len(again.dataset()) == 18


def test_a_damaged_labelling_file_is_read_as_no_decision(labelled_space):
    (labelled_space.folder / "labelling.json").write_text('[{"file": "a", "action": "label", "weird": 1}, 3]')
    assert labelled_space.labelling() == []
    (labelled_space.folder / "label_rounds.json").write_text('{"round": 1}')
    assert labelled_space.label_rounds() == []


def test_photos_to_label_and_their_decisions_travel_in_a_project_file(labelled_space, tmp_path):
    from quasar_core.project import open_project, save_project
    from quasar_core.workspace import Decision, Workspace

    labelled_space.label(Decision("c40.png", "label", "circle", how="hand", round=1))
    labelled_space.keep_label_round({"round": 0, "labelled": 15, "accuracy": 0.8, "low": 0.6, "high": 0.9,
                                     "tested": 15})
    saved = save_project(labelled_space.root, tmp_path / "project.zip")
    assert saved.photos == 21
    target = tmp_path / "runs" / "ws-2"
    open_project(tmp_path / "project.zip", target, cache_root=tmp_path / "cache")
    opened = Workspace(target, workspace_id="ws-2")
    assert len(opened.unlabelled()) == 6 and len(opened.effective_dataset()) == 16
    assert opened.labelling()[0].to == "circle" and opened.label_rounds()[0]["round"] == 0


# --- quasar suggest and a trained run -------------------------------------------------------------
@pytest.fixture
def photos_to_label(tmp_path, shapes):
    folder = tmp_path / "to-label"
    folder.mkdir()
    for label in shapes.classes:
        for number in range(20, 26):
            shapes.image(label, number).save(folder / f"{label[0]}{number}.png")
    return folder


def test_quasar_suggest_lists_the_next_photos_and_the_confident_band(trained_run, photos_to_label, tmp_path,
                                                                     monkeypatch, capsys):
    from quasar_core.cli import main

    monkeypatch.setenv("QUASAR_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["suggest", str(trained_run.path), str(photos_to_label), "--count", "5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["next"]) <= 5 and data["pool"] == 18
    for item in data["next"] + data["confident"]["photos"]:
        assert set(item) == {"file", "suggested", "confidence", "familiarity", "answer", "reason"}
        assert item["suggested"] in ("circle", "square", "triangle") and 0 <= item["confidence"] <= 1
        assert item["answer"] in ANSWERS and item["reason"] in ("uncertain", "diverse", "confident")
    assert {i["file"] for i in data["next"]}.isdisjoint(i["file"] for i in data["confident"]["photos"])
    assert main(["suggest", str(trained_run.path), str(photos_to_label), "--count", "3"]) == 0
    words = capsys.readouterr().out
    assert "Label these next" in words and "100 %" not in words


def test_quasar_suggest_refuses_bad_input_in_one_line(trained_run, photos_to_label, tmp_path, monkeypatch, capsys):
    from quasar_core.cli import main

    monkeypatch.setenv("QUASAR_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["suggest", str(trained_run.path), str(photos_to_label), "--count", "0"]) == 2
    assert "--count must be a whole number" in capsys.readouterr().err
    assert main(["suggest", str(trained_run.path), str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no photos")
    assert main(["suggest", str(trained_run.path), str(empty)]) == 2
    assert "No usable photos were found in" in capsys.readouterr().err


def test_suggestions_of_a_run_reuse_its_cached_features(trained_run, photos_to_label, tmp_path, base_loader):
    from quasar_core.data import load_unlabelled
    from quasar_core.features.cache import FeatureCache

    cache = FeatureCache(tmp_path / "cache")
    photos = load_unlabelled(photos_to_label)
    first = suggest_for_run(trained_run, photos, cache=cache, count=4, base_loader=base_loader)
    misses = cache.misses
    again = suggest_for_run(trained_run, photos, cache=cache, count=4, base_loader=lambda: pytest.fail("VGG16 ran"))
    assert cache.misses == misses  # every feature read back, none computed
    assert [s.file for s in again.next] == [s.file for s in first.next]


# --- the model card and Past runs -----------------------------------------------------------------
def test_the_model_card_says_how_the_photos_were_labelled(trained_run, tmp_path):
    import shutil

    from quasar_core.runs.folder import FILES, Run, write_json
    from quasar_core.runs.report import labelling_words, model_card_html

    assert labelling_words(trained_run) is None
    folder = Path(shutil.copytree(trained_run.path, tmp_path / "run"))
    write_json(folder / FILES.DOCTOR, {"labelling": {"by_hand": 38, "bulk": 120, "rounds": [
        {"round": 1, "by_hand": 20, "bulk": 120}, {"round": 2, "by_hand": 18, "bulk": 0}]}})
    run = Run.open(folder)
    assert labelling_words(run) == ("38 photos labelled by hand and 120 pre-labels accepted in bulk, in 2 rounds of "
                                    "label assist (round 1: 20 by hand and 120 in bulk; round 2: 18 by hand)")
    card = model_card_html(folder, with_grad_cam=False)
    assert "Photos labelled with the model's help" in card and "38 photos labelled by hand" in card
    assert "What the photo check found" not in card  # no check ran: no empty findings
