"""The Label more page's support: the photos to label, the round being labelled, the person's decisions.

A round's model learns from the photos labelled before it (the uploaded ones, plus label assist's labels of
the earlier rounds), so the twenty photos it asks about stay the same while the person answers them, after a
reload too: everything is rebuilt from the workspace (quasar_core.workspace: the photos to label, the
decisions, the rounds) and cached per server. Decisions join the photos the next training learns from
(Workspace.effective_dataset); the uploaded files are never changed and every decision can be undone.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import streamlit as st

from quasar_core.data.records import DataReport, Dataset
from quasar_core.label_assist import DEFAULT_COUNT, Suggestions, labelling_round, photo_features
from quasar_core.label_assist.strategy import DEFAULT_POOL_FACTOR
from quasar_core.progress import TrainingHooks
from quasar_core.workspace import Decision
from quasar_core.wording import percent
from ui import resources, state, workspace

PRECISIONS = ("int8", "float32", "bfloat16")
COUNT, POOL_FACTOR = DEFAULT_COUNT, DEFAULT_POOL_FACTOR  # photos asked about a round; how many times more it chooses among


@dataclass
class Round:
    """The round being labelled: its number, the model's suggestions, the photos behind them."""

    number: int
    suggestions: Suggestions
    measured: dict  # the model's numbers (labelling_round's row)
    labels: list[str]
    pool: Dataset  # the photos still to label at the round's start (suggestions' positions index it)


def photos_to_label() -> Dataset | None:
    return workspace.current().unlabelled()


def decisions() -> dict[str, Decision]:
    return {d.file: d for d in workspace.current().labelling()}


def rounds() -> list[dict]:
    return workspace.current().label_rounds()


def current_number() -> int:
    """The round being labelled (1 = the first batch): one more than the rounds learned from."""
    return max(1, len(rounds()))


def why_not(run) -> str | None:
    """Why this model cannot help label (None when it can)."""
    if run is None or not run.has_model:
        return "Label assist starts from a model trained on your labelled photos."
    if run.opened_from_file or run.status.precision not in PRECISIONS:
        return "This model was opened from a file: label assist needs a model trained here on your photos."
    dataset = workspace.current().dataset()
    if dataset is None or list(dataset.labels) != list(run.labels):
        return "This model was trained on other classes than the photos loaded now: train one on these photos."
    return None


def _split(number: int):
    """(the labelled photos the round's model learns from, which of them it is tested on, photos still to label)."""
    here = workspace.current()
    made = here.labelling()
    later = {d.file for d in made if d.action == "label" and (d.round or 1) >= number}
    joined = {d.file for d in made if d.action == "label"}
    dataset = here.effective_dataset()
    keep = [i for i, s in enumerate(dataset.samples) if s.name not in later]
    learned = Dataset([dataset.samples[i] for i in keep], list(dataset.labels), dataset.report)
    tested = [s.name not in joined for s in learned.samples]  # measured on the photos labelled before label assist
    decided = {d.file for d in made if (d.round or 1) < number}
    pool = here.unlabelled() or Dataset([], [], DataReport("photos to label"))
    rest = Dataset([s for s in pool.samples if s.name not in decided], [], pool.report)
    return learned, tested, rest


def _key(run, number: int, learned: Dataset, rest: Dataset) -> str:
    data = [str(run.path), run.status.finished, number, [(s.digest, s.label) for s in learned.samples],
            [(s.digest, s.name) for s in rest.samples]]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def features_missing(run) -> bool:
    """Whether some photo has no features in the cache yet (the page then shows the pass's progress)."""
    from quasar_core.features.cache import FeatureSpec
    from quasar_core import backbone

    learned, _, rest = _split(current_number())
    spec = FeatureSpec(backbone.weights_id(run.config.weights, seed=run.config.seed), run.config.image_size,
                       run.status.precision)
    cache = workspace.current().cache()
    return not all(cache.has(s.digest, spec) for s in learned.samples + rest.samples)


def read_photos(run, on_progress) -> None:
    """Put every photo's features in the cache (VGG16 runs only for the missing ones); `on_progress(done, total)`."""
    learned, _, rest = _split(current_number())
    hooks = TrainingHooks(on_progress=lambda update: on_progress(update.step, update.total_steps))
    for dataset in (learned, rest):
        if len(dataset):
            photo_features(dataset, run.config, run.status.precision, cache=workspace.current().cache(),
                           base_loader=resources.base_loader(run.config.weights), hooks=hooks)


def current_round(run) -> Round:
    """The round being labelled (computed once per server for the same photos and decisions)."""
    number = current_number()
    learned, tested, rest = _split(number)
    found = _round(_key(run, number, learned, rest), run, number, learned, tested, rest)
    if not rounds():  # the model before any label: the chart's first point
        workspace.current().keep_label_round(_row(0, found.measured))
    return found


@st.cache_resource(max_entries=8, show_spinner="Looking at the photos to label…")
def _round(key: str, _run, number: int, _learned: Dataset, _tested: list[bool], _rest: Dataset) -> Round:
    cache = workspace.current().cache()
    load = dict(cache=cache, base_loader=resources.base_loader(_run.config.weights))
    features = photo_features(_learned, _run.config, _run.status.precision, **load)
    pool = (lambda: photo_features(_rest, _run.config, _run.status.precision, **load)) if len(_rest) else \
        features[:0]
    _, suggestions, measured = labelling_round(features, _learned.targets(), labels=list(_learned.labels),
                                               tested=_tested, pool_features=pool,
                                               pool_files=[s.name for s in _rest.samples], seed=number)
    return Round(number, suggestions, measured, list(_learned.labels), _rest)


def _row(number: int, measured: dict) -> dict:
    made = [d for d in workspace.current().labelling() if d.action == "label" and (d.round or 1) <= number]
    return {"round": number, **{k: measured[k] for k in ("labelled", "accuracy", "low", "high", "tested")},
            "by_hand": sum(1 for d in made if d.how != "bulk"), "bulk": sum(1 for d in made if d.how == "bulk"),
            "when": time.time()}


def labelled_this_round() -> int:
    number = current_number()
    return sum(1 for d in workspace.current().labelling() if d.action == "label" and (d.round or 1) == number)


def learn(run) -> dict:
    """on_click of Learn from these labels: the model learns from every label so far, its numbers become the round's
    point (and a notice says them), the next round begins."""
    number = current_number()
    learned, tested, rest = _split(number + 1)
    found = _round(_key(run, number + 1, learned, rest), run, number + 1, learned, tested, rest)
    row = _row(number, found.measured)
    workspace.current().keep_label_round(row)
    _apply()
    state.set_notice(f"Round {number} learned: with {row['labelled']} labelled photos it names about "
                     f"{percent(row['accuracy'], 0)} of photos it never saw correctly.")
    return row


# --- decisions (on_click callbacks) ---------------------------------------------------------------
def confirm(file: str, label: str) -> None:
    workspace.current().label(Decision(file, "label", label, how="hand", round=current_number()))
    _apply()


def picked(file: str, key: str) -> None:
    """on_change of a photo's class choice: the chosen class is its label (one click to change)."""
    label = st.session_state.get(key)
    if label:
        confirm(file, label)


def skip(file: str) -> None:
    workspace.current().label(Decision(file, "skip", round=current_number()))


def none_of_these(file: str) -> None:
    workspace.current().label(Decision(file, "none", round=current_number()))


def accept_band(pairs: list[tuple[str, str]]) -> None:
    """Accept the confident band's pre-labels (file, class) in bulk."""
    number = current_number()
    workspace.current().label_many([Decision(file, "label", label, how="bulk", round=number)
                                    for file, label in pairs])
    _apply()


def undo(file: str) -> None:
    workspace.current().undo_label(file)
    _apply()


def undo_round() -> None:
    """Take back every decision of the round being labelled."""
    here = workspace.current()
    number = current_number()
    for decision in here.labelling():
        if (decision.round or 1) == number:
            here.undo_label(decision.file)
    _apply()


def _apply() -> None:
    workspace.apply_decisions()  # the photos the next training learns from change with the labels
