"""labelling_rounds_figure and rounds_words (the Label more page's chart: what each round of labelling bought)."""

from __future__ import annotations

import copy
import json

import plotly.graph_objects as go

from quasar_core import charts

BANNED = (" C ", "C =", "log loss", "fold", "hold-out", "int8", "float32", "e-0", "100 %")


def row(number, labelled, accuracy, *, low=None, high=None, tested=50):
    return {"round": number, "labelled": labelled, "accuracy": accuracy,
            "low": accuracy - 0.08 if low is None else low, "high": min(1.0, accuracy + 0.06) if high is None else high,
            "tested": tested}


def words_of(fig: go.Figure) -> str:
    return json.dumps(fig.to_plotly_json(), default=str)


def test_one_point_per_round_in_round_order_with_interval_bars():
    rows = [row(2, 90, 0.86), row(0, 50, 0.78), row(1, 70, 0.83)]
    kept = copy.deepcopy(rows)
    fig = charts.labelling_rounds_figure(rows)
    assert rows == kept  # inputs left unchanged
    (trace,) = fig.data
    assert trace.name == "Each round"
    assert list(trace.x) == [50, 70, 90] and list(trace.y) == [0.78, 0.83, 0.86]
    assert list(trace.text) == ["start", "round 1", "round 2"]
    assert [round(v, 6) for v in trace.error_y.array] == [0.06, 0.06, 0.06]
    assert [round(v, 6) for v in trace.error_y.arrayminus] == [0.08, 0.08, 0.08]
    assert fig.layout.title.text == charts.ROUNDS_TITLE
    assert "Still rising" in fig.layout.title.subtitle.text
    assert fig.layout.xaxis.title.text == "Photos labelled"


def test_the_same_rows_give_the_same_figure():
    rows = [row(0, 50, 0.78), row(1, 70, 0.83)]
    assert charts.labelling_rounds_figure(rows).to_plotly_json() == charts.labelling_rounds_figure(rows).to_plotly_json()


def test_no_rounds_shows_a_message_not_a_blank_chart():
    fig = charts.labelling_rounds_figure([])
    assert not fig.data
    assert fig.layout.annotations[0].text == charts.NO_ROUNDS_TEXT


def test_words_say_when_labelling_stops_paying():
    assert charts.rounds_words([]) == ""
    assert "Label a round" in charts.rounds_words([row(0, 50, 0.8)])
    assert "Still rising" in charts.rounds_words([row(0, 50, 0.80), row(1, 70, 0.84)])
    flat = charts.rounds_words([row(0, 50, 0.80), row(1, 70, 0.86), row(2, 90, 0.864), row(3, 110, 0.866)])
    assert "Levelling off" in flat
    assert "next round will tell" in charts.rounds_words([row(0, 50, 0.80), row(1, 70, 0.86), row(2, 90, 0.862)])


def test_never_one_hundred_percent_nor_specialist_words():
    fig = charts.labelling_rounds_figure([row(0, 50, 0.97, high=1.0), row(1, 70, 1.0, low=0.95, high=1.0)])
    text = words_of(fig)
    for banned in BANNED:
        assert banned not in text, banned
    assert "more than 99 %" in text
    assert "all" in list(fig.layout.yaxis.ticktext)
