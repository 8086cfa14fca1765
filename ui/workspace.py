"""Workspaces: each browser session's private runs folder, named by a random id in the URL.

The id lives in the URL (``?workspace=<hex>``) so a refresh, which starts a new Streamlit
session, finds the same runs and the same running job. It is a 128-bit random token, and
only a token of exactly that shape is accepted from the URL, so it can never name a path
outside the runs root and a session cannot guess another's.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import streamlit as st

from quasar_core import jobs, runs
from ui import state

QUERY_PARAM = "workspace"
_ID_PATTERN = re.compile(r"[0-9a-f]{32}")


def new_id() -> str:
    return secrets.token_hex(16)


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


def runs_root(workspace_id: str) -> Path:
    """The workspace's runs folder: <runs root>/<id> (QUASAR_RUNS_DIR overrides the root)."""
    if not is_valid_id(workspace_id):
        raise ValueError(f"Not a workspace id: {workspace_id!r}.")
    root = runs.default_runs_root()
    path = (root / workspace_id).resolve()
    if path.parent != root.resolve():  # belt and braces: the pattern already rules this out
        raise ValueError(f"Workspace {workspace_id!r} would lie outside {str(root)!r}.")
    return path


def current_id() -> str:
    """This session's workspace id (set by ``sync`` at the start of every run)."""
    workspace_id = state.workspace_id()
    if workspace_id is None:
        raise RuntimeError("ui.workspace.sync() must run before the page (app.py calls it).")
    return workspace_id


def current_runs_root() -> Path:
    return runs_root(current_id())


def url_params() -> dict[str, str]:
    """Query params to carry on every st.switch_page / st.page_link (they are cleared otherwise)."""
    return {QUERY_PARAM: current_id()}


def sync() -> str:
    """Adopt or create the workspace id, keep it in the URL, and re-attach to a running job.

    Called by app.py on every run, before the page: st.switch_page clears query params
    unless given them, and sidebar navigation may drop them, so the URL is re-set each time.
    """
    workspace_id = state.workspace_id()
    if workspace_id is None:  # a new session: first load, refresh, or a shared link
        from_url = st.query_params.get(QUERY_PARAM)
        workspace_id = from_url if is_valid_id(from_url) else new_id()
        state.set_workspace_id(workspace_id)
        _reattach_running_jobs(workspace_id)
    if st.query_params.get(QUERY_PARAM) != workspace_id:
        st.query_params[QUERY_PARAM] = workspace_id
    return workspace_id


def _reattach_running_jobs(workspace_id: str) -> None:
    """Find the workspace's unfinished training (for Train) and comparison (for Compare) again."""
    queue = jobs.default_queue()
    job = queue.latest_for(workspace_id, kind=jobs.TrainingJob)
    if job is not None and not job.finished:
        state.set_job_id(job.job_id)
        state.set_reattached_job(True)
    comparison = queue.latest_for(workspace_id, kind=jobs.ComparisonJob)
    if comparison is not None and not comparison.finished:
        state.set_comparison_job_id(comparison.job_id)
