"""Save project / Open project in the sidebar: the workspace in one file, to take home and bring back.

A hosted server's disk is not the user's (Community Cloud wipes it on a reboot, a sleep or a
redeploy), so every page offers the project file (quasar_core.project). Saving builds the zip
only when the download is asked for; opening restores the file into this workspace after a
confirmation, then the session takes in what the workspace now holds, as after a reload.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import streamlit as st

from quasar_core.errors import QuasarError
from quasar_core.project import ProjectOpened, open_project, project_bytes
from quasar_core.runs.folder import FILES, Run
from quasar_core.workspace import FOLDER
from ui import comparing, job_control, state, workspace


def sidebar_section() -> None:
    """In the sidebar of every page, under the pages (app.py draws it after ui.nav.sidebar)."""
    with st.sidebar:
        with st.expander("Save or open your project", icon=":material/save:"):
            st.caption("Your photos, decisions, settings and models are kept on this server only while it keeps "
                       "its disk; a hosted app loses it when it restarts or sleeps. Save the project to your "
                       "computer, and open it here again to carry on.")
            _save()
            _open()
        notice = state.take_project_notice()
        if notice:
            st.success(notice)


def project_file(root: Path, leave_photos_out: bool, current_run: str | None) -> bytes:
    """The zip the Save project button downloads (called when it is clicked, outside the script run)."""
    return project_bytes(root, features_only=leave_photos_out, current_run=current_run)


def _save() -> None:
    here = workspace.current()
    leave_out = st.checkbox("Leave the photos out (a smaller file)", key="project_leave_photos_out",
                            help="Keeps what the model saw in each photo, so you can train again, but the photos "
                                 "themselves cannot be shown after opening it.")
    run = state.current_run()
    has_work = _has_work(here.root)
    st.download_button("Save project", key="save_project", icon=":material/download:", on_click="ignore",
                       data=functools.partial(project_file, here.root, leave_out, run.name if run else None),
                       file_name=f"quasar-project-{time.strftime('%Y-%m-%d')}.zip", mime="application/zip",
                       disabled=not has_work,
                       help=None if has_work else "Nothing to save yet: load photos or train a model first.")


def _has_work(root: Path) -> bool:
    """Photos or a run on disk (a quick look: the sidebar is drawn on every rerun)."""
    if (root / FOLDER / "dataset.json").is_file():
        return True
    return root.is_dir() and any((child / FILES.CONFIG).is_file() for child in root.iterdir())


def _open() -> None:
    upload = st.file_uploader("Open project", type=["zip"], key=f"open_project_upload_{state.project_upload_round()}",
                              help="A file saved with Save project.")
    if upload is None:
        return
    busy = any(job_control.is_active(job) for job in (job_control.current_job(), job_control.current_check(),
                                                        comparing.current_job()))
    st.warning("Opening it replaces the photos, the photo check and the settings here with the project's. "
               "Your models stay, beside the project's.")
    if st.button("Open it here", key="open_project", type="primary", disabled=busy,
                 help="Wait until your training, comparison or photo check ends." if busy else None):
        try:
            with st.spinner(f"Checking and opening {upload.name}…"):
                opened = open_project(upload.getvalue(), workspace.current_runs_root(), name=upload.name)
        except QuasarError as exc:
            st.error(str(exc))
        else:
            _take_in(opened)
            state.set_project_notice(opened.words())
            state.next_project_upload_round()
            st.rerun()


def _take_in(opened: ProjectOpened) -> None:
    """The session takes in what the workspace now holds (the same restoring a reload does)."""
    from quasar_core.runs.learned import forget

    here = workspace.current()
    for name in opened.runs:  # a run of the same name was replaced: its model is no longer the one in memory
        forget(here.root / name)
    workspace._restore(here)  # what a new session (a reload) does: photos, settings, latest model
    if here.settings() is None:
        state.set_config(None)
        state.set_settings_chosen(False)
    state.set_check_report(None)
    if opened.current_run is not None:
        state.set_current_run(Run.open(opened.current_run))
