"""probability_bars (one photo's verdict) and familiarity_histogram (the drift check)."""

from __future__ import annotations

import json

import pytest

from quasar_core import charts
from quasar_core.charts._style import BLUE, GREY, LIGHT_GREY, VERMILLION


# --------------------------------------------------------------------------- probability bars


def test_probability_bars_top_and_order():
    probs = {"cat": 0.05, "dog": 0.873, "fox": 0.02, "owl": 0.03, "cow": 0.015, "ant": 0.012}
    fig = charts.probability_bars(probs, top=3)
    json.loads(fig.to_json())
    bar = fig.data[0]
    assert bar.orientation == "h"
    assert list(bar.y) == ["dog", "cat", "owl"]
    assert list(bar.x) == [0.873, 0.05, 0.03]
    assert list(bar.text) == ["87.3 %", "5.0 %", "3.0 %"]
    assert list(bar.customdata) == ["87.300 %", "5.000 %", "3.000 %"]  # exact on hover
    assert list(bar.marker.color) == [BLUE, GREY, GREY]  # the answer stands out
    assert fig.layout.yaxis.autorange == "reversed"  # highest on top
    assert tuple(fig.layout.xaxis.range) == (0, 1)
    assert fig.layout.title.text == "How sure the model is (top 3 of 6 classes)"


def test_probability_bars_never_read_100_percent():
    bar = charts.probability_bars({"cat": 0.9996, "dog": 0.0004}).data[0]
    assert list(bar.text) == ["more than 99 %", "less than 1 %"]
    assert list(bar.customdata) == ["more than 99 %", "less than 1 %"]
    assert list(bar.x) == [0.9996, 0.0004]  # the numbers stay as they are


def test_probability_bars_defaults_and_ties():
    fig = charts.probability_bars({"a": 0.25, "b": 0.5, "c": 0.25})
    assert list(fig.data[0].y) == ["b", "a", "c"]  # ties keep the given order
    assert fig.layout.title.text == "How sure the model is"


def test_probability_bars_unknown_photo_is_greyed():
    probs = {"cat": 0.4, "dog": 0.35, "bird": 0.25}
    fig = charts.probability_bars(probs, unknown=True)
    bar = fig.data[0]
    assert list(bar.marker.color) == [LIGHT_GREY] * 3  # no bar looks like an answer
    assert list(bar.x) == [0.4, 0.35, 0.25]  # the probabilities are still shown
    assert fig.layout.title.text == charts.UNKNOWN_TITLE == "This photo looks like none of the classes"
    assert "trusted" in fig.layout.title.subtitle.text
    assert probs == {"cat": 0.4, "dog": 0.35, "bird": 0.25}


def test_probability_bars_empty():
    fig = charts.probability_bars({})
    json.loads(fig.to_json())
    assert [a.text for a in fig.layout.annotations] == ["No prediction yet"]


# --------------------------------------------------------------------------- familiarity histogram


def test_familiarity_histogram_splits_the_photos():
    familiarity = [0.1, 0.2, 0.8, 0.9, 0.95]
    unknown = [True, True, False, False, False]
    fig = charts.familiarity_histogram(familiarity, unknown, threshold=0.35)
    json.loads(fig.to_json())
    familiar, strange = fig.data
    assert familiar.name == "Looks familiar" and list(familiar.x) == [0.8, 0.9, 0.95]
    assert strange.name == "Looks unlike the training photos" and list(strange.x) == [0.1, 0.2]
    assert (familiar.marker.color, strange.marker.color) == (BLUE, VERMILLION)
    assert strange.marker.pattern.shape == "/"  # told apart without colour too
    assert familiar.xbins.size == strange.xbins.size == 0.05
    assert fig.layout.barmode == "stack"
    assert fig.layout.title.text == "2 of 5 new photos look unlike the training photos"


def test_familiarity_histogram_threshold_line_with_its_label_above_the_plot():
    fig = charts.familiarity_histogram([0.5, 0.6], [False, False], threshold=0.42)
    (line,) = fig.layout.shapes
    assert (line.x0, line.x1, line.yref, line.y0, line.y1) == (0.42, 0.42, "paper", 0, 1)
    (label,) = fig.layout.annotations
    assert label.text == "Unknown below 0.42"
    assert (label.yref, label.y, label.yanchor) == ("paper", 1.0, "bottom")
    assert tuple(fig.layout.xaxis.range) == (0, 1)
    assert fig.layout.yaxis.dtick == 1  # whole photos


@pytest.mark.parametrize(
    "familiarity, unknown, title",
    [
        ([0.2], [True], "1 of 1 new photo looks unlike the training photos"),
        ([0.9], [False], "The new photo looks like the training photos"),
        ([0.9, 0.8], [False, False], "All 2 new photos look like the training photos"),
        ([0.1] * 7 + [0.9] * 13, [True] * 7 + [False] * 13, "7 of 20 new photos look unlike the training photos"),
    ],
)
def test_familiarity_histogram_titles(familiarity, unknown, title):
    fig = charts.familiarity_histogram(familiarity, unknown, threshold=0.3)
    assert fig.layout.title.text == title
    assert len(fig.data) == len(set(unknown))  # no empty trace


def test_familiarity_histogram_empty():
    fig = charts.familiarity_histogram([], [], threshold=0.3)
    json.loads(fig.to_json())
    assert len(fig.data) == 0
    assert "No new photos yet" in [a.text for a in fig.layout.annotations]
