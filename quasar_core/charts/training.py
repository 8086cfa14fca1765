"""Charts of training as it goes: the classifier's candidate settings, then fine-tuning epochs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from quasar_core.charts._style import (
    BLACK, BLUE, GREEN, ORANGE, VERMILLION, base_layout, empty_message, finite, legend_below,
)
from quasar_core.charts.types import FineTuneRow, HeadRow, HistoryRow
from quasar_core.wording import duration, percent

NO_EPOCHS_TEXT = "No epochs yet"
NO_CANDIDATES_TEXT = "No settings tried yet"
RUN_NAMES = {"hold-out": "Trial run", "kept model": "Kept model"}

# per run (in order of appearance): colour of "photos it learned from", of "photos set aside", marker
_RUN_STYLES = ((BLUE, ORANGE, "circle"), (GREEN, VERMILLION, "square"))
_STYLE_OF = {"hold-out": 0, "kept model": 1}


def fine_tune_rows(history: Sequence[HistoryRow]) -> list[FineTuneRow]:
    """The fine-tuning epochs of a run's history (what ``training_curves`` draws)."""
    return [row for row in history if row.get("phase") == "fine-tune"]


def head_rows(history: Sequence[HistoryRow]) -> list[HeadRow]:
    """The classifier's candidate settings of a run's history (what ``selection_figure`` draws)."""
    return [row for row in history if row.get("phase") == "head"]


def _runs(rows: list[FineTuneRow]) -> dict[str, list[FineTuneRow]]:
    runs: dict[str, list[FineTuneRow]] = {}
    for row in rows:
        runs.setdefault(row.get("label", ""), []).append(row)
    return runs


def _run_name(label: str) -> str:
    return RUN_NAMES.get(label, label or "Fine-tuning")


def _subtitle(labels: list[str]) -> str:
    parts = []
    if "hold-out" in labels:
        parts.append("Dashed: photos set aside and never learned from, the honest check.")
    if "kept model" in labels:
        parts.append("The kept model then learns from every photo, so none are left to check it on.")
    return " ".join(parts) or "Each point is one pass over the photos."


def training_curves(
    history: Sequence[HistoryRow], *, latest_only: bool = False, title: str = "Fine-tuning VGG16's top layers"
) -> go.Figure:
    """Loss (left) and accuracy (right) per fine-tuning epoch.

    ``history`` may be a whole run's history: only the ``"fine-tune"`` rows are drawn. Each
    run label ("hold-out", then "kept model") gets its own pair of lines: photos it learned
    from (solid) and, when there were any, photos set aside (dashed); ``latest_only`` keeps
    the last label's lines only. Epochs restart at 1 for each label, so the lines share the
    epoch axis. Missing or diverged values leave a gap. What the lines mean is said in the
    subtitle and the legend below the plot, never in text over the lines. ``uirevision`` is
    the title, so a chart redrawn while training keeps the user's zoom. No epochs gives
    empty axes and the annotation "No epochs yet".
    """
    rows = fine_tune_rows(history)
    runs = _runs(rows)
    if latest_only and rows:
        latest = rows[-1].get("label", "")
        runs = {latest: runs[latest]}

    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Loss (lower is better)", "Accuracy (higher is better)"),
        horizontal_spacing=0.1,
    )
    base_layout(fig, title, _subtitle(list(runs)) if runs else None)
    legend_below(fig)
    fig.update_layout(uirevision=title, hovermode="x unified")

    several = len(runs) > 1
    for number, (label, run) in enumerate(runs.items()):
        style = _STYLE_OF.get(label, number)  # the kept model looks the same alone or after the trial
        train_colour, aside_colour, symbol = _RUN_STYLES[style % len(_RUN_STYLES)]
        learned, aside = (
            (f"{_run_name(label)}: photos it learned from", f"{_run_name(label)}: photos set aside")
            if several else ("Photos it learned from", "Photos set aside")
        )
        epochs = [int(r["epoch"]) for r in run]
        took = [f"epoch took {duration(r['seconds'])}" if r.get("seconds") is not None else "" for r in run]
        lines = (
            # key, column, legend name, colour, dash
            ("loss", 1, learned, train_colour, "solid"),
            ("val_loss", 1, aside, aside_colour, "dash"),
            ("accuracy", 2, learned, train_colour, "solid"),
            ("val_accuracy", 2, aside, aside_colour, "dash"),
        )
        for key, col, name, colour, dash in lines:
            values = [finite(r.get(key)) for r in run]
            if all(v is None for v in values):
                continue  # e.g. the kept model has no photos set aside: no empty legend entry
            if col == 1:
                customdata = [[f"{v:.4f}" if v is not None else "–", t] for v, t in zip(values, took)]
            else:
                customdata = [[percent(v) if v is not None else "–", t] for v, t in zip(values, took)]
            fig.add_trace(
                go.Scatter(
                    x=epochs,
                    y=values,
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    mode="lines+markers",
                    line=dict(color=colour, dash=dash, width=3),
                    marker=dict(size=7, symbol=symbol),
                    connectgaps=False,
                    customdata=customdata,
                    hovertemplate=(
                        f"{name}, {'loss' if col == 1 else 'accuracy'}: %{{customdata[0]}}"
                        + (" (%{customdata[1]})" if dash == "solid" else "")  # the time once per epoch
                        + "<extra></extra>"
                    ),
                ),
                row=1,
                col=col,
            )

    epochs = [int(r["epoch"]) for run in runs.values() for r in run]
    first, last = (min(epochs), max(epochs)) if epochs else (1, 1)
    fig.update_xaxes(
        title_text="Epoch (one pass over the photos)",
        range=[first - 0.5, last + 0.5],
        tickmode="linear",
        tick0=0,
        dtick=max(1, math.ceil((last - first + 1) / 10)),
        tickformat="d",
        showgrid=False,
    )
    fig.update_yaxes(title_text="Loss", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="Share of photos named correctly", range=[0, 1], tickformat=".0%", row=1, col=2)
    if not epochs:
        empty_message(fig, NO_EPOCHS_TEXT)
    return fig


def selection_figure(
    history: Sequence[HistoryRow], *, title: str = "Choosing how closely the classifier may fit the photos"
) -> go.Figure:
    """The classifier's candidate regularisation strengths and how each did.

    ``history`` may be a whole run's history: only the ``"head"`` rows are drawn, sorted by
    strength on a log axis (larger C = weaker regularisation, to the right). Solid: accuracy
    on photos each fold's classifier had not seen (cross-validation); dashed: accuracy on the
    photos it learned from, so a widening gap shows over-fitting. The chosen candidate gets a
    black diamond (trace ``name="Chosen setting"``). ``uirevision`` is the title, for the
    live chart. No candidates gives the annotation "No settings tried yet".
    """
    rows = sorted(head_rows(history), key=lambda r: r["strength"])
    chosen = next((r for r in rows if r.get("chosen")), None)
    subtitle = None
    if chosen is not None:
        subtitle = (f"Kept: C = {chosen['strength']:.3g}, the most honest probabilities (least log loss); "
                    f"right on {percent(chosen['accuracy'])} of photos it had not seen.")
    elif rows:
        subtitle = "A widening gap between the lines means it learns the photos by heart (over-fitting)."
    fig = go.Figure()
    base_layout(fig, title, subtitle)
    legend_below(fig)
    fig.update_layout(uirevision=title, hovermode="x unified")

    strengths = [r["strength"] for r in rows]
    unseen = [[percent(r["accuracy"]), f"{r['log_loss']:.4f}"] for r in rows]
    if rows:
        fig.add_trace(
            go.Scatter(
                x=strengths,
                y=[r["accuracy"] for r in rows],
                name="Photos it had not seen (cross-validation)",
                mode="lines+markers",
                line=dict(color=BLUE, width=3),
                marker=dict(size=8),
                customdata=unseen,
                hovertemplate="Photos it had not seen: %{customdata[0]} (log loss %{customdata[1]})<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=strengths,
                y=[r["train_accuracy"] for r in rows],
                name="Photos it learned from",
                mode="lines+markers",
                line=dict(color=ORANGE, width=3, dash="dash"),
                marker=dict(size=8, symbol="square"),
                customdata=[[percent(r["train_accuracy"])] for r in rows],
                hovertemplate="Photos it learned from: %{customdata[0]}<extra></extra>",
            )
        )
    if chosen is not None:
        fig.add_trace(
            go.Scatter(
                x=[chosen["strength"]],
                y=[chosen["accuracy"]],
                name="Chosen setting",
                mode="markers",
                marker=dict(size=18, symbol="diamond", color=BLACK, line=dict(color="white", width=2)),
                customdata=[[percent(chosen["accuracy"])]],
                hovertemplate="Chosen setting: %{customdata[0]} on photos it had not seen<extra></extra>",
            )
        )
    fig.update_xaxes(
        type="log",
        title_text="Weaker regularisation → (logistic regression C, log scale)",
        dtick=1,  # one tick per power of ten
        tickformat="~g",
        hoverformat=".3g",
        showgrid=False,
    )
    fig.update_yaxes(title_text="Share of photos named correctly", range=[0, 1.05], tickformat=".0%")
    if not rows:
        empty_message(fig, NO_CANDIDATES_TEXT)
    return fig


__all__ = ["training_curves", "selection_figure", "fine_tune_rows", "head_rows", "NO_EPOCHS_TEXT",
           "NO_CANDIDATES_TEXT", "RUN_NAMES"]
