"""The Compare page: transfer learning vs a small CNN trained from scratch on the current run's photos, through the
job queue."""

from __future__ import annotations

import threading
import time

from tests.app.support import charts_by_key, copy_run, new_app, shown_text, wait_for_comparison

from quasar_core import compare, jobs
from quasar_core.config import TrainConfig
from quasar_core.errors import QuasarError
from quasar_core.runs.report import model_card_html
from quasar_core.runs.folder import Run
from ui import comparing, nav, state, workspace


def links(at) -> list[str]:
    return [link.label for link in at.get("page_link")]


def test_compare_runs_in_the_queue_to_the_end_and_is_kept(sample_run_template, isolated_runs, monkeypatch):
    monkeypatch.setattr(comparing, "FRACTIONS", (0.25, 0.5))  # 1 pass through VGG16 at 32 px, 2 scores
    monkeypatch.setattr(compare, "SCRATCH_EPOCHS", 1)  # the CNN from scratch: one epoch at 32 px
    workspace_id = workspace.new_id()
    folder = copy_run(sample_run_template, isolated_runs, workspace_id)
    at = new_app({"workspace": workspace_id}).run()

    # The photos are gone after a refresh: said plainly, with the way to get them back.
    at.switch_page(nav.COMPARE.path).run()
    assert not at.exception and not at.error
    assert "a model learns from 25 % and 50 % of them" in shown_text(at)
    assert "learns every layer from your photos" in shown_text(at)
    assert "no longer loaded" in shown_text(at)
    assert at.button(key="start_comparison").disabled
    assert at.button(key="stop_comparison").disabled

    at.switch_page(nav.UPLOAD.path).run()
    at.button(key="load_sample").click().run()
    at.switch_page(nav.COMPARE.path).run()
    assert "no longer loaded" not in shown_text(at)
    assert at.button(key="start_comparison").label == "Compare with training from scratch"

    # Someone else's training holds the queue: the comparison waits its turn and says where it stands.
    release = threading.Event()

    def blocked_training(*args, **kwargs):  # stands in for a training: holds the queue until released
        release.wait(30)
        raise QuasarError("The test released the queue.")

    monkeypatch.setattr(jobs, "train_run", blocked_training)
    other_dir = isolated_runs / "other" / "20260101-000000-00000000"
    other_dir.mkdir(parents=True)
    blocker = jobs.default_queue().submit(
        jobs.TrainingJob(None, TrainConfig(), other_dir, owner=workspace.new_id(), base_loader=None))
    try:
        at.button(key="start_comparison").click().run()
        assert not at.exception and not at.error
        assert "you are number 1 in line" in shown_text(at)
        assert at.button(key="start_comparison").disabled and not at.button(key="stop_comparison").disabled
        # The Compare page shows the comparison itself: it never sends the user to the Compare page.
        assert "Follow it on the Compare page" not in links(at)
        assert "running in the background" not in shown_text(at)
        at.switch_page(nav.HOME.path).run()  # elsewhere, the banner leads back to it
        assert "Follow it on the Compare page" in links(at)
        assert "Your comparison with training from scratch is running in the background." in shown_text(at)
        at.switch_page(nav.COMPARE.path).run()
        assert "Follow it on the Compare page" not in links(at)
    finally:
        release.set()
        jobs.default_queue().wait(blocker, timeout=30)

    job = jobs.default_queue().get(at.session_state[state.COMPARISON_JOB_KEY])
    deadline = time.monotonic() + 60
    while not job.messages and not job.finished and time.monotonic() < deadline:
        time.sleep(0.2)
    at.run()  # what the 1 s poll shows while it runs: the step in words and a progress bar
    assert not at.exception and not at.error
    [bar] = at.get("progress")
    assert bar.text in ("Reading the photos through VGG16 with ImageNet weights (1 of 2)",
                        "Training a small network from scratch on your photos (2 of 2)")
    assert "Follow it on the Compare page" not in links(at)
    job = wait_for_comparison(at)
    assert job.state == "done", job.error
    assert [m for m in job.messages if m.startswith(comparing.STEPS)] == [
        "Reading the photos through VGG16 with ImageNet weights (1 of 2)",
        "Training a small network from scratch on your photos (2 of 2)"]
    assert not at.exception and not at.error
    assert "comparison_chart" in charts_by_key(at)
    summary = comparing.saved(Run.open(folder))
    conclusion = summary["conclusion"]
    assert conclusion and conclusion in shown_text(at)
    assert "Measured by 10-fold cross-validation over 300 photos, repeated 3 times" in shown_text(at)
    assert "the small CNN trained from scratch once, on the other" in shown_text(at)
    table = at.dataframe[0].value
    assert len(table) == 3
    assert list(table["Starting weights"]) == ["ImageNet weights (transfer)"] * 2 + [
        "Random weights: a small CNN trained from scratch"]
    scratch = summary["results"][2]
    assert list(table["Photos learned from"].str.split(" ").str[0]) == ["25", "50", str(scratch["train_images"])]
    assert list(table["Tested on"]) == ["300 photos"] * 2 + [f"{scratch['test_images']} photos"]
    assert all(value.startswith("about ") and value.endswith(" %)") for value in table["Accuracy (95 % range)"])
    assert (folder / "comparison.json").is_file()
    card = model_card_html(folder, with_grad_cam=False)
    assert "Transfer learning vs training from scratch" in card and "Small CNN trained from scratch" in card
    assert "Follow it on the Compare page" not in links(at)

    # A new session finds the comparison in the run folder and shows it straight away.
    again = new_app({"workspace": workspace_id}).run()
    again.switch_page(nav.COMPARE.path).run()
    assert not again.exception
    assert "comparison_chart" in charts_by_key(again)
    assert conclusion in shown_text(again)
    assert again.button(key="start_comparison").label == "Compare again"
    assert state.COMPARISON_JOB_KEY not in again.session_state


def test_compare_stop_and_opened_models(sample_run_template, isolated_runs, monkeypatch):
    monkeypatch.setattr(comparing, "FRACTIONS", (1.0,))
    monkeypatch.setattr(compare, "SCRATCH_EPOCHS", 1)
    workspace_id = workspace.new_id()
    copy_run(sample_run_template, isolated_runs, workspace_id)
    at = new_app({"workspace": workspace_id}).run()
    at.switch_page(nav.UPLOAD.path).run()
    at.button(key="load_sample").click().run()
    at.switch_page(nav.COMPARE.path).run()
    at.button(key="start_comparison").click().run()
    at.button(key="stop_comparison").click().run()
    job = wait_for_comparison(at)
    assert job.state == "cancelled"
    assert not at.exception and not at.error
    assert at.button(key="start_comparison").disabled is False

    # A model opened from a file has no known photos to compare on.
    run = at.session_state[state.RUN_KEY]
    (run.path / "data_report.json").unlink()
    at.session_state[state.RUN_KEY] = type(run).open(run.path)
    at.run()
    assert "opened from a file" in shown_text(at)
    assert at.button(key="start_comparison").disabled
