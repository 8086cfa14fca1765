"""The Check my photos page's support: the photo check's result and the user's decisions about photos.

The check runs as a job (jobs.CheckJob) and writes its result into the workspace; decisions
(move a photo to another class, leave it out, keep it) are recorded in the workspace too and
applied to the photos the next training uses. The uploaded files are never changed, and every
decision can be undone.
"""

from __future__ import annotations

from quasar_core.photo_check import PhotoCheck
from quasar_core.workspace import Decision
from ui import state, workspace


def result() -> PhotoCheck | None:
    """The photo check of the photos loaded now (from the workspace, so a reload keeps it)."""
    data = workspace.current().check()
    if not data:
        return None
    try:
        return PhotoCheck.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None


def original_dataset():
    """The photos as loaded, before any decision (thumbnails and names come from these)."""
    return workspace.current().dataset()


def index_of(dataset, name: str) -> int | None:
    for index, sample in enumerate(dataset.samples):
        if sample.name == name:
            return index
    return None


def decisions() -> dict[str, Decision]:
    return {d.file: d for d in workspace.current().decisions()}


def decide(file: str, action: str, to: str | None = None) -> None:
    """on_click of Move / Remove / Keep."""
    workspace.current().decide(Decision(file, action, to))
    _apply()


def undo(file: str) -> None:
    workspace.current().undo(file)
    _apply()


def undo_all() -> None:
    workspace.current().clear_decisions()
    _apply()


def _apply() -> None:
    from quasar_core.errors import QuasarError

    try:
        workspace.apply_decisions()
    except QuasarError as exc:  # e.g. every photo of a class moved away: the decision is taken back
        state.set_notice(f"{exc} The last change was undone.")
        undo_last()


def undo_last() -> None:
    here = workspace.current()
    made = here.decisions()
    if made:
        here.undo(made[-1].file)
    workspace.apply_decisions()
