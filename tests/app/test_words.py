"""The words a stakeholder reads: no program names on any page, runs named by their data, one percent style."""

from __future__ import annotations

import json
import re

import pytest
from tests.app.support import copy_run, new_app, raw_keys, readable_words, sample_photo, shown_text, write_fake_run

from quasar_core.selection import setting_words
from ui import nav, settings_form, state, workspace


def test_raw_keys_are_recognised():
    assert raw_keys("Fine-tuning learning rate must be at least 1e-07") == []
    assert raw_keys("fine_tune_learning_rate must be at least 1e-07") == ["fine_tune_learning_rate"]
    assert raw_keys("Setting: {'l2': 0.01}") == ["l2", "{'"]
    assert raw_keys("Settings: Quick look preset · 32 px · none weights") == ["none weights"]
    assert raw_keys("Photos Bag/Trouser_030.png and T-shirt_047.png") == []


@pytest.fixture
def session_with_everything(sample_run_template, isolated_runs):
    """A session with the sample photos loaded and a trained run (Best accuracy's table included) opened."""
    from quasar_core.config import TrainConfig

    workspace_id = workspace.new_id()
    folder = copy_run(sample_run_template, isolated_runs, workspace_id)
    tried = [TrainConfig(image_size=32), TrainConfig(image_size=32, augment=True)]
    (folder / "selection.json").write_text(json.dumps([
        {"setting": setting_words(config), "accuracy": 0.9 + 0.01 * number, "photos": 300, "fine_tunes": False,
         "chosen": number == 1} for number, config in enumerate(tried)]))
    at = new_app({"workspace": workspace_id}).run()
    at.switch_page(nav.UPLOAD.path).run()
    at.button(key="load_sample").click().run()
    return at


def test_no_page_shows_a_raw_key(session_with_everything):
    at = session_with_everything
    seen = {}
    for page in nav.PAGES:
        at.switch_page(page.path).run()
        assert not at.exception, page.title
        seen[page.title] = readable_words(at)
    at.switch_page(nav.CONFIGURE.path).run()
    for preset in ("Balanced", "Best accuracy", "Quick look"):
        at.radio(key=settings_form.PRESET_KEY).set_value(preset).run()
        seen[f"Configure, {preset}"] = readable_words(at)
    at.radio(key="setting.weights").set_value("none").run()
    at.radio(key="setting.mode").set_value("fine-tune").run()
    seen["Configure, fine-tuning from random weights"] = readable_words(at)
    at.switch_page(nav.TRAIN.path).run()
    seen["Train, random weights"] = readable_words(at)
    assert "random weights (from scratch)" in seen["Train, random weights"]
    at.switch_page(nav.EVALUATE.path).run()
    assert "Details for specialists: the settings Best accuracy tried" in readable_words(at)
    at.switch_page(nav.PREDICT.path).run()
    name, content = sample_photo("Bag", 7)
    at.file_uploader(key="predict_upload").set_value((name, content, "image/png")).run()
    assert not at.exception and not at.error
    seen["Predict, a photo"] = readable_words(at)
    found = {title: raw_keys(words) for title, words in seen.items()}
    assert {title: keys for title, keys in found.items() if keys} == {}


def test_a_wrong_setting_is_named_in_words(monkeypatch):
    """TrainConfig's checks name fields ("fine_tune_learning_rate must…"): the form says the setting's label."""
    from quasar_core.config import TrainConfig

    values = settings_form.values_from_config(TrainConfig())
    values[settings_form.key_of("fine_tune_learning_rate")] = 2.0
    with pytest.raises(ValueError) as raised:
        settings_form.config_from_values(values, TrainConfig())
    assert str(raised.value).startswith("Fine-tuning learning rate must be")
    assert raw_keys(str(raised.value)) == []
    values = settings_form.values_from_config(TrainConfig())
    values[settings_form.key_of("augmentation.views")] = 0
    with pytest.raises(ValueError) as raised:
        settings_form.config_from_values(values, TrainConfig())
    assert str(raised.value).startswith("Copies per photo must be")


LINE = "pets.zip · 2 classes · 32 px · 75 % (55–95 %)"


def test_runs_and_the_model_line_name_the_dataset(isolated_runs):
    workspace_id = workspace.new_id()
    write_fake_run(isolated_runs / workspace_id / "20260101-120000-abab0000", accuracy=0.75)
    at = new_app({"workspace": workspace_id}).run()
    at.switch_page(nav.RUNS.path).run()
    assert f"{LINE} (current)" in shown_text(at)
    assert re.search(r"Finished · trained \d\d \w{3} \d{4}, \d\d:\d\d · classes: cat, dog", shown_text(at))
    for page in (nav.EVALUATE, nav.PREDICT, nav.COMPARE):
        at.switch_page(page.path).run()
        assert not at.exception
        assert f"Model: {LINE}" in shown_text(at), page.title
    at.switch_page(nav.TRAIN.path).run()
    assert f"Showing the current model: {LINE}." in shown_text(at)
    at.switch_page(nav.EVALUATE.path).run()
    # One percent style: the headline number, the range, the sentences.
    assert at.metric[0].value == "about 75 % (55–95 %)"
    words = shown_text(at)  # (tables hold numbers: the browser formats them as percentages)
    assert not re.search(r"\d%", words), "a percent sign without its space"
    assert not re.search(r"\d\.\d{2,}", words), "a raw fraction instead of a percentage"


def test_problems_found_none_in_one_style(isolated_runs):
    at = new_app().run().switch_page(nav.UPLOAD.path).run()
    at.button(key="load_sample").click().run()
    assert [s.value for s in at.success] == ["Problems found: none. Every file was used."]
    assert at.session_state[state.DATASET_KEY].report.problems == []
