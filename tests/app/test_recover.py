"""A training cut off by a server stop is recovered from the Past runs page, not lost."""

from __future__ import annotations

import pytest
from conftest import new_app, shown_text

from ui import nav, state, workspace


def test_an_interrupted_run_is_offered_for_recovery_and_becomes_usable(isolated_runs, monkeypatch):
    import keras

    from quasar_core import runs, sample
    from quasar_core.config import TrainConfig
    from ui import resources

    workspace_id = workspace.new_id()
    folder = isolated_runs / workspace_id / "20260101-120000-abcdef01"
    config = TrainConfig(image_size=32, epochs=2, weights="none")

    def server_dies(self, *args, **kwargs):  # the process stops just before the model is written
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save", server_dies)
        with pytest.raises(KeyboardInterrupt):
            runs.train_run(sample.load_sample(), config, folder, base=resources.shared_base("none"))
    runs.write_json(folder / "status.json", {**runs.read_json(folder / "status.json"), "state": "running"})

    at = new_app({"workspace": workspace_id}).run()
    at.switch_page(nav.RUNS.path).run()
    assert not at.exception
    assert "Interrupted" in shown_text(at)
    recover = at.button(key=f"recover_{folder.name}")
    recover.click().run()
    assert not at.exception and not at.error
    run = at.session_state[state.RUN_KEY]
    assert run.has_model and run.state == "interrupted" and len(run.history) == 2

    at.switch_page(nav.RUNS.path).run()
    assert "Recovered after an interruption" in shown_text(at)
    assert at.button(key=f"reopen_{folder.name}").disabled  # it is the current run now
