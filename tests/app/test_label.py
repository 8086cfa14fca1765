"""Label more: the model pre-labels photos to label; confirm, change, skip, "not any of these", accept the sure
ones in bulk, undo, learn from a round (the chart grows), and a reload keeps it all. Upload takes photos to label.

A real run of the sample photos (32 px) and 60 photos to label made from the sample's own, mirrored (new
pictures to the model, of its classes). The first page run reads every photo through VGG16 once.
"""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image
from tests.app.support import SAMPLE_DIR, charts_by_key, copy_run, new_app, raw_keys, readable_words, shown_text
from tests.app.test_upload import wait_for_upload

from quasar_core import sample
from quasar_core.data import load_unlabelled
from quasar_core.workspace import Workspace
from ui import nav, state, workspace

PER_CLASS = 12
BANNED = (" fold", "log loss", "hold-out", "int8", "float32", "100 %", "C = ")


def mirrored(label: str, number: int) -> bytes:
    buffer = io.BytesIO()
    Image.open(SAMPLE_DIR / label / f"{label}_{number:03d}.png").transpose(Image.FLIP_LEFT_RIGHT).save(buffer, "PNG")
    return buffer.getvalue()


def classes() -> list[str]:
    return sorted(p.name for p in SAMPLE_DIR.iterdir() if p.is_dir())


@pytest.fixture
def ready(sample_run_template, isolated_runs):
    """(workspace id, its Workspace): the sample photos labelled, a model trained on them, photos to label."""
    workspace_id = workspace.new_id()
    copy_run(sample_run_template, isolated_runs, workspace_id)
    space = Workspace(workspace.runs_root(workspace_id), workspace_id=workspace_id)
    space.keep_dataset(sample.load_sample())
    later = space.new_photos_folder()
    for label in classes():
        for number in range(PER_CLASS):
            space.save_upload(later, f"new_{label}_{number:03d}.png", mirrored(label, number))
    assert space.keep_unlabelled(load_unlabelled(later)) == PER_CLASS * len(classes())
    return workspace_id, space


def open_label_page(workspace_id):
    at = new_app({"workspace": workspace_id}).run()
    at.switch_page(nav.LABEL.path).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def links(at) -> list[str]:
    """The pages the page links to ("upload", "train"…)."""
    return [link.proto.page for link in at.get("page_link")]


def asked(at) -> list[str]:
    """The files the grid asks about, in order (their Confirm buttons or their Undo)."""
    return [b.key.removeprefix("confirm_") for b in at.button if b.key and b.key.startswith("confirm_")]


def decided(space) -> dict:
    return {d.file: d for d in space.labelling()}


def test_confirm_change_skip_none_undo_and_reload(ready):
    workspace_id, space = ready
    at = open_label_page(workspace_id)
    words = shown_text(at)
    assert "Round 1." in words and "Label these next" in readable_words(at)
    files = asked(at)
    assert 4 <= len(files) <= 20
    first, second, third, fourth = files[:4]
    suggested = at.button(key=f"confirm_{first}").label.removeprefix("Confirm «").removesuffix("»")
    assert suggested in classes()

    at.button(key=f"confirm_{first}").click().run()  # one click to confirm
    assert decided(space)[first].to == suggested and decided(space)[first].how == "hand"
    other = next(c for c in classes() if c != at.get("pills")[1].value)
    at.pills(key=f"pick_{second}").set_value(other).run()  # one click to change
    assert decided(space)[second].to == other
    at.button(key=f"skip_{third}").click().run()
    at.button(key=f"none_{fourth}").click().run()
    assert not at.exception and not at.error
    assert {f: d.action for f, d in decided(space).items()} == {first: "label", second: "label", third: "skip",
                                                                fourth: "none"}
    # the labels join the photos the next training learns from, in the session too
    names = {s.name: s.label for s in at.session_state[state.DATASET_KEY].samples}
    assert names[first] == suggested and names[second] == other and third not in names and fourth not in names
    assert "Labelled " in shown_text(at) and at.button(key=f"undo_{first}").label == "Undo"

    at.button(key=f"undo_{second}").click().run()  # undo
    assert second not in decided(space)
    assert second not in {s.name for s in at.session_state[state.DATASET_KEY].samples}
    assert f"confirm_{second}" in [b.key for b in at.button]

    again = open_label_page(workspace_id)  # a reload: a new session on the same address
    assert asked(again) == [f for f in files if f not in (first, third, fourth)]  # the same round, same photos
    assert {f: d.action for f, d in decided(space).items()} == {first: "label", third: "skip", fourth: "none"}
    assert again.session_state[state.DATASET_KEY].report.counts[suggested] == 61
    text = readable_words(again)
    assert raw_keys(text) == [] and not [w for w in BANNED if w in text.split("Strategy:")[0]]


def test_bulk_accept_undo_learn_and_the_chart_grows(ready):
    workspace_id, space = ready
    at = open_label_page(workspace_id)
    assert len(charts_by_key(at)["label_rounds"].proto.spec) > 0
    assert [r["round"] for r in space.label_rounds()] == [0]  # the starting model's point
    sure_words = shown_text(at)
    assert "The model is sure of" in sure_words and "in 100 of these may be wrong" in sure_words
    accept = at.button(key="accept_sure")
    count = int(accept.label.split()[2])
    assert count >= 5
    accept.click().run()
    bulk = [d for d in space.labelling() if d.how == "bulk"]
    assert len(bulk) == count and all(d.action == "label" and d.round == 1 for d in bulk)
    assert "You accepted every pre-label" in shown_text(at)
    at.button(key=f"undo_done_{bulk[0].file}").click().run()  # any label can be taken back from the list
    assert len([d for d in space.labelling() if d.how == "bulk"]) == count - 1
    assert at.button(key="learn").disabled is False

    at.button(key="learn").click().run()
    assert not at.exception and not at.error
    rounds = space.label_rounds()
    assert [r["round"] for r in rounds] == [0, 1] and rounds[1]["labelled"] == rounds[0]["labelled"] + count - 1
    assert rounds[1]["bulk"] == count - 1 and 0 <= rounds[1]["low"] <= rounds[1]["accuracy"] <= rounds[1]["high"]
    assert "Round 1 learned" in shown_text(at) and "Round 2." in shown_text(at)
    figure = charts_by_key(at)["label_rounds"].proto.spec
    assert '"start"' in figure and '"round 1"' in figure
    assert at.button(key="learn").disabled  # nothing new to learn from yet
    summary = space.check_summary()["labelling"]  # what the next training's model card will say
    assert summary["bulk"] == count - 1 and summary["rounds"] == [{"round": 1, "by_hand": 0, "bulk": count - 1}]


def test_without_photos_to_label_or_a_model_the_page_says_what_to_do(isolated_runs):
    at = new_app().run()
    at.switch_page(nav.LABEL.path).run()
    assert not at.exception
    assert "There are no photos to label yet" in shown_text(at)
    assert "upload" in links(at)
    space = Workspace(workspace.runs_root(at.query_params["workspace"]), workspace_id=at.query_params["workspace"])
    later = space.new_photos_folder()
    space.save_upload(later, "a.png", mirrored("Bag", 0))
    space.keep_unlabelled(load_unlabelled(later))
    at.run()
    assert "Label assist starts from a model trained on your labelled photos" in shown_text(at)
    assert "train" in links(at)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_upload_takes_photos_to_label_checked_like_any_upload(isolated_runs):
    at = new_app().run()
    at.switch_page(nav.UPLOAD.path).run()
    space = Workspace(workspace.runs_root(at.query_params["workspace"]), workspace_id=at.query_params["workspace"])
    archive = zip_bytes({"trip/a.png": mirrored("Bag", 1), "b.png": mirrored("Bag", 2), "../evil.png": b"x",
                         "notes.txt": b"hello"})
    at.file_uploader(key="upload_unlabelled_zip").set_value(("later.zip", archive, "application/zip")).run()
    at.button(key="load_unlabelled").click().run()
    assert not at.exception and not at.error
    assert "2 new photos to label kept" in shown_text(at)
    words = shown_text(at)
    assert "../evil.png" in words and "notes.txt" in words  # every skipped file named, with why
    assert len(space.unlabelled()) == 2

    at.file_uploader(key="upload_unlabelled_zip").set_value(None)
    at.file_uploader(key="upload_unlabelled_files").set_value(
        [("c.png", mirrored("Bag", 3), "image/png"), ("b.png", mirrored("Bag", 2), "image/png")]).run()
    at.button(key="load_unlabelled").click().run()
    assert "1 new photo to label kept (1 already here)." in shown_text(at)
    assert len(space.unlabelled()) == 3 and "label" in links(at)

    at.file_uploader(key="upload_unlabelled_files").set_value([("broken.png", b"not a photo", "image/png")]).run()
    at.button(key="load_unlabelled").click().run()
    assert "No usable photos were found in your photos to label" in " ".join(e.value for e in at.error)
    assert len(space.unlabelled()) == 3  # a refused upload changes nothing

    labelled = {f"{label}/{label}_{n:03d}.png": (SAMPLE_DIR / label / f"{label}_{n:03d}.png").read_bytes()
                for label in ("Bag", "Sneaker") for n in range(6)}
    labelled["unlabelled/d.png"] = mirrored("Sneaker", 9)
    at.file_uploader(key="upload_zip").set_value(("photos.zip", zip_bytes(labelled), "application/zip")).run()
    wait_for_upload(at.button(key="load_zip").click().run())
    assert not at.exception and not at.error
    assert at.session_state[state.DATASET_KEY].labels == ["Bag", "Sneaker"]  # no "unlabelled" class
    assert "1 photo in a folder for photos to label were kept apart" in shown_text(at)
    assert len(space.unlabelled()) == 4


def test_past_runs_say_how_the_photos_were_labelled(isolated_runs):
    from tests.app.support import write_fake_run

    workspace_id = workspace.new_id()
    folder = write_fake_run(isolated_runs / workspace_id / "20260101-120000-abab1111")
    (folder / "doctor.json").write_text('{"labelling": {"by_hand": 20, "bulk": 35, "rounds": '
                                        '[{"round": 1, "by_hand": 20, "bulk": 35}]}}')
    at = new_app({"workspace": workspace_id}).run()
    at.switch_page(nav.RUNS.path).run()
    assert not at.exception
    assert ("20 photos labelled by hand and 35 pre-labels accepted in bulk, in 1 round of label assist (round 1: "
            "20 by hand and 35 in bulk).") in shown_text(at)
