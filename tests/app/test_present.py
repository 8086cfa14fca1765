"""The Present page: the headline in large type from the run's numbers, what it learned from, where it looks, its
mistakes and why they are fair, a live try with the three answers; no technical word; reached from Evaluate's Present
button and straight from the workspace's shared link."""

from __future__ import annotations

import json
import re

from tests.app.support import copy_run, new_app, readable_words, sample_photo, shown_text, write_fake_run
from tests.pictures import garden_jpeg

from quasar_core.wording import right_of_100
from ui import nav, presenting, workspace

BANNED = (" C ", "log loss", "fold", "hold-out", "int8", "float32", "regularisation", "e-0", "100 %", "Grad-CAM")


def technical_words(words: str) -> list[str]:
    return [word for word in BANNED if (word in words if word.strip() == word.upper().strip() or word == " C "
                                        else word.lower() in words.lower())]


def test_present_shows_the_headline_and_no_technical_word(sample_run_template, isolated_runs):
    workspace_id = workspace.new_id()
    folder = copy_run(sample_run_template, isolated_runs, workspace_id)
    at = new_app({"workspace": workspace_id}).run()  # a shared link: the latest model, without a click
    at.switch_page(nav.PRESENT.path).run()
    assert not at.exception and not at.error
    metrics = json.loads((folder / "metrics.json").read_text())
    headline = right_of_100(metrics["accuracy"], tuple(metrics["accuracy_interval"]), len(metrics["predictions"]))
    assert re.fullmatch(r"Right on (about \d{1,2} of 100|all \d+) photos it had never seen \(.+\)", headline)
    assert any(headline in m.value and "font-size" in m.value for m in at.markdown)  # large type
    words = shown_text(at)
    assert "It learned from 300 photos: 60 photos each of" in words and "on this computer" in words
    assert re.search(r"(\d+ of its \d+ mistakes are|All \d+ of its mistakes are|Its one mistake is) between "
                     r"[\w -]+ and [\w -]+: two classes that can look alike|mistakes are spread over different classes",
                     words)
    assert [m.label for m in at.metric][:2] == ["Ankle boot", "Bag"] and at.metric[0].value == "60 photos"
    assert "Where it looks" in words and "Try it" in words
    overlays = [caption for image in at.image for caption in image.captions if "where it looked" in caption]
    assert len(overlays) == 3, overlays  # three classes, each with where the model looked
    assert technical_words(readable_words(at)) == []

    # Try it: a photo of its own kind is named; a stranger gets one of the three answers.
    at.file_uploader(key="present_upload").set_value((*sample_photo("Trouser", 59), "image/png")).run()
    assert not at.exception and not at.error
    answers = [m.value for m in at.markdown if "font-size" in m.value and m.value.count("sure") + m.value.count(
        "classes") > 0]
    assert any(re.search(r"It says \w[\w -]* \((\d{1,2}\.\d|more than 99) % sure\)", a) for a in answers), answers
    at.file_uploader(key="present_upload").set_value(("garden.jpg", garden_jpeg(), "image/jpeg")).run()
    assert not at.exception and not at.error
    said = " ".join(m.value for m in at.markdown).replace("&#x27;", "'")
    assert re.search(r"This doesn't look like any of your classes|Not sure: this photo looks unusual|It says ", said)
    assert technical_words(readable_words(at)) == []


def test_evaluate_has_a_present_button(isolated_runs):
    workspace_id = workspace.new_id()
    write_fake_run(isolated_runs / workspace_id / "20260101-120000-abab0000", accuracy=0.75)
    at = new_app({"workspace": workspace_id}).run()
    at.switch_page(nav.EVALUATE.path).run()
    at.button(key="present").click().run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Present"
    assert any("Right on about 75 of 100 photos it had never seen (55–95)" in m.value for m in at.markdown)
    words = shown_text(at)
    assert "It learned from" not in words or "photos" in words
    assert technical_words(readable_words(at)) == []


def test_present_without_a_model_says_what_to_do(isolated_runs):
    at = new_app().run()
    at.switch_page(nav.PRESENT.path).run()
    assert not at.exception and not at.error
    assert "There is no model yet. Train one on your photos" in shown_text(at)
    assert "Train a model" in [link.label for link in at.get("page_link")]


def test_the_three_answers_in_words():
    labels = ["ants", "bees"]
    known = {"image": "a.jpg", "label": "ants", "probabilities": {"ants": 0.9996, "bees": 0.0004}, "unknown": False}
    assert presenting.answer(known, labels).text == "It says ants (more than 99 % sure)."
    unusual = {**known, "probabilities": {"ants": 0.7, "bees": 0.3}, "unusual": True}
    assert presenting.answer(unusual, labels).text == ("Not sure: this photo looks unusual for your classes; the "
                                                       "closest is ants (70.0 % sure).")
    unknown = {**known, "unknown": True}
    assert presenting.answer(unknown, labels).kind == "unknown"
    assert presenting.answer(unknown, labels).text == "This doesn't look like any of your classes (ants and bees)."
