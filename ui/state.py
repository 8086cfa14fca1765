"""The one owner of ``st.session_state``: everything a browser session keeps, typed.

Pages and helpers read and write session values only through these functions, so each
value has one key, one type and one place where it is explained. Widget values are the
exception Streamlit imposes (a widget's ``key`` is a session-state key); the few places
that must set a widget's value do it through ``init_widget_values``/``set_widget_values``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

if TYPE_CHECKING:  # only for annotations: importing these at run time is cheap but not needed
    from quasar_core.config import TrainConfig
    from quasar_core.data import Dataset
    from quasar_core.runs import Run

_PREFIX = "quasar."
WORKSPACE_ID_KEY = _PREFIX + "workspace_id"
DATASET_KEY = _PREFIX + "dataset"
PRESET_KEY = _PREFIX + "preset"
CONFIG_KEY = _PREFIX + "config"
JOB_ID_KEY = _PREFIX + "job_id"
ADOPTED_JOB_KEY = _PREFIX + "adopted_job_id"
RUN_KEY = _PREFIX + "current_run"
AUTOSTART_KEY = _PREFIX + "autostart"
REOPEN_DISMISSED_KEY = _PREFIX + "reopen_offer_dismissed"
REATTACHED_KEY = _PREFIX + "reattached_job"
CLASS_ROWS_KEY = _PREFIX + "class_rows"
COMPARISON_JOB_KEY = _PREFIX + "comparison_job_id"
GRAD_CAMS_KEY = _PREFIX + "grad_cams"
EXPORTS_KEY = _PREFIX + "exports"

DEFAULT_PRESET = "Quick look"
DEFAULT_CLASS_ROWS = 2
MAX_GRAD_CAMS = 120  # overlays kept per session (each a few hundred KB at most)


# --- workspace ----------------------------------------------------------------------------------
def workspace_id() -> str | None:
    """This session's workspace id (validated hex token), None before the first run sets it."""
    return st.session_state.get(WORKSPACE_ID_KEY)


def set_workspace_id(value: str) -> None:
    st.session_state[WORKSPACE_ID_KEY] = value


# --- data and settings --------------------------------------------------------------------------
def dataset() -> "Dataset | None":
    """The loaded photos (decoded, in memory), or None until the user loads some."""
    return st.session_state.get(DATASET_KEY)


def set_dataset(value: "Dataset | None") -> None:
    st.session_state[DATASET_KEY] = value


def preset() -> str:
    """Name of the preset the settings started from (a key of planning.PRESETS)."""
    return st.session_state.get(PRESET_KEY, DEFAULT_PRESET)


def set_preset(name: str) -> None:
    st.session_state[PRESET_KEY] = name


def config() -> "TrainConfig | None":
    """The chosen training settings, or None until chosen (Configure page or sample shortcut)."""
    return st.session_state.get(CONFIG_KEY)


def set_config(value: "TrainConfig") -> None:
    st.session_state[CONFIG_KEY] = value


# --- training job and runs ----------------------------------------------------------------------
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
    """Id of this session's latest comparison job (transfer vs from scratch) in jobs.default_queue()."""
    return st.session_state.get(COMPARISON_JOB_KEY)


def set_comparison_job_id(value: str | None) -> None:
    st.session_state[COMPARISON_JOB_KEY] = value


# --- explanations and exports of a run --------------------------------------------------------------
def grad_cam(key: tuple) -> "Any | None":
    """A Grad-CAM result computed earlier in this session: key is (run folder, image id, class)."""
    return st.session_state.get(GRAD_CAMS_KEY, {}).get(key)


def remember_grad_cam(key: tuple, value: Any) -> None:
    """Keep a Grad-CAM result; the oldest are dropped beyond MAX_GRAD_CAMS."""
    cache = st.session_state.setdefault(GRAD_CAMS_KEY, {})
    cache[key] = value
    while len(cache) > MAX_GRAD_CAMS:
        cache.pop(next(iter(cache)))


def prepared_export(run_path: str, format: str) -> "Any | None":
    """A checked export (ui.predicting.PreparedExport) of this run in this format, if one was made."""
    return st.session_state.get(EXPORTS_KEY, {}).get((run_path, format))


def set_prepared_export(run_path: str, format: str, value: Any) -> None:
    """Keep a checked export; exports of other runs are dropped (they can be large)."""
    kept = {key: item for key, item in st.session_state.get(EXPORTS_KEY, {}).items() if key[0] == run_path}
    kept[(run_path, format)] = value
    st.session_state[EXPORTS_KEY] = kept


# --- upload form ----------------------------------------------------------------------------------
def class_rows() -> int:
    """How many class rows the 'photos per class' form shows."""
    return int(st.session_state.get(CLASS_ROWS_KEY, DEFAULT_CLASS_ROWS))


def add_class_row() -> None:
    st.session_state[CLASS_ROWS_KEY] = class_rows() + 1


# --- widget values --------------------------------------------------------------------------------
def init_widget_values(values: dict[str, Any]) -> None:
    """Give widgets their starting values, leaving the ones the user has already set alone.

    Widgets are then created without ``value=``, so Streamlit never sees two defaults.
    """
    for key, value in values.items():
        if key not in st.session_state:
            st.session_state[key] = value


def set_widget_values(values: dict[str, Any]) -> None:
    """Overwrite widget values (from an on_change callback, before the widgets are drawn)."""
    for key, value in values.items():
        st.session_state[key] = value


def widget_value(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)
