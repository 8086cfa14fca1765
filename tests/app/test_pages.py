"""Every page renders; workspaces stay private and survive a refresh; past runs; small helpers."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest
from tests.app.support import new_app, shown_text, write_fake_run

from quasar_core import jobs
from quasar_core.config import TrainConfig
from quasar_core.errors import QuasarError
from quasar_core.progress import Progress
from ui import job_control, nav, settings_form, state, workspace


@pytest.mark.parametrize("page", nav.PAGES, ids=lambda page: page.title)
def test_every_page_renders_with_its_purpose(page):
    at = new_app().run()
    at.switch_page(page.path).run()
    assert not at.exception
    assert not at.error
    assert at.title[0].value == ("Quasar Nexus" if page is nav.HOME else page.title)
    purpose = at.markdown[0].value
    assert purpose.endswith(".") and purpose.count(". ") == 0  # one plain sentence
    assert workspace.is_valid_id(at.query_params["workspace"])


def test_navigation_registry_lists_every_page_file():
    from tests.app.support import ROOT

    assert {page.path for page in nav.PAGES} == {f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py")}


def test_bad_workspace_in_url_is_replaced():
    for bad in ("../../etc", "ABCDEF" * 6, "0" * 31, "../" + "0" * 32, "0" * 32 + "/x"):
        at = new_app({"workspace": bad}).run()
        fresh = at.query_params["workspace"]
        assert fresh != bad and workspace.is_valid_id(fresh)
    with pytest.raises(ValueError):
        workspace.runs_root("..")


def test_refresh_opens_on_the_latest_model_without_a_click(isolated_runs):
    first = new_app().run()
    workspace_id = first.query_params["workspace"]
    write_fake_run(isolated_runs / workspace_id / "20260101-120000-aaaa0000", accuracy=0.6)
    write_fake_run(isolated_runs / workspace_id / "20260102-120000-aaaa0001", accuracy=0.75)
    write_fake_run(isolated_runs / workspace_id / "20260103-120000-aaaa0002", with_model=False)  # no model

    refreshed = new_app({"workspace": workspace_id}).run()  # a refresh is a new session, same URL
    assert refreshed.query_params["workspace"] == workspace_id
    run = refreshed.session_state[state.RUN_KEY]
    assert run is not None and run.name == "20260102-120000-aaaa0001"  # the newest with a model
    assert [b.key for b in refreshed.button] == ["try_sample"]  # Home's own: nothing to click to reopen it

    refreshed.switch_page(nav.EVALUATE.path).run()
    assert not refreshed.exception and not refreshed.error
    assert refreshed.metric[0].value == "about 75 % (55–95 %)"
    assert "Model: pets.zip · 2 classes · 32 px · 75 % (55–95 %)" in shown_text(refreshed)
    assert "Switch model" in [link.label for link in refreshed.get("page_link")]  # to Past runs
    assert "There is no model yet" not in shown_text(refreshed)

    refreshed.switch_page(nav.PREDICT.path).run()
    assert not refreshed.exception and not refreshed.error
    assert "Model: pets.zip · 2 classes · 32 px · 75 % (55–95 %)" in shown_text(refreshed)


def test_nothing_yet_says_what_to_do_and_links_there(isolated_runs):
    workspace_id = workspace.new_id()
    at = new_app({"workspace": workspace_id}).run()
    for page in (nav.EVALUATE, nav.PREDICT, nav.COMPARE):
        at.switch_page(page.path).run()
        assert not at.exception and not at.error
        assert "There is no model yet. Train one on your photos" in shown_text(at)
        assert "Train a model" in [link.label for link in at.get("page_link")]
    at.switch_page(nav.RUNS.path).run()
    assert "No runs yet in this workspace: train a model" in shown_text(at)
    assert "Train a model" in [link.label for link in at.get("page_link")]

    # The current model deleted elsewhere, another one kept: the way to choose it.
    write_fake_run(isolated_runs / workspace_id / "20260101-120000-ffff0000")
    at.switch_page(nav.EVALUATE.path).run()
    assert "Choose one of your models" in shown_text(at)
    assert "Choose a model in Past runs" in [link.label for link in at.get("page_link")]


def test_workspaces_do_not_see_each_other(isolated_runs):
    mine, theirs = workspace.new_id(), workspace.new_id()
    write_fake_run(isolated_runs / theirs / "20260101-120000-cccc0000")
    at = new_app({"workspace": mine}).run()
    assert "Welcome back" not in shown_text(at)
    at.switch_page(nav.RUNS.path).run()
    assert "No runs yet" in shown_text(at)
    assert "cccc0000" not in shown_text(at)


def test_past_runs_reopen_and_delete(isolated_runs):
    workspace_id = workspace.new_id()
    older = write_fake_run(isolated_runs / workspace_id / "20260101-120000-dddd0000", accuracy=0.5)
    newer = write_fake_run(isolated_runs / workspace_id / "20260102-120000-eeee0000", accuracy=0.9)
    at = new_app({"workspace": workspace_id}).run()
    assert at.session_state[state.RUN_KEY].name == newer.name  # opened on the latest
    at.switch_page(nav.RUNS.path).run()
    text = shown_text(at)
    assert text.index("90 % (70–100 %)") < text.index("50 % (30–70 %)")  # newest first

    at.button(key=f"reopen_{older.name}").click().run()
    assert at.title[0].value == nav.EVALUATE.title
    assert at.session_state[state.RUN_KEY].name == older.name
    assert at.query_params["workspace"] == workspace_id

    at.switch_page(nav.RUNS.path).run()
    at.button(key=f"delete_{older.name}").click().run()
    assert not at.exception
    assert not older.exists() and newer.exists()
    assert at.session_state[state.RUN_KEY] is None  # it was the current run
    assert "dddd0000" not in shown_text(at)


def test_refresh_reattaches_to_running_job(isolated_runs, tmp_path, monkeypatch):
    workspace_id = workspace.new_id()
    release = threading.Event()

    def blocked_training(*args, **kwargs):  # stands in for a training: holds the job "running" until released
        release.wait(30)
        raise QuasarError("The test released the job.")

    monkeypatch.setattr(jobs, "train_run", blocked_training)

    run_dir = isolated_runs / workspace_id / "20260101-120000-ffff0000"
    run_dir.mkdir(parents=True)
    job = jobs.TrainingJob(None, TrainConfig(), run_dir, owner=workspace_id, base_loader=None)
    jobs.default_queue().submit(job)
    try:
        at = new_app({"workspace": workspace_id}).run()
        assert at.session_state[state.JOB_ID_KEY] == job.job_id
        assert "kept running while the page reloaded" in shown_text(at)
        at.switch_page(nav.TRAIN.path).run()
        assert at.button(key="stop_training").disabled is False
        assert at.button(key="start_training").disabled is True

        other = new_app().run()  # another workspace does not get the job
        assert state.JOB_ID_KEY not in other.session_state or other.session_state[state.JOB_ID_KEY] is None
    finally:
        release.set()
        jobs.default_queue().wait(job, timeout=30)
    at.run()
    assert job.state == "failed"
    assert any("The test released the job." in e.value for e in at.error)


def test_settings_form_covers_every_setting():
    offered = {field.split(".")[0] for field, _, _ in settings_form.SETTINGS}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert offered | set(settings_form.NOT_OFFERED) == fields
    assert settings_form.NOT_OFFERED == ("strategy",)
    augmentation = {field.split(".", 1)[1] for field, _, _ in settings_form.SETTINGS if field.startswith("augmentation.")}
    assert augmentation == {f.name for f in dataclasses.fields(type(TrainConfig().augmentation))}
    assert all(spec.help and spec.label and len(spec.help) < 160 for _, _, spec in settings_form.SETTINGS)


def test_settings_round_trip_through_the_form(dataset):
    from quasar_core.presets import PRESETS

    for preset in PRESETS.values():
        config = preset.config(dataset)
        values = settings_form.values_from_config(config)
        assert settings_form.config_from_values(values, TrainConfig()) == config
        for field, _, spec in settings_form.SETTINGS:  # every preset value is in the setting's range
            value = values[settings_form.key_of(field)]
            assert spec.choices is None or value in spec.choices, field
            assert spec.low is None or spec.low <= value <= spec.high, field


def test_progress_words():
    progress = Progress("fine-tune", step=5, total_steps=7, epoch=3, total_epochs=8, eta_seconds=12)
    assert job_control.progress_text(progress, fine_tunes=True) == (
        "Step 3 of 4 · Fine-tuning VGG16's top layers · epoch 3 of 8, batch 5 of 7 · about 12 s left in this step")
    features = Progress("features", step=40, total_steps=255, rate=3.25)
    assert job_control.progress_text(features, fine_tunes=False).startswith(
        "Step 1 of 3 · Reading your photos through VGG16 · photo 40 of 255, 3.2 photos/s")
    head = Progress("head", step=5, total_steps=25)
    assert job_control.progress_text(head, fine_tunes=False) == (
        "Step 2 of 3 · Testing the classifier on photos it has not learned from · 5 of 25")


def test_confusion_cell_click_shows_that_cells_photos(isolated_runs):
    """A click on the matrix (a selection event) replaces the mistakes with that cell's photos."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates

    workspace_id = workspace.new_id()
    write_fake_run(isolated_runs / workspace_id / "20260101-120000-abab0000")
    at = new_app({"workspace": workspace_id}).run()
    at.switch_page(nav.EVALUATE.path).run()
    assert "Its mistakes" in shown_text(at)

    chart = next(e for e in at.get("plotly_chart") if e.key == "confusion_matrix")
    selection = {"selection": {"points": [{"customdata": ["cat", "cat"], "x": "cat", "y": "cat"}],
                               "point_indices": [0], "box": [], "lasso": []}}
    states = at._tree.get_widget_states()  # AppTest has no plotly widget: send the browser's event by hand
    states.widgets.append(WidgetState(id=chart.proto.id, string_value=json.dumps(selection)))
    at._run(WidgetStates(widgets=list(states.widgets)))
    assert not at.exception
    assert "Really cat, predicted cat: 1 photo." in shown_text(at)
