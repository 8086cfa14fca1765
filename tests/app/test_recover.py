"""A fine-tuning cut off by a server stop is recovered from the Past runs page, not lost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.app.support import new_app, shown_text, weights_choice

from ui import nav, state, workspace


def dead_pid() -> int:
    """The id of a process that has ended (what status.json holds after the server was killed)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_an_interrupted_run_is_offered_for_recovery_and_becomes_usable(isolated_runs, monkeypatch):
    from quasar_core import sample, training
    from quasar_core.config import TrainConfig
    from quasar_core.runs import pipeline
    from ui import resources

    workspace_id = workspace.new_id()
    folder = isolated_runs / workspace_id / "20260101-120000-abcdef01"
    config = TrainConfig(image_size=32, weights=weights_choice(), mode="fine-tune", fine_tune_epochs=1)
    photos = sample.load_sample()
    photos = photos.subset([i for i, s in enumerate(photos.samples) if s.label in ("Bag", "Trouser")])

    def server_dies(*args, **kwargs):  # the process stops right after the kept model's last epoch
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(training, "fit_temperature", server_dies)
        patch.setattr(pipeline, "_fail", lambda writer, message: None)  # a killed process writes nothing more
        with pytest.raises(KeyboardInterrupt):
            pipeline.train_run(photos, config, folder, base_loader=resources.base_loader(config.weights))
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "running" and (folder / "checkpoint" / "checkpoint.json").is_file()
    (folder / "status.json").write_text(json.dumps({**status, "pid": dead_pid()}))

    at = new_app({"workspace": workspace_id}).run()
    at.switch_page(nav.RUNS.path).run()
    assert not at.exception
    words = shown_text(at)
    assert "Interrupted" in words
    assert "The training stopped while fine-tuning VGG16's top layers: the server or the program was stopped" in words
    recover = at.button(key=f"recover_{folder.name}")
    recover.click().run()
    assert not at.exception and not at.error
    run = at.session_state[state.RUN_KEY]
    assert run.has_model and run.state == "interrupted"
    tuned = [row for row in run.history if row.get("phase") == "fine-tune"]
    assert tuned and (folder / "tuned.npz").is_file() and not (folder / "checkpoint").exists()

    at.switch_page(nav.RUNS.path).run()
    assert "Training was cut off after 1 fine-tuning epoch; the model from the last finished epoch was recovered" \
        in shown_text(at)
    assert at.button(key=f"reopen_{folder.name}").disabled  # it is the current run now

    # It stopped before it was measured: Evaluate says so (it was not opened from a file), Predict uses it.
    at.switch_page(nav.EVALUATE.path).run()
    assert not at.exception and not at.error
    assert "This model has no evaluation: its training stopped before the model was measured." in shown_text(at)
    assert "opened from a file" not in shown_text(at)
