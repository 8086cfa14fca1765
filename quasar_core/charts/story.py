"""The training's story for a non-specialist: accuracy on unseen photos as it learns from more of them, and
Best accuracy's leaderboard of the settings it tried; plus the few readers of a run's history the Train page needs.

Numbers are words a person reads (``wording``): never "100 %" (a measured score above 99 % reads "more than
99 %", an interval reaching the top "90 % or more").
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import plotly.graph_objects as go

from quasar_core.charts._style import (
    BLACK, BLUE, GREY, LIGHT_GREY, SKY_BLUE, base_layout, empty_message, legend_below,
)
from quasar_core.charts.training import RUN_NAMES
from quasar_core.charts.types import CandidateRow, ChoiceRow, HistoryRow, LearningRow
from quasar_core.wording import confidence, duration, percent, percent_range, plural

LEARNING_TITLE = "Accuracy on photos it never saw, as it learns from more of your photos"
LEADERBOARD_TITLE = "The settings it tried, each tested on photos it never saw"
NO_LEARNING_TEXT = "Shows once it has been tested on photos it never saw"
NO_SETTINGS_TEXT = "No setting has finished yet"
SHARE_AXIS = "Share of unseen photos it named correctly"
KEPT = "kept"
SHARE_WORDS = {0.25: "a quarter", 0.5: "half", 0.75: "three quarters", 1.0: "all"}
# The accuracy axis reads 0 % … 80 %, "all": never "100 %".
_TICKS = dict(tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1.0], ticktext=["0 %", "20 %", "40 %", "60 %", "80 %", "all"])
_GAP = "\u2003"  # a label starts clear of its interval bar (SVG keeps an em space, not a plain one)
_TOP, _BOTTOM, _LEGEND_DROP = 100, 150, 95  # the leaderboard's margins (px); its legend sits under "Kept: …"
_LINE, _WRAP = 18, 110  # a subtitle's extra line (px), and where a long reason wraps (Plotly does not wrap)
RISING = 0.02  # the last step gained at least 2 points: more photos probably still help


# --- reading a run's history -----------------------------------------------------------------------
def learning_rows(history: Sequence[HistoryRow]) -> list[LearningRow]:
    """The ``"learning"`` rows of a history (what ``learning_story_figure`` draws), by photos learned from."""
    return sorted((row for row in history if row.get("phase") == "learning"), key=lambda row: row["photos"])


def candidate_rows(history: Sequence[HistoryRow]) -> list[CandidateRow]:
    """Best accuracy's scored settings, in the order they finished."""
    return [row for row in history if row.get("phase") == "candidate"]


def choice_row(history: Sequence[HistoryRow]) -> ChoiceRow | None:
    """Best accuracy's choice (the last one, should there be several), or None before it is made."""
    return next((row for row in reversed(history) if row.get("phase") == "choice"), None)


def tunes(setting: str) -> bool:
    """Whether a setting's words (``selection.setting_words``) include fine-tuning."""
    return "fine-tun" in setting


def kept_model_history(history: Sequence[HistoryRow]) -> list[HistoryRow]:
    """The history without the rows of models that were not kept.

    Before (or without) a choice every row stays. Once Best accuracy has chosen: each candidate's search for
    the classifier's strength (its ``"head"`` rows, written just before its ``"candidate"`` row) stays only for
    the winner; fine-tuning epochs stay only if the winner fine-tunes (and, when the epochs are labelled by
    setting, only the winner's).
    """
    choice = choice_row(history)
    if choice is None:
        return list(history)
    scored = [i for i, row in enumerate(history) if row.get("phase") == "candidate"]
    won = next((i for i in scored if history[i]["setting"] == choice["setting"]), None)
    since = max((i for i in scored if won is not None and i < won), default=-1)  # the winner's rows follow this
    tuned = [row for row in history if row.get("phase") == "fine-tune"]
    by_setting = any(row.get("label") == choice["setting"] for row in tuned)

    def kept(i: int, row) -> bool:
        if row.get("phase") == "head" and won is not None and scored and i < scored[-1]:
            return since < i < won
        if row.get("phase") == "fine-tune":
            return tunes(choice["setting"]) and (not by_setting or row.get("label") == choice["setting"])
        return True

    return [row for i, row in enumerate(history) if kept(i, row)]


def status_line(messages: Sequence[str]) -> str | None:
    """The latest of a job's messages, its run labels in plain words ("(hold-out)" -> "(trial run)")."""
    if not messages:
        return None
    text = messages[-1]
    for label, name in RUN_NAMES.items():
        text = text.replace(f"({label})", f"({name.lower()})")
    return text


# --- words -----------------------------------------------------------------------------------------
def score(accuracy: float, digits: int = 1) -> str:
    """"93.5 %"; above 99 % "more than 99 %" (never "100 %")."""
    return confidence(accuracy, digits)


def likely(low: float, high: float) -> str:
    """"likely 90–96 %"; an interval reaching the top "likely 90 % or more"."""
    if low > 0.99:
        return "likely more than 99 %"
    if high > 0.99:
        return f"likely {percent(low, 0)} or more"
    return f"likely {percent_range(low, high)}"


def accuracy_words(accuracy: float, low: float | None = None, high: float | None = None) -> str:
    """"about 93 % (likely 90–96 %)"; "more than 99 % (likely 95 % or more)"."""
    main = score(accuracy, 0)
    main = main if main.startswith(("more", "less")) else f"about {main}"
    return main if low is None or high is None else f"{main} ({likely(low, high)})"


def _wrapped(text: str) -> str:
    return "<br>".join(textwrap.wrap(text, _WRAP))


def _share(value: float) -> str:
    return SHARE_WORDS.get(round(value, 2), percent(value, 0))


def _error_bars(rows, colour: str) -> dict:
    return dict(type="data", symmetric=False, color=colour, thickness=2, width=6,
                array=[max(0.0, r["high"] - r["accuracy"]) for r in rows],
                arrayminus=[max(0.0, r["accuracy"] - r["low"]) for r in rows])


def _finding(rows: list[LearningRow]) -> str:
    first, last = rows[0], rows[-1]
    text = (f"Learning from {first['photos']} photos it named {score(first['accuracy'], 0)} of new photos "
            f"correctly; from {last['photos']}, {score(last['accuracy'], 0)}.")
    if len(rows) > 1:
        gain = last["accuracy"] - rows[-2]["accuracy"]
        text += (" Still rising at the end: more photos of each class would probably help." if gain >= RISING
                 else " Levelling off: more photos of the same kind would help less.")
    return text


# --- the charts ----------------------------------------------------------------------------------
def learning_story_figure(rows: Sequence[HistoryRow], *, title: str = LEARNING_TITLE) -> go.Figure:
    """Accuracy on photos it never saw (y) against the photos it learned from (x), with 95 % interval bars.

    ``rows`` may be a whole run's history: only the ``"learning"`` rows are drawn (trace ``"Photos it never
    saw"``), sorted by photos. The subtitle says what the line shows in a sentence; hover gives each point's
    share of the photos, its exact score and its likely range. No rows: the annotation ``NO_LEARNING_TEXT``.
    """
    points = learning_rows(rows)
    fig = go.Figure()
    base_layout(fig, title, _finding(points) if points else None)
    legend_below(fig)
    fig.update_layout(uirevision=title, hovermode="closest", showlegend=False)
    if points:
        fig.add_trace(go.Scatter(
            x=[r["photos"] for r in points], y=[r["accuracy"] for r in points], name="Photos it never saw",
            mode="lines+markers+text", line=dict(color=BLUE, width=3), marker=dict(size=11, color=BLUE),
            error_y=_error_bars(points, BLUE), text=[_GAP + score(r["accuracy"], 0) for r in points],
            textposition="bottom right", textfont=dict(color=BLUE),  # under a flat or rising line, not across it
            customdata=[[_share(r["share"]), score(r["accuracy"]), plural(r["tested"], "photo"),
                         likely(r["low"], r["high"])] for r in points],
            hovertemplate=("Learned from %{x} photos (%{customdata[0]} of yours): named %{customdata[1]} of "
                           "%{customdata[2]} it never saw correctly, %{customdata[3]}<extra></extra>"),
        ))
    most = max((r["photos"] for r in points), default=1)
    fig.update_xaxes(title_text="Photos it learned from", range=[0, most * 1.15], tickformat="d", showgrid=False)
    fig.update_yaxes(title_text=SHARE_AXIS, range=[0, 1.05], **_TICKS)
    if not points:
        empty_message(fig, NO_LEARNING_TEXT)
    return fig


def _winner(candidates: list[CandidateRow], choice: ChoiceRow | None) -> int | None:
    if choice is None:
        return None
    return next((i for i, row in enumerate(candidates) if row["setting"] == choice["setting"]), None)


def _bars(fig, candidates, indices, *, name, colour, text_colour, kept=False) -> None:
    rows = [candidates[i] for i in indices]
    if not rows:
        return
    fig.add_trace(go.Bar(
        x=[r["accuracy"] for r in rows], y=list(indices), orientation="h", name=name,
        marker=dict(color=colour, line=dict(color=BLACK if kept else GREY, width=2 if kept else 1)),
        error_x=_error_bars(rows, BLACK),
        text=[_GAP + score(r["accuracy"]) + (f" · {KEPT}" if kept else "") for r in rows],
        textposition="inside", insidetextanchor="start", textfont=dict(color=text_colour),  # clear of the interval
        customdata=[[r["setting"], score(r["accuracy"]), plural(r["photos"], "photo"), likely(r["low"], r["high"]),
                     duration(r["seconds"])] for r in rows],
        hovertemplate=("<b>%{customdata[0]}</b>: named %{customdata[1]} of %{customdata[2]} it never saw "
                       "correctly, %{customdata[3]}; tried in %{customdata[4]}<extra></extra>"),
    ))


def leaderboard_figure(candidate_rows_: Sequence[HistoryRow], choice: ChoiceRow | None = None, *,
                       title: str = LEADERBOARD_TITLE) -> go.Figure:
    """Best accuracy's leaderboard: one horizontal bar per setting tried, in the order they finished (top first).

    Each bar is the setting's accuracy on photos it never saw, with its 95 % interval as an error bar. Until
    ``choice`` exists every bar is one trace, ``"Tried so far"``; then the winner (the candidate with the
    choice's words) is its own trace ``"Kept"`` (dark blue, "· kept" on the bar), the others ``"Not kept"``
    (light grey), a diamond ``"Expected on new photos"`` marks the choice's accuracy (corrected for picking
    the best of several), the subtitle is the choice's reason (wrapped with ``<br>``: Plotly does not wrap it)
    and an annotation under the plot says what was
    kept and how good to expect it. Only ``"candidate"`` rows of ``candidate_rows_`` are drawn, so a whole
    history may be given. No candidates: the annotation ``NO_SETTINGS_TEXT``.
    """
    candidates = [row for row in candidate_rows_ if row.get("phase", "candidate") == "candidate"]
    winner = _winner(candidates, choice)
    fig = go.Figure()
    waiting = ("Each bar is one setting; the black line across its end is the likely range. More appear as each "
               "finishes.")
    subtitle = _wrapped(choice["reason"]) if choice is not None else (waiting if candidates else None)
    base_layout(fig, title, subtitle)
    top = _TOP + _LINE * (subtitle or "").count("<br>")
    height = max(360, 230 + 60 * len(candidates)) + (top - _TOP)
    legend_below(fig)
    fig.update_layout(uirevision=title, hovermode="closest", bargap=0.35, height=height, margin=dict(t=top))
    everyone = range(len(candidates))
    if choice is None:
        _bars(fig, candidates, list(everyone), name="Tried so far", colour=SKY_BLUE, text_colour=BLACK)
    else:
        _bars(fig, candidates, [i for i in everyone if i != winner], name="Not kept", colour=LIGHT_GREY,
              text_colour=BLACK)
        if winner is not None:
            _bars(fig, candidates, [winner], name="Kept", colour=BLUE, text_colour="white", kept=True)
            fig.add_trace(go.Scatter(
                x=[choice["accuracy"]], y=[winner], mode="markers", name="Expected on new photos",
                marker=dict(symbol="diamond", size=15, color=BLACK, line=dict(color="white", width=2)),
                customdata=[[accuracy_words(choice["accuracy"], choice["low"], choice["high"])]],
                hovertemplate=("Expected on new photos, allowing for having picked the best of several: "
                               "%{customdata[0]}<extra></extra>"),
            ))
        expected = accuracy_words(choice["accuracy"], choice["low"], choice["high"])
        fig.add_annotation(text=f"Kept: {choice['setting']}. Expected on new photos: {expected}.",
                           xref="paper", yref="paper", x=0.0, xanchor="left", y=0.0, yanchor="top", yshift=-62,
                           showarrow=False, align="left", font=dict(size=14, color=BLACK))
        fig.update_layout(legend=dict(y=-_LEGEND_DROP / (height - top - _BOTTOM)), margin=dict(b=_BOTTOM))
    fig.update_yaxes(tickvals=list(everyone), ticktext=[r["setting"] for r in candidates],
                     range=[len(candidates) - 0.5, -0.5] if candidates else None, automargin=True, showgrid=False)
    fig.update_xaxes(title_text=SHARE_AXIS, range=[0, 1.05], **_TICKS)
    if not candidates:
        empty_message(fig, NO_SETTINGS_TEXT)
    return fig


__all__ = ["learning_story_figure", "leaderboard_figure", "learning_rows", "candidate_rows", "choice_row",
           "kept_model_history", "status_line", "accuracy_words", "tunes", "LEARNING_TITLE", "LEADERBOARD_TITLE",
           "NO_LEARNING_TEXT", "NO_SETTINGS_TEXT", "KEPT"]
