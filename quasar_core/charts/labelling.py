"""Label assist's chart: what each labelling round bought, so a person sees when more labelling stops paying.

One point per round: the accuracy on photos the model being tested never saw (measured out of fold on the
photos labelled before label assist), against how many photos were labelled then, with its 95 % interval.
Never "100 %": scores above 99 % read "more than 99 %".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import plotly.graph_objects as go

from quasar_core.charts._style import BLUE, base_layout, empty_message
from quasar_core.charts.story import SHARE_AXIS, likely, score
from quasar_core.wording import plural

ROUNDS_TITLE = "What each round of labelling bought"
NO_ROUNDS_TEXT = "Shows once the model has learned from your labels"
PAYING = 0.01  # a round that added less than a point (with the one before) is "levelling off"
_TICKS = dict(tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1.0], ticktext=["0 %", "20 %", "40 %", "60 %", "80 %", "all"])


class RoundRow(TypedDict):
    """One labelling round (workspace.label_rounds): round 0 is the model before any label-assist label."""

    round: int
    labelled: int  # photos labelled in all (the original ones included)
    accuracy: float  # on photos each model never saw, 0..1
    low: float  # 95 % interval
    high: float
    tested: int  # photos it was tested on


def rounds_words(rows: Sequence[RoundRow]) -> str:
    """One sentence on what the rounds bought: still rising, or levelling off (labelling pays less)."""
    points = sorted(rows, key=lambda r: r["round"])
    if not points:
        return ""
    last = points[-1]
    if len(points) == 1:
        return (f"With {plural(last['labelled'], 'labelled photo')} it names about {score(last['accuracy'], 0)} of "
                "new photos correctly. Label a round to see what more labels buy.")
    before = points[-2]
    gain = last["accuracy"] - before["accuracy"]
    text = (f"From {before['labelled']} to {last['labelled']} labelled photos: {score(before['accuracy'], 0)} → "
            f"{score(last['accuracy'], 0)}.")
    flat = len(points) >= 3 and max(gain, last["accuracy"] - points[-3]["accuracy"]) < PAYING
    if gain >= PAYING:
        return text + " Still rising: another round will probably help."
    if flat:
        return text + " Levelling off for two rounds: more labels of the same kind help little now."
    return text + " About the same: the next round will tell whether more labels still pay."


def labelling_rounds_figure(rows: Sequence[RoundRow], *, title: str = ROUNDS_TITLE) -> go.Figure:
    """Accuracy (y, with 95 % interval bars) against photos labelled (x), one point per round, in round order.
    Trace ``"Each round"``; hover says the round, the score and its likely range. No rows: ``NO_ROUNDS_TEXT``."""
    points = sorted(rows, key=lambda r: r["round"])
    fig = go.Figure()
    base_layout(fig, title, rounds_words(points) or None)
    fig.update_layout(uirevision=title, hovermode="closest", showlegend=False)
    if points:
        fig.add_trace(go.Scatter(
            x=[r["labelled"] for r in points], y=[r["accuracy"] for r in points], name="Each round",
            mode="lines+markers+text", line=dict(color=BLUE, width=3), marker=dict(size=11, color=BLUE),
            error_y=dict(type="data", symmetric=False, color=BLUE, thickness=2, width=6,
                         array=[max(0.0, r["high"] - r["accuracy"]) for r in points],
                         arrayminus=[max(0.0, r["accuracy"] - r["low"]) for r in points]),
            text=["start" if r["round"] == 0 else f"round {r['round']}" for r in points], textposition="top center",
            customdata=[["before labelling" if r["round"] == 0 else f"after round {r['round']}",
                         score(r["accuracy"]), plural(r["tested"], "photo"), likely(r["low"], r["high"])]
                        for r in points],
            hovertemplate=("%{customdata[0]}, %{x} labelled photos: named %{customdata[1]} of %{customdata[2]} it "
                           "never saw correctly, %{customdata[3]}<extra></extra>"),
        ))
    most = max((r["labelled"] for r in points), default=1)
    least = min((r["labelled"] for r in points), default=0)
    fig.update_xaxes(title_text="Photos labelled", range=[max(0, least - 0.15 * (most - least + 10)),
                                                         most + 0.15 * (most - least + 10)],
                     tickformat="d", showgrid=False)
    fig.update_yaxes(title_text=SHARE_AXIS, range=[0, 1.05], **_TICKS)
    if not points:
        empty_message(fig, NO_ROUNDS_TEXT)
    return fig
