"""The Compare page: transfer learning vs from scratch on the current run's photos, through the job queue."""

from __future__ import annotations

import threading
import time

from conftest import charts_by_key, copy_run, new_app, shown_text, wait_for_comparison

from quasar_core import jobs
from quasar_core.config import TrainConfig
from quasar_core.errors import QuasarError
from quasar_core.report import model_card_html
from ui import comparing, nav, state, workspace


def test_compare_runs_in_the_queue_to_the_end_and_is_kept(sample_run_template, isolated_runs, monkeypatch):
    monkeypatch.setattr(comparing, "FRACTIONS", (0.25, 0.5))  # 4 short trainings of 1 epoch at 32 px
    workspace_id = workspace.new_id()
    folder = copy_run(sample_run_template, isolated_runs, workspace_id)
    at = new_app({"workspace": workspace_id}).run()
    at.button(key="reopen_latest_run").click().run()

    # The photos are gone after a refresh: said plainly, with the way to get them back.
    at.switch_page(nav.COMPARE.path).run()
    assert not at.exception and not at.error
    assert "trained 4 times: on 25% and 50% of its training photos" in shown_text(at)
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

    def blocked_loader():
        release.wait(30)
        raise QuasarError("The test released the queue.")

    other_dir = isolated_runs / "other" / "20260101-000000-00000000"
    other_dir.mkdir(parents=True)
    blocker = jobs.default_queue().submit(
        jobs.TrainingJob(None, TrainConfig(), other_dir, owner=workspace.new_id(), base_loader=blocked_loader))
    try:
        at.button(key="start_comparison").click().run()
        assert not at.exception and not at.error
        assert "you are number 1 in line" in shown_text(at)
        assert at.button(key="start_comparison").disabled and not at.button(key="stop_comparison").disabled
    finally:
        release.set()
        jobs.default_queue().wait(blocker, timeout=30)

    job = jobs.default_queue().get(at.session_state[state.COMPARISON_JOB_KEY])
    deadline = time.monotonic() + 60
    while not job.messages and not job.finished and time.monotonic() < deadline:
        time.sleep(0.2)
    at.run()  # what the 1 s poll shows while it runs: the step in words and a progress bar
    assert not at.exception and not at.error
    assert any(bar.text.startswith("Training ") and " of 4: " in bar.text for bar in at.get("progress"))
    job = wait_for_comparison(at)
    assert job.state == "done", job.error
    assert [m.split(":")[0] for m in job.messages] == [f"Training {k} of 4" for k in range(1, 5)]
    assert not at.exception and not at.error
    assert "comparison_chart" in charts_by_key(at)
    conclusion = job.result["conclusion"]
    assert conclusion.startswith("With ImageNet weights,") and conclusion in shown_text(at)
    assert len(at.dataframe[0].value) == 4
    assert (folder / "comparison.json").is_file()
    assert "Transfer learning vs training from scratch" in model_card_html(folder, with_grad_cam=False)

    # A new session finds the comparison in the run folder and shows it straight away.
    again = new_app({"workspace": workspace_id}).run()
    again.button(key="reopen_latest_run").click().run()
    again.switch_page(nav.COMPARE.path).run()
    assert not again.exception
    assert "comparison_chart" in charts_by_key(again)
    assert conclusion in shown_text(again)
    assert again.button(key="start_comparison").label == "Compare again"
    assert state.COMPARISON_JOB_KEY not in again.session_state


def test_compare_stop_and_opened_models(sample_run_template, isolated_runs, monkeypatch):
    monkeypatch.setattr(comparing, "FRACTIONS", (1.0,))
    workspace_id = workspace.new_id()
    copy_run(sample_run_template, isolated_runs, workspace_id)
    at = new_app({"workspace": workspace_id}).run()
    at.button(key="reopen_latest_run").click().run()
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
