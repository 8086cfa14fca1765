"""The one owner of ``st.session_state``: everything a browser session keeps, typed.

Pages and helpers read and write session values only through these functions, so each
value has one key, one type and one place where it is explained. What a user makes (photos,
settings, the photo check's decisions, runs) is also on disk in their workspace
(quasar_core.workspace), so a new session on the same ``?workspace=`` address gets it back;
the session holds the working copies. Widget values are the exception Streamlit imposes (a
widget's ``key`` is a session-state key); the few places that must set a widget's value do it
through ``init_widget_values``/``set_widget_values``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import streamlit as st

from quasar_core.presets import DEFAULT

if TYPE_CHECKING:  # only for annotations
    from quasar_core.config import TrainConfig
    from quasar_core.data import Dataset
    from quasar_core.photo_findings import Findings
    from quasar_core.runs.folder import Run

_PREFIX = "quasar."
WORKSPACE_ID_KEY = _PREFIX + "workspace_id"
DATASET_KEY = _PREFIX + "dataset"
PRESET_KEY = _PREFIX + "preset"
CONFIG_KEY = _PREFIX + "config"
CHOSEN_KEY = _PREFIX + "settings_chosen"
JOB_ID_KEY = _PREFIX + "job_id"
ADOPTED_JOB_KEY = _PREFIX + "adopted_job_id"
RUN_KEY = _PREFIX + "current_run"
AUTOSTART_KEY = _PREFIX + "autostart"
REOPEN_DISMISSED_KEY = _PREFIX + "reopen_offer_dismissed"
REATTACHED_KEY = _PREFIX + "reattached_job"
CLASS_ROWS_KEY = _PREFIX + "class_rows"
COMPARISON_JOB_KEY = _PREFIX + "comparison_job_id"
CHECK_JOB_KEY = _PREFIX + "check_job_id"
CHECK_REPORT_KEY = _PREFIX + "check_report"
UPLOAD_JOB_KEY = _PREFIX + "upload_job_id"
GRAD_CAMS_KEY = _PREFIX + "grad_cams"
EXPORTS_KEY = _PREFIX + "exports"
NOTICE_KEY = _PREFIX + "notice"
PROJECT_ROUND_KEY = _PREFIX + "project_upload_round"
PROJECT_NOTICE_KEY = _PREFIX + "project_notice"

DEFAULT_PRESET = DEFAULT.name  # the same default as `quasar train` without flags
DEFAULT_CLASS_ROWS = 2
MAX_GRAD_CAMS = 48  # overlays kept per session (each at most ~100 KB)


# --- workspace ----------------------------------------------------------------------------------
def workspace_id() -> str | None:
    """This session's workspace id (validated hex token), None before ui.workspace.sync sets it."""
    return st.session_state.get(WORKSPACE_ID_KEY)


def set_workspace_id(value: str) -> None:
    st.session_state[WORKSPACE_ID_KEY] = value


# --- data and settings --------------------------------------------------------------------------
def dataset() -> "Dataset | None":
    """The photos to train on (the photo check's decisions applied), or None until some are loaded."""
    return st.session_state.get(DATASET_KEY)


def set_dataset(value: "Dataset | None") -> None:
    st.session_state[DATASET_KEY] = value


def preset() -> str:
    """Name of the preset the settings started from (a Preset.name of quasar_core.presets)."""
    return st.session_state.get(PRESET_KEY, DEFAULT_PRESET)


def set_preset(name: str) -> None:
    st.session_state[PRESET_KEY] = name


def config() -> "TrainConfig | None":
    """The training settings (the preset's, or the user's), or None until there are photos to size them for."""
    return st.session_state.get(CONFIG_KEY)


def set_config(value: "TrainConfig | None") -> None:
    st.session_state[CONFIG_KEY] = value


def settings_chosen() -> bool:
    """Whether the user chose the settings (on Configure, or by the sample shortcut), not just defaults."""
    return bool(st.session_state.get(CHOSEN_KEY, False))


def set_settings_chosen(value: bool) -> None:
    st.session_state[CHOSEN_KEY] = value


# --- jobs and runs ------------------------------------------------------------------------------
def job_id() -> str | None:
    """Id of this session's latest training job in jobs.default_queue(), if any."""
    return st.session_state.get(JOB_ID_KEY)


def set_job_id(value: str | None) -> None:
    st.session_state[JOB_ID_KEY] = value


def adopted_job_id() -> str | None:
    """The finished job whose run has already been made the current run (so it happens once)."""
    return st.session_state.get(ADOPTED_JOB_KEY)


def set_adopted_job_id(value: str | None) -> None:
    st.session_state[ADOPTED_JOB_KEY] = value


def current_run() -> "Run | None":
    """The run being looked at (evaluated, used to predict), or None."""
    return st.session_state.get(RUN_KEY)


def set_current_run(value: "Run | None") -> None:
    if value is None or current_run() is None or current_run().path != value.path:
        st.session_state.pop(EXPORTS_KEY, None)  # exports of another run: large, and no longer wanted
    st.session_state[RUN_KEY] = value


def request_autostart() -> None:
    """Ask the Train page to start training as soon as it opens (the sample shortcut)."""
    st.session_state[AUTOSTART_KEY] = True


def take_autostart() -> bool:
    """True once after request_autostart()."""
    return bool(st.session_state.pop(AUTOSTART_KEY, False))


def reopen_offer_dismissed() -> bool:
    return bool(st.session_state.get(REOPEN_DISMISSED_KEY, False))


def dismiss_reopen_offer() -> None:
    st.session_state[REOPEN_DISMISSED_KEY] = True


def reattached_job() -> bool:
    """True when this session found its workspace's job still running (after a refresh)."""
    return bool(st.session_state.get(REATTACHED_KEY, False))


def set_reattached_job(value: bool) -> None:
    st.session_state[REATTACHED_KEY] = value


def comparison_job_id() -> str | None:
    """Id of this session's latest comparison job (transfer vs from scratch)."""
    return st.session_state.get(COMPARISON_JOB_KEY)


def set_comparison_job_id(value: str | None) -> None:
    st.session_state[COMPARISON_JOB_KEY] = value


def check_job_id() -> str | None:
    """Id of this session's latest photo check job."""
    return st.session_state.get(CHECK_JOB_KEY)


def set_check_job_id(value: str | None) -> None:
    st.session_state[CHECK_JOB_KEY] = value


def upload_job_id() -> str | None:
    """Id of this session's latest upload check job (every photo decoded and checked, in the background)."""
    return st.session_state.get(UPLOAD_JOB_KEY)


def set_upload_job_id(value: str | None) -> None:
    st.session_state[UPLOAD_JOB_KEY] = value


def check_report() -> "Findings | None":
    """What the photo check found for the photos loaded now (None until it ran)."""
    return st.session_state.get(CHECK_REPORT_KEY)


def set_check_report(value: "Findings | None") -> None:
    st.session_state[CHECK_REPORT_KEY] = value


# --- explanations and exports of a run --------------------------------------------------------------
def grad_cam(key: tuple) -> "Any | None":
    """A Grad-CAM result computed earlier in this session: key is (run folder, photo id, class)."""
    return st.session_state.get(GRAD_CAMS_KEY, {}).get(key)


def remember_grad_cam(key: tuple, value: Any) -> None:
    """Keep a Grad-CAM result; the least recently stored are dropped beyond MAX_GRAD_CAMS."""
    cache = st.session_state.setdefault(GRAD_CAMS_KEY, OrderedDict())
    cache[key] = value
    while len(cache) > MAX_GRAD_CAMS:
        cache.pop(next(iter(cache)))


def prepared_export(run_path: str, format: str) -> "Any | None":
    """A checked export (ui.predicting.PreparedExport) of this run in this format, if one was made."""
    return st.session_state.get(EXPORTS_KEY, {}).get((run_path, format))


def set_prepared_export(run_path: str, format: str, value: Any) -> None:
    """Keep one checked export per format of the current run (they can be large)."""
    kept = {key: item for key, item in st.session_state.get(EXPORTS_KEY, {}).items() if key[0] == run_path}
    kept[(run_path, format)] = value
    st.session_state[EXPORTS_KEY] = kept


# --- a message for the next draw -------------------------------------------------------------------
def set_notice(text: str) -> None:
    """A message a button's callback leaves for the page to show once (callbacks cannot draw)."""
    st.session_state[NOTICE_KEY] = text


def take_notice() -> str | None:
    return st.session_state.pop(NOTICE_KEY, None)


# --- the project file (sidebar) ---------------------------------------------------------------------
def project_upload_round() -> int:
    """How many project files this session opened: the Open project uploader's key changes with it, so a
    file already opened is not offered again."""
    return int(st.session_state.get(PROJECT_ROUND_KEY, 0))


def next_project_upload_round() -> None:
    st.session_state[PROJECT_ROUND_KEY] = project_upload_round() + 1


def set_project_notice(text: str) -> None:
    """What opening a project restored, shown once in the sidebar after the rerun that follows."""
    st.session_state[PROJECT_NOTICE_KEY] = text


def take_project_notice() -> str | None:
    return st.session_state.pop(PROJECT_NOTICE_KEY, None)


# --- upload form ----------------------------------------------------------------------------------
def class_rows() -> int:
    """How many class rows the 'photos per class' form shows."""
    return int(st.session_state.get(CLASS_ROWS_KEY, DEFAULT_CLASS_ROWS))


def add_class_row() -> None:
    st.session_state[CLASS_ROWS_KEY] = class_rows() + 1


# --- widget values --------------------------------------------------------------------------------
def init_widget_values(values: dict[str, Any]) -> None:
    """Give widgets their starting values, leaving the ones the user has already set alone."""
    for key, value in values.items():
        if key not in st.session_state:
            st.session_state[key] = value


def set_widget_values(values: dict[str, Any]) -> None:
    """Overwrite widget values (from an on_change callback, before the widgets are drawn)."""
    for key, value in values.items():
        st.session_state[key] = value


def widget_value(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)
