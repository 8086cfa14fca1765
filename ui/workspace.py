"""Workspaces: each browser session's private folder (photos, settings, runs), named by a random id in the URL.

The id lives in the URL (``?workspace=<hex>``) so a reload, which starts a new Streamlit
session, finds the same photos, settings, runs and running job: ``sync`` restores them from
disk (quasar_core.workspace) when a session starts. The id is a 128-bit random token, and only
a token of exactly that shape is accepted from the URL, so it can never name a path outside
the runs root and a session cannot guess another's.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import streamlit as st

from quasar_core import jobs
from quasar_core.errors import QuasarError
from quasar_core.presets import BY_NAME, preset_named
from quasar_core.runs.folder import default_runs_root
from quasar_core.workspace import Workspace
from ui import state

QUERY_PARAM = "workspace"
_ID_PATTERN = re.compile(r"[0-9a-f]{32}")


def new_id() -> str:
    return secrets.token_hex(16)


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


def runs_root(workspace_id: str) -> Path:
    """The workspace's folder: <runs root>/<id> (QUASAR_RUNS_DIR moves the root)."""
    if not is_valid_id(workspace_id):
        raise ValueError(f"Not a workspace id: {workspace_id!r}.")
    root = default_runs_root()
    path = (root / workspace_id).resolve()
    if path.parent != root.resolve():  # belt and braces: the pattern already rules this out
        raise ValueError(f"Workspace {workspace_id!r} would lie outside {str(root)!r}.")
    return path


def current_id() -> str:
    workspace_id = state.workspace_id()
    if workspace_id is None:
        raise RuntimeError("ui.workspace.sync() must run before the page (app.py calls it).")
    return workspace_id


def current_runs_root() -> Path:
    return runs_root(current_id())


def current() -> Workspace:
    return Workspace(current_runs_root(), workspace_id=current_id())


def url_params() -> dict[str, str]:
    """Query params to carry on every st.switch_page / st.page_link (they are cleared otherwise)."""
    return {QUERY_PARAM: current_id()}


def sync() -> str:
    """Adopt or create the workspace id, keep it in the URL, and restore what the workspace holds.

    Called by app.py on every run, before the page: st.switch_page clears query params unless
    given them, and sidebar navigation may drop them, so the URL is re-set each time.
    """
    workspace_id = state.workspace_id()
    if workspace_id is None:  # a new session: first load, reload, restart, or a bookmarked link
        from_url = st.query_params.get(QUERY_PARAM)
        workspace_id = from_url if is_valid_id(from_url) else new_id()
        state.set_workspace_id(workspace_id)
        _restore(current())
        _reattach_running_jobs(workspace_id)
    if st.query_params.get(QUERY_PARAM) != workspace_id:
        st.query_params[QUERY_PARAM] = workspace_id
    return workspace_id


def _restore(workspace: Workspace) -> None:
    try:
        state.set_dataset(workspace.effective_dataset())
    except QuasarError:
        state.set_dataset(workspace.dataset())
    settings = workspace.settings()
    if settings is not None:
        preset, config, chosen = settings
        state.set_preset(preset if preset in BY_NAME else state.DEFAULT_PRESET)
        state.set_config(config)
        state.set_settings_chosen(chosen)
    latest = latest_model(workspace)
    if latest is not None:  # a reopened workspace opens on its latest model, without a click
        state.set_current_run(latest)


def latest_model(workspace: Workspace):
    """The workspace's newest run that finished with a model (else its newest usable model; None if none)."""
    usable = [run for run in workspace.runs() if run.has_model]
    return next((run for run in usable if run.state == "done"), usable[0] if usable else None)


def _reattach_running_jobs(workspace_id: str) -> None:
    """Find the workspace's unfinished training, comparison and photo check again."""
    queue = jobs.default_queue()
    job = queue.latest_for(workspace_id, kind=jobs.TrainingJob)
    if job is not None and not job.finished:
        state.set_job_id(job.job_id)
        state.set_reattached_job(True)
    for kind, setter in ((jobs.ComparisonJob, state.set_comparison_job_id), (jobs.CheckJob, state.set_check_job_id)):
        found = queue.latest_for(workspace_id, kind=kind)
        if found is not None and not found.finished:
            setter(found.job_id)


# --- photos and settings, kept on disk as well as in the session -------------------------------------
def keep_photos(dataset, *, photos_folder: Path | None = None) -> None:
    """New photos were checked: keep them in the workspace and size the settings for them."""
    workspace = current()
    workspace.keep_dataset(dataset, photos_folder=photos_folder)
    state.set_dataset(dataset)
    state.set_check_report(None)
    preset = preset_named(state.preset())
    config = state.config()
    if config is None or not state.settings_chosen():
        state.set_config(preset.config(dataset))
    elif preset.key != "best":  # chosen settings keep their details; the size follows the photos
        state.set_config(config.replace(image_size=preset.config(dataset).image_size))
    keep_settings()


def keep_settings() -> None:
    if state.config() is not None:
        current().keep_settings(state.preset(), state.config(), chosen=state.settings_chosen())


def apply_decisions() -> None:
    """The photo check's decisions changed: the photos to train on change with them."""
    workspace = current()
    state.set_dataset(workspace.effective_dataset())
