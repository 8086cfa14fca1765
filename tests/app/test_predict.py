"""Predict's "none of these": a photo unlike the training photos is called unknown, a batch says how many are."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from quasar_core.charts._style import LIGHT_GREY
from tests.app.support import charts_by_key, copy_run, new_app, sample_photo, shown_text
from tests.pictures import garden_jpeg
from ui import explaining, nav, workspace

FLOWERS_ZIP = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "flowers-full" / "flowers.zip"
UNKNOWN = "This doesn't look like any of your classes (Ankle boot, Bag, Sneaker, T-shirt, Trouser). The closest is "


def colourful_picture() -> tuple[str, bytes]:
    """A photo nothing like Fashion-MNIST's grey clothes: a flower if one is at hand, else bright shapes."""
    if FLOWERS_ZIP.is_file():
        with zipfile.ZipFile(FLOWERS_ZIP) as archive:
            name = sorted(n for n in archive.namelist() if n.endswith(".jpg"))[0]
            return Path(name).name, archive.read(name)
    return "garden.jpg", garden_jpeg()


@pytest.fixture
def predict_page(sample_run_template, isolated_runs):
    workspace_id = workspace.new_id()
    copy_run(sample_run_template, isolated_runs, workspace_id)
    at = new_app({"workspace": workspace_id}).run()
    return at.switch_page(nav.PREDICT.path).run()


def bar_colours(at, content: bytes) -> list[str]:
    chart = charts_by_key(at)[f"probability_bars_{explaining.photo_id(content)}"]
    return json.loads(chart.proto.spec)["data"][0]["marker"]["color"]


def test_an_unknown_photo_is_called_unknown_with_grey_bars(predict_page):
    at = predict_page
    name, content = colourful_picture()
    at.file_uploader(key="predict_upload").set_value((name, content, "image/jpeg")).run()
    assert not at.exception and not at.error
    [warning] = [w.value.replace("\\", "") for w in at.warning if "doesn't look like" in w.value]
    assert warning.startswith(UNKNOWN) and warning.endswith("but the photo is unlike the ones it learned from.")
    assert "It is most likely" not in shown_text(at)
    assert set(bar_colours(at, content)) == {LIGHT_GREY}  # its closest guesses, greyed out
    # One photo: no batch summary, and where the model looked is still shown.
    assert "Do the new photos look like the training photos?" not in shown_text(at)
    assert any(c.startswith("Where it looked for ") for image in at.image for c in image.captions)

    # A photo like the training photos is answered as usual, its bars in colour.
    known_name, known = sample_photo("Sneaker", 11)
    at.file_uploader(key="predict_upload").set_value((known_name, known, "image/png")).run()
    assert "It is most likely" in shown_text(at) and "doesn't look like" not in shown_text(at)
    assert LIGHT_GREY not in bar_colours(at, known)


def test_a_batch_says_how_many_photos_look_different(predict_page):
    at = predict_page
    strange_name, strange = colourful_picture()
    known = [sample_photo(label, number) for label in ("Bag", "Trouser", "Sneaker", "T-shirt")
             for number in (1, 2, 3)]
    files = [(name, content, "image/png") for name, content in known] + [(strange_name, strange, "image/jpeg")]
    at.file_uploader(key="predict_upload").set_value(files).run()
    assert not at.exception and not at.error
    words = shown_text(at)
    assert "Do the new photos look like the training photos?" in words
    assert "1 of 13 new photos looks different from what the model learned — consider adding photos like it." in words
    assert "familiarity_histogram" in charts_by_key(at)
    # The first 12 in detail, all 13 in a table, the strange one in words.
    assert len([key for key in charts_by_key(at) if key.startswith("probability_bars_")]) == 12
    [table] = [frame.value for frame in at.dataframe]
    assert list(table["Photo"]) == [name for name, _, _ in files]
    answers = dict(zip(table["Photo"], table["Answer"]))
    assert answers[strange_name].startswith("This doesn't look like any of your classes")
    assert all(not answers[name].startswith("This doesn't") for name, _ in known)
    assert not any(c.startswith("Where it looked for ") for image in at.image for c in image.captions)
    assert at.download_button(key="download_run")
