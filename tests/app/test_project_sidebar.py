"""Save project / Open project in the sidebar (ui.project): a workspace saved from one session opens in another's
empty workspace with its photos, decisions, settings, runs and current model; a hostile file is refused there with
nothing changed."""

from __future__ import annotations

import io
import json
import zipfile

from streamlit.testing.v1 import AppTest

from tests import hostile
from tests.app.support import SCRIPT_TIMEOUT, new_app, shown_text, write_fake_run

from quasar_core import sample
from quasar_core.config import TrainConfig
from quasar_core.workspace import Decision, Workspace
from ui import project, state, workspace


def saved_workspace(runs_root) -> tuple[str, Workspace, str]:
    """(id, workspace, current run's name): the sample photos, two decisions, chosen settings and two runs."""
    workspace_id = workspace.new_id()
    space = Workspace(runs_root / workspace_id, workspace_id=workspace_id)
    dataset = sample.load_sample()
    space.keep_dataset(dataset)
    space.keep_settings("Balanced", TrainConfig(image_size=48, weights="none"), chosen=True)
    space.decide(Decision(dataset.samples[0].name, "remove"))
    space.decide(Decision(dataset.samples[1].name, "move", dataset.labels[-1]))
    write_fake_run(space.root / "20260101-100000-aaaaaaaa", labels=dataset.labels, accuracy=0.7)
    current = write_fake_run(space.root / "20260102-100000-bbbbbbbb", labels=dataset.labels, accuracy=0.9)
    return workspace_id, space, current.name


# AppTest reruns only the page after the first run (not app.py, which draws the sidebar), so the sidebar's
# section is driven here on its own, as app.py calls it: after the workspace is synced.
SIDEBAR_SCRIPT = """
from ui import project, workspace

workspace.sync()
project.sidebar_section()
"""


def sidebar_app(workspace_id: str) -> AppTest:
    at = AppTest.from_string(SIDEBAR_SCRIPT, default_timeout=SCRIPT_TIMEOUT)
    at.query_params["workspace"] = workspace_id
    return at.run()


def open_in(at, name: str, content: bytes):
    """Choose the file in the sidebar's Open project, then confirm."""
    opened_before = at.session_state[state.PROJECT_ROUND_KEY] if state.PROJECT_ROUND_KEY in at.session_state else 0
    at.file_uploader(key=f"open_project_upload_{opened_before}").set_value((name, content, "application/zip")).run()
    return at.button(key="open_project").click().run()


def test_saving_in_one_workspace_and_opening_in_another_restores_everything(isolated_runs):
    first_id, first, current = saved_workspace(isolated_runs)
    at = new_app({"workspace": first_id}).run()  # the whole app: the sidebar offers both, on every page
    assert not at.exception
    [save] = at.get("download_button")
    assert save.label == "Save project" and not save.disabled
    assert at.file_uploader(key="open_project_upload_0").label == "Open project"
    data = project.project_file(first.root, False, current)  # what the button downloads when clicked

    second_id = workspace.new_id()
    at = sidebar_app(second_id)
    [save] = at.get("download_button")
    assert save.disabled  # an empty workspace has nothing to save
    at = open_in(at, "my-project.zip", data)
    assert not at.exception and not at.error
    assert "Opened 'my-project.zip'" in shown_text(at) and "300 photos" in shown_text(at)
    second = Workspace(isolated_runs / second_id, workspace_id=second_id)
    assert second.decisions() == first.decisions() and second.settings() == first.settings()
    assert [s.name for s in at.session_state[state.DATASET_KEY].samples] == \
           [s.name for s in first.effective_dataset().samples]
    assert at.session_state[state.CONFIG_KEY] == TrainConfig(image_size=48, weights="none")
    assert at.session_state[state.PRESET_KEY] == "Balanced" and at.session_state[state.CHOSEN_KEY]
    run = at.session_state[state.RUN_KEY]
    assert run.path == isolated_runs / second_id / current and run.metrics.accuracy == 0.9
    assert sorted(r.name for r in second.runs()) == sorted(r.name for r in first.runs())
    assert at.file_uploader(key="open_project_upload_1").value is None  # the opened file is not offered again

    at.run()  # the notice was shown once
    assert "Opened 'my-project.zip'" not in shown_text(at)


def test_a_hostile_project_is_refused_in_the_sidebar_and_nothing_changes(isolated_runs):
    first_id, first, current = saved_workspace(isolated_runs)
    data = project.project_file(first.root, True, current)
    members = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            members[name] = archive.read(name)
    manifest = json.loads(members["manifest.json"])
    newer = hostile.zip_bytes({**members, "manifest.json": json.dumps({**manifest, "version": 99}).encode()})
    slip = hostile.zip_bytes({**members, "../../outside.json": b"{}"})

    second_id = workspace.new_id()
    at = sidebar_app(second_id)
    for name, content, words in (("newer.zip", newer, "newer Quasar Nexus"), ("slip.zip", slip, "points outside")):
        at = open_in(at, name, content)
        assert not at.exception
        [error] = [e.value for e in at.error]
        assert error.startswith(f"'{name}' was not opened: ") and words in error
        assert "Nothing in this workspace was changed." in error
        second = isolated_runs / second_id
        assert not second.exists() or not any(second.iterdir())
        assert at.session_state[state.DATASET_KEY] is None
        assert state.RUN_KEY not in at.session_state or at.session_state[state.RUN_KEY] is None
