"""confusion_matrix_figure + selected_cell (the click), per_class_table, reliability_figure."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from quasar_core import charts
from quasar_core.evaluation import Evaluation, evaluate_predictions


@pytest.fixture
def evaluation():
    return Evaluation(
        accuracy=0.7,
        labels=["cat", "dog", "bird"],
        confusion_matrix=[[8, 2, 0], [1, 6, 3], [0, 0, 0]],
        per_class={
            "cat": {"precision": 0.8888, "recall": 0.8, "f1": 0.842, "support": 10},
            "dog": {"precision": 0.75, "recall": 0.6, "f1": 0.667, "support": 10},
            "bird": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
        },
        accuracy_interval=[0.52, 0.83],
        method="5-fold cross-validation over 20 photos",
        calibration_error=0.0321,
        reliability=[
            {"low": 0.3, "high": 0.4, "confidence": 0.36, "accuracy": 0.25, "count": 4},
            {"low": 0.6, "high": 0.7, "confidence": 0.65, "accuracy": 0.5, "count": 6},
            {"low": 0.9, "high": 1.0, "confidence": 0.957, "accuracy": 0.9, "count": 10},
        ],
    )


# --------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_counts(evaluation):
    fig = charts.confusion_matrix_figure(evaluation)
    json.loads(fig.to_json())
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap)
    assert [list(r) for r in heat.z] == [[8, 2, 0], [1, 6, 3], [0, 0, 0]]
    assert list(heat.x) == ["cat", "dog", "bird"]  # predicted
    assert list(heat.y) == ["cat", "dog", "bird"]  # true
    assert [list(r) for r in heat.text] == [["8", "2", "0"], ["1", "6", "3"], ["0", "0", "0"]]
    assert heat.texttemplate == "%{text}"
    assert list(heat.customdata[1][2]) == ["dog", "bird"]  # row 1 = real dog, column 2 = said bird
    assert (heat.zmin, heat.zmax) == (0, 8)
    assert heat.textfont.color is None  # plotly contrasts the text with the cell: readable diagonal
    assert fig.layout.yaxis.autorange == "reversed"  # first label on top
    assert fig.layout.xaxis.type == fig.layout.yaxis.type == "category"
    assert fig.layout.xaxis.title.text == "Predicted class"
    assert fig.layout.yaxis.title.text == "Real class"
    assert "70.0 % correct overall" in fig.layout.title.text
    assert fig.layout.title.subtitle.text == "Measured by 5-fold cross-validation over 20 photos."


def test_confusion_matrix_normalized(evaluation):
    fig = charts.confusion_matrix_figure(evaluation, normalize=True)
    heat = fig.data[0]
    z = [list(r) for r in heat.z]
    assert z[0] == pytest.approx([0.8, 0.2, 0.0])
    assert z[1] == pytest.approx([0.1, 0.6, 0.3])
    assert z[2] == [0.0, 0.0, 0.0]  # a class with no photos: no division by zero
    assert heat.text[0][0] == "8<br>80.0 %"
    assert heat.text[1][2] == "3<br>30.0 %"
    assert heat.text[2][2] == "0<br>–"
    assert (heat.zmin, heat.zmax) == (0, 1)
    assert heat.colorbar.tickformat == ".0%"


def test_confusion_matrix_click_targets(evaluation):
    fig = charts.confusion_matrix_figure(evaluation)
    heat, cells = fig.data
    assert heat.hoverinfo == "skip"
    assert cells.name == "cells" and cells.mode == "markers"
    assert cells.marker.color == "rgba(0,0,0,0)"  # invisible until selected
    assert len(cells.x) == 9  # one marker per cell, row by row, at (predicted, true)
    assert (cells.x[5], cells.y[5]) == ("bird", "dog")
    assert list(cells.customdata[5]) == ["dog", "bird"]
    assert "Photos: 3 of 10 real 'dog' photos (30.0 %)" in cells.hovertext[5]
    assert "(mistake)" in cells.hovertext[5] and "(correct)" in cells.hovertext[4]
    assert fig.layout.hoverdistance == -1
    assert fig.layout.clickmode == "event+select"


def test_confusion_matrix_from_the_engine_and_numeric_labels():
    rng = np.random.default_rng(0)
    y = np.array([0, 0, 1, 1, 1])
    probabilities = rng.dirichlet([1, 1], 5)
    evaluation = evaluate_predictions(y, probabilities, ["1", "2"], method="held-out photos")
    fig = charts.confusion_matrix_figure(evaluation)
    assert [list(r) for r in fig.data[0].z] == evaluation.confusion_matrix
    assert fig.layout.xaxis.type == "category"  # "1" and "2" stay class names, not numbers


# --------------------------------------------------------------------------- selected_cell


def test_selected_cell_roundtrip_from_figure(evaluation):
    """A point as Streamlit reports it for the "cells" trace maps back to the cell."""
    cells = charts.confusion_matrix_figure(evaluation).data[1]
    i = 5
    point = {"curve_number": 1, "point_number": i, "point_index": i, "x": cells.x[i], "y": cells.y[i],
             "customdata": list(cells.customdata[i])}
    assert charts.selected_cell([point]) == ("dog", "bird")
    # without customdata: y is the true label, x the predicted one
    assert charts.selected_cell([{"x": "bird", "y": "dog"}]) == ("dog", "bird")
    # only an index: needs the labels; the markers are numbered row by row
    assert charts.selected_cell([{"point_index": i}], labels=evaluation.labels) == ("dog", "bird")
    # heatmap-style [row, column] index
    assert charts.selected_cell([{"point_index": [1, 2]}], labels=evaluation.labels) == ("dog", "bird")
    assert charts.selected_cell([{"point_indices": [2, 0]}], labels=evaluation.labels) == ("bird", "cat")


def test_selected_cell_first_usable_point_wins():
    points = [
        {"customdata": [1, 2]},  # not a cell: skipped
        {"customdata": ["cat", "dog"], "x": "dog", "y": "cat"},
        {"customdata": ["dog", "dog"], "x": "dog", "y": "dog"},
    ]
    assert charts.selected_cell(points) == ("cat", "dog")


@pytest.mark.parametrize("points", [None, [], [{}], [{"point_index": 3}], [{"customdata": [1, 2]}]])
def test_selected_cell_nothing_usable(points):
    assert charts.selected_cell(points) is None


def test_selected_cell_ignores_labels_not_in_evaluation():
    labels = ["cat", "dog"]
    assert charts.selected_cell([{"customdata": ["old", "cat"]}], labels=labels) is None
    assert charts.selected_cell([{"x": "cat", "y": "old"}], labels=labels) is None
    assert charts.selected_cell([{"point_index": 99}], labels=labels) is None
    assert charts.selected_cell([{"point_index": [0, 5]}], labels=labels) is None
    assert charts.selected_cell([{"point_index": True}], labels=labels) is None


# --------------------------------------------------------------------------- per_class_table


def test_per_class_table(evaluation):
    rows = charts.per_class_table(evaluation)
    assert rows == [
        {"Class": "cat", "Precision": 0.8888, "Recall": 0.8, "F1": 0.842, "Photos": 10},  # unrounded
        {"Class": "dog", "Precision": 0.75, "Recall": 0.6, "F1": 0.667, "Photos": 10},
        {"Class": "bird", "Precision": 0.0, "Recall": 0.0, "F1": 0.0, "Photos": 0},
    ]
    assert all(isinstance(r["Photos"], int) for r in rows)
    json.dumps(rows)


def test_per_class_table_follows_the_label_order(evaluation):
    evaluation.labels = ["bird", "cat", "dog"]
    assert [r["Class"] for r in charts.per_class_table(evaluation)] == ["bird", "cat", "dog"]


# --------------------------------------------------------------------------- reliability_figure


def test_reliability_figure_points_and_diagonal(evaluation):
    fig = charts.reliability_figure(evaluation)
    json.loads(fig.to_json())
    diagonal, bands = fig.data
    assert diagonal.name == "Perfectly calibrated"
    assert (list(diagonal.x), list(diagonal.y)) == ([0, 1], [0, 1]) and diagonal.line.dash == "dash"
    assert list(bands.x) == [0.36, 0.65, 0.957]  # stated confidence
    assert list(bands.y) == [0.25, 0.5, 0.9]  # how often right
    assert list(bands.marker.size) == [4, 6, 10]  # area grows with the photos in the band
    assert bands.marker.sizemode == "area"
    assert list(bands.customdata[2]) == ["90–100 %", "95.7 %", "90.0 %", "10 photos"]
    assert "%{customdata[3]}" in bands.hovertemplate


def test_reliability_figure_words(evaluation):
    fig = charts.reliability_figure(evaluation)
    assert fig.layout.title.text == "How sure it says it is vs. how often it is right"
    assert "off by" not in fig.layout.title.text  # the calibration error is for specialists, not in the chart
    assert fig.layout.xaxis.title.text == "How sure it said it was"
    assert fig.layout.yaxis.title.text == "How often it was right"
    assert fig.layout.xaxis.tickformat == ".0%"


def test_reliability_figure_from_the_engine_and_empty(evaluation):
    real = evaluate_predictions([0, 1, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.55, 0.45]], ["a", "b"])
    fig = charts.reliability_figure(real)
    assert sum(fig.data[1].marker.size) == 4
    evaluation.reliability, evaluation.calibration_error = [], None
    empty = charts.reliability_figure(evaluation)
    assert [t.name for t in empty.data] == ["Perfectly calibrated"]
    assert [a.text for a in empty.layout.annotations] == [charts.NO_BANDS_TEXT]
    assert "off by" not in empty.layout.title.text
