"""The Train page's states: the buttons side by side, no empty chart before the first candidate is scored, a
prominent message after a stop, a warning (not a green box) when the model scores poorly, and a reason
whenever Start is off.

The jobs here do not train: each is a real TrainingJob in the real queue whose work is
replaced by a stand-in that reports progress and writes a run folder the way train_run does.
"""

from __future__ import annotations

import json
import threading

import pytest
from tests.app.support import charts_by_key, new_app, shown_text, wait_for_job, write_fake_run

from quasar_core import jobs
from quasar_core.config import TrainConfig
from quasar_core.progress import Progress
from quasar_core.runs.folder import write_json
from ui import nav, state, workspace

CURVES_LOOK_FINE = "No sign of over- or under-fitting."

STOPPED_EARLY = ("Stopped before the first model was learned: nothing was kept. The photos read so far are "
                 "remembered, so the next training starts faster.")


def stand_in_job(isolated_runs, finish, *, hold: threading.Event | None = None, begin=None,
                 workspace_id: str | None = None):
    """A job of a new workspace, 'running' in the features step (no candidate scored yet) until `hold` is set or
    it is stopped; then `finish(run_dir, job, hooks)` writes its run folder and returns the final state.
    `begin(hooks)`, if given, runs before the wait (history rows and messages a page can show meanwhile)."""
    workspace_id = workspace_id or workspace.new_id()
    run_dir = isolated_runs / workspace_id / "20260101-120000-abcd0000"
    job = jobs.TrainingJob(None, TrainConfig(image_size=32), run_dir, owner=workspace_id,
                           base_loader=None)
    hold = hold or job.cancel_event

    def work(hooks):
        hooks.progress(Progress("features", 3, 24))  # reading the photos through VGG16
        if begin is not None:
            begin(hooks)
        hold.wait(60)
        return finish(run_dir, job, hooks)

    job._work = work
    jobs.default_queue().submit(job)
    return job, workspace_id


def train_page(workspace_id: str):
    """The Train page of a session that (re)attaches to the workspace's running job."""
    at = new_app({"workspace": workspace_id}).run()
    return at.switch_page(nav.TRAIN.path).run()


def blocks(node):
    for child in getattr(node, "children", {}).values():
        if type(child).__name__ == "Block":
            yield child
            yield from blocks(child)


def stopped_before_any_candidate(run_dir, job, hooks):
    """What train_run leaves when stopped while still reading the photos: settings, no model, no history."""
    run_dir.mkdir(parents=True)
    write_json(run_dir / "config.json", job.config.to_dict())
    write_json(run_dir / "labels.json", ["cat", "dog"])
    write_json(run_dir / "status.json", {"state": "cancelled", "started": 0.0, "finished": 1.0,
                                         "message": STOPPED_EARLY})
    return "cancelled"


def test_start_and_stop_sit_side_by_side(isolated_runs):
    at = new_app().run().switch_page(nav.TRAIN.path).run()
    [row] = [block for block in blocks(at.main)
             if any(getattr(child, "key", None) == "start_training" for child in block.children.values())]
    assert [child.key for child in row.children.values()] == ["start_training", "stop_training"]
    assert "direction: HORIZONTAL" in str(row.proto.flex_container)


def test_before_the_first_candidate_the_bar_shows_and_no_empty_chart(isolated_runs):
    job, workspace_id = stand_in_job(isolated_runs, stopped_before_any_candidate)
    try:
        at = train_page(workspace_id)
        assert not at.exception and not at.error
        assert at.button(key="start_training").disabled and not at.button(key="stop_training").disabled
        [bar] = at.get("progress")
        assert bar.text.startswith("Step 1 of 3 · Reading your photos through VGG16 · photo 3 of 24")
        assert not {"selection_chart", "training_curves"} & set(charts_by_key(at))
        assert "Start is off while this training runs: stop it, or wait for it to finish." in shown_text(at)

        # Stopped before any candidate: the message stands right under the buttons, with no chart above it.
        at.button(key="stop_training").click().run()
        assert job.cancel_event.is_set()
        job = wait_for_job(at)
    finally:
        job.cancel()
    assert job.state == "cancelled"
    assert not at.exception and not at.error
    assert not {"selection_chart", "training_curves"} & set(charts_by_key(at))
    assert at.get("progress") == []
    [stopped] = at.warning
    assert stopped.value == f"{STOPPED_EARLY} Press Start training to try again."
    assert stopped.icon == ":material/stop_circle:"
    assert at.button(key="stop_training").disabled


@pytest.mark.parametrize("accuracy, tone", [(0.0, "warning"), (0.5, "warning"), (0.75, "success")])
def test_finished_model_is_green_only_when_its_accuracy_is_fair(isolated_runs, accuracy, tone):
    release = threading.Event()

    def finished(run_dir, job, hooks):
        write_fake_run(run_dir, accuracy=accuracy)  # config 32 px, 1 candidate in its history, on 4 photos
        for row in json.loads((run_dir / "history.json").read_text()):
            hooks.epoch_end(row)
        return "done"

    job, workspace_id = stand_in_job(isolated_runs, finished, hold=release)
    try:
        at = train_page(workspace_id)
        assert "selection_chart" not in charts_by_key(at)
        release.set()
        job = wait_for_job(at)
    finally:
        release.set()
    assert job.state == "done"
    assert not at.exception and not at.error
    assert "selection_chart" in charts_by_key(at)  # a candidate is scored: now the chart means something
    assert "training_curves" not in charts_by_key(at)  # no fine-tuning epochs
    trained = "Trained: the classifier learned from every photo. It took"
    ended = [box.value for box in getattr(at, tone) if box.value.startswith(trained)]
    assert len(ended) == 1
    others = [box.value for kind in ("success", "warning") if kind != tone for box in getattr(at, kind)]
    assert not any(text.startswith("Trained") for text in others)
    if tone == "warning":
        assert (f"It named only {accuracy * 100:.0f} % of the photos correctly (measured on few photos, so it may "
                "be better or worse), so it is not ready to use yet.") in ended[0]
        assert "use bigger images than 32 px" in ended[0] and "Check my photos page" in ended[0]
        assert "more photos of each class" in ended[0]
        assert CURVES_LOOK_FINE not in shown_text(at)
    else:
        assert "not ready to use" not in shown_text(at)
    assert f"It named {round(accuracy * 4)} of 4 photos correctly" in shown_text(at)
    # The stand-in had no photos of this session: Start is off, and the page says why.
    assert at.button(key="start_training").disabled
    assert NO_PHOTOS in shown_text(at)


NO_PHOTOS = "Start is off until there are photos: load your photos first."


def test_whenever_start_is_off_the_page_says_why(isolated_runs):
    at = new_app().run().switch_page(nav.TRAIN.path).run()
    assert not at.exception and not at.error
    assert at.button(key="start_training").disabled
    assert NO_PHOTOS in shown_text(at)
    assert any(link.label == "Upload photos" for link in at.get("page_link"))

    # With photos it is on, and the sentence is gone.
    at.switch_page(nav.UPLOAD.path).run()
    at.button(key="load_sample").click().run()
    at.switch_page(nav.TRAIN.path).run()
    assert at.button(key="start_training").disabled is False
    assert NO_PHOTOS not in shown_text(at) and "Start is off" not in shown_text(at)
    assert f"Settings: {state.DEFAULT_PRESET} preset · " in shown_text(at)  # the default preset, whichever it is

