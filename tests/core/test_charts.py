"""Tests for quasar_core.charts: the numbers placed in each figure, and input checks."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from quasar_core import charts
from quasar_core.charts import (
    class_distribution_figure,
    comparison_figure,
    confusion_matrix_figure,
    per_class_table,
    probability_bars,
    selected_cell,
    training_curves,
)

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- data


def epoch(n, phase="head", loss=1.0, acc=0.5, val_loss=1.1, val_acc=0.45, seconds=2.5):
    return {
        "epoch": n,
        "phase": phase,
        "loss": loss,
        "accuracy": acc,
        "val_loss": val_loss,
        "val_accuracy": val_acc,
        "seconds": seconds,
    }


@pytest.fixture
def history():
    # 3 head epochs, then 2 fine-tune epochs; epoch 2 has no validation values
    return [
        epoch(1, loss=1.2, acc=0.40, val_loss=1.3, val_acc=0.35),
        epoch(2, loss=0.9, acc=0.55, val_loss=None, val_acc=None),
        epoch(3, loss=0.7, acc=0.65, val_loss=0.8, val_acc=0.60),
        epoch(4, "fine-tune", loss=0.5, acc=0.80, val_loss=0.6, val_acc=0.75),
        epoch(5, "fine-tune", loss=0.4, acc=0.85, val_loss=0.55, val_acc=0.78),
    ]


@pytest.fixture
def evaluation():
    return {
        "accuracy": 0.8,
        "labels": ["cat", "dog", "bird"],
        "confusion_matrix": [[8, 2, 0], [1, 6, 3], [0, 0, 0]],
        "per_class": {
            "cat": {"precision": 0.888, "recall": 0.8, "f1": 0.842, "support": 10},
            "dog": {"precision": 0.75, "recall": 0.6, "f1": 0.667, "support": 10},
            "bird": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
        },
    }


@pytest.fixture
def results():
    def run(weights, fraction, per_class, accuracy, seconds):
        return {
            "weights": weights,
            "fraction": fraction,
            "images_per_class": per_class,
            "accuracy": accuracy,
            "train_seconds": seconds,
        }

    return [
        run("none", 1.0, 100, 0.55, 40.0),
        run("imagenet", 0.5, 50, 0.85, 12.5),
        run("imagenet", 1.0, 100, 0.92, 22.0),
        run("none", 0.5, 50, 0.41, 21.0),
    ]


def roundtrip(fig):
    """to_json works and is valid JSON."""
    assert isinstance(fig, go.Figure)
    return json.loads(fig.to_json())


def traces(fig, name):
    return [t for t in fig.data if t.name == name]


# --------------------------------------------------------------------------- module rules


def test_module_imports_neither_streamlit_nor_tensorflow():
    code = (
        "import sys; import quasar_core.charts; "
        "bad = [m for m in ('streamlit', 'tensorflow', 'keras') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_builders_do_not_change_their_inputs(history, evaluation, results):
    import copy

    before = copy.deepcopy((history, evaluation, results))
    training_curves(history)
    confusion_matrix_figure(evaluation, normalize=True)
    per_class_table(evaluation)
    comparison_figure(results)
    assert (history, evaluation, results) == before


# --------------------------------------------------------------------------- training_curves


def test_training_curves_lines_and_numbers(history):
    fig = training_curves(history)
    roundtrip(fig)
    assert [t.name for t in fig.data] == [
        "Training images",
        "Validation images",
        "Training images",
        "Validation images",
    ]
    train_loss, val_loss, train_acc, val_acc = fig.data
    assert list(train_loss.x) == [1, 2, 3, 4, 5]
    assert all(isinstance(x, int) for x in train_loss.x)
    assert list(train_loss.y) == [1.2, 0.9, 0.7, 0.5, 0.4]
    assert list(val_loss.y) == [1.3, None, 0.8, 0.6, 0.55]
    assert list(train_acc.y) == [0.40, 0.55, 0.65, 0.80, 0.85]
    assert list(val_acc.y) == [0.35, None, 0.60, 0.75, 0.78]
    # loss on the left subplot, accuracy on the right
    assert (train_loss.xaxis, train_loss.yaxis) == ("x", "y")
    assert (val_acc.xaxis, val_acc.yaxis) == ("x2", "y2")
    # validation dashed, training solid; one legend entry per kind
    assert train_loss.line.dash == "solid" and val_loss.line.dash == "dash"
    assert [t.showlegend for t in fig.data] == [True, True, False, False]


def test_training_curves_axes_and_uirevision(history):
    fig = training_curves(history, title="Run 7")
    assert fig.layout.title.text == "Run 7"
    assert fig.layout.uirevision == "Run 7"
    assert tuple(fig.layout.yaxis2.range) == (0, 1)
    assert fig.layout.yaxis2.tickformat == ".0%"
    assert tuple(fig.layout.xaxis.range) == (0.5, 5.5)
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == "d"
    assert "Epoch" in fig.layout.xaxis.title.text
    texts = [a.text for a in fig.layout.annotations]
    assert texts[:2] == ["Loss (lower is better)", "Accuracy (higher is better)"]


def test_training_curves_fine_tune_shading(history):
    fig = training_curves(history)
    shapes = fig.layout.shapes
    assert len(shapes) == 2  # one band per subplot
    assert {s.xref for s in shapes} == {"x", "x2"}
    for s in shapes:
        assert (s.type, s.x0, s.x1) == ("rect", 3.5, 5.5)
        assert s.yref.endswith("domain") and (s.y0, s.y1) == (0, 1)
    labels = [a for a in fig.layout.annotations if a.text == "Fine-tuning"]
    assert len(labels) == 2 and all(a.x == 3.5 for a in labels)


def test_training_curves_interrupted_fine_tune_gives_two_bands():
    h = [epoch(1), epoch(2, "fine-tune"), epoch(3), epoch(4, "fine-tune"), epoch(5, "fine-tune")]
    bands = sorted({(s.x0, s.x1) for s in training_curves(h).layout.shapes})
    assert bands == [(1.5, 2.5), (3.5, 5.5)]


def test_training_curves_head_only_has_no_shading():
    fig = training_curves([epoch(1), epoch(2)])
    assert len(fig.layout.shapes) == 0
    assert "Fine-tuning" not in [a.text for a in fig.layout.annotations]


def test_training_curves_empty_history():
    fig = training_curves([])
    roundtrip(fig)
    assert len(fig.data) == 0
    assert charts.NO_EPOCHS_TEXT == "No epochs yet"
    assert "No epochs yet" in [a.text for a in fig.layout.annotations]
    assert fig.layout.uirevision == "Training progress"


def test_training_curves_single_epoch_fine_tune():
    fig = training_curves([epoch(7, "fine-tune", loss=0.3, acc=0.9, val_loss=0.4, val_acc=0.88)])
    roundtrip(fig)
    assert len(fig.data) == 4
    assert list(fig.data[0].x) == [7] and list(fig.data[3].y) == [0.88]
    assert "markers" in fig.data[0].mode  # a lone point is still visible
    assert tuple(fig.layout.xaxis.range) == (6.5, 7.5)
    assert {(s.x0, s.x1) for s in fig.layout.shapes} == {(6.5, 7.5)}


def test_training_curves_without_validation_values():
    h = [
        epoch(1, val_loss=None, val_acc=None),
        {"epoch": 2, "phase": "head", "loss": 0.5, "accuracy": 0.7},
    ]
    fig = training_curves(h)
    roundtrip(fig)
    # no empty "Validation images" legend entries when there is no validation at all
    assert [t.name for t in fig.data] == ["Training images", "Training images"]


def test_training_curves_missing_or_nan_values_are_gaps():
    # progress.py writes None when Keras logs no value; a diverged loss is NaN
    h = [
        epoch(1, loss=float("nan")),
        epoch(2, loss=0.5, val_loss=float("inf")),
        epoch(3, loss=None, acc=None, seconds=None),
    ]
    fig = training_curves(h)
    roundtrip(fig)
    assert list(fig.data[0].y) == [None, 0.5, None]
    assert list(fig.data[1].y) == [1.1, None, 1.1]
    assert list(fig.data[2].y) == [0.5, 0.5, None]


def test_training_curves_many_epochs_thin_ticks():
    fig = training_curves([epoch(i) for i in range(1, 51)])
    assert fig.layout.xaxis.dtick == 5


def test_training_curves_accepts_numpy_numbers():
    fig = training_curves([epoch(np.int64(1), loss=np.float32(0.5), acc=np.float64(0.75))])
    roundtrip(fig)
    assert list(fig.data[0].x) == [1]


@pytest.mark.parametrize(
    "bad, quoted",
    [
        ("not a list", "'not a list'"),
        ([{"epoch": 1, "phase": "head", "loss": 1.0}], "accuracy"),
        ([epoch(1, phase="warmup")], "'warmup'"),
        ([epoch(1, phase=["head"])], "['head']"),
        ([epoch(2), epoch(1)], "epoch 1"),
        ([epoch(1), epoch(1)], "epoch 1"),
        ([epoch(0)], "0"),
        ([epoch(1.5)], "1.5"),
        ([epoch(1, acc=87.0)], "87.0"),
        ([epoch(1, val_acc=-0.1)], "-0.1"),
        ([epoch(1, loss="high")], "'high'"),
        ([epoch(True)], "True"),
        ([42], "42"),
    ],
)
def test_training_curves_bad_input(bad, quoted):
    with pytest.raises(ValueError) as err:
        training_curves(bad)
    assert quoted in str(err.value)


# --------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_counts(evaluation):
    fig = confusion_matrix_figure(evaluation)
    roundtrip(fig)
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap)
    assert [list(r) for r in heat.z] == [[8, 2, 0], [1, 6, 3], [0, 0, 0]]
    assert list(heat.x) == ["cat", "dog", "bird"]  # predicted
    assert list(heat.y) == ["cat", "dog", "bird"]  # true
    assert [list(r) for r in heat.text] == [["8", "2", "0"], ["1", "6", "3"], ["0", "0", "0"]]
    assert heat.texttemplate == "%{text}"
    # cell (row 1 = true dog, column 2 = predicted bird)
    assert list(heat.customdata[1][2]) == ["dog", "bird"]
    assert all(list(heat.customdata[i][i]) == [lab, lab] for i, lab in enumerate(heat.y))
    assert fig.layout.yaxis.autorange == "reversed"
    assert fig.layout.xaxis.type == fig.layout.yaxis.type == "category"
    assert fig.layout.xaxis.title.text == "Predicted class"
    assert fig.layout.yaxis.title.text == "Real class"
    assert "80.0%" in fig.layout.title.text
    # colour text is automatic contrast (readable on the dark diagonal): not forced
    assert heat.textfont.color is None


def test_confusion_matrix_normalized(evaluation):
    fig = confusion_matrix_figure(evaluation, normalize=True)
    roundtrip(fig)
    heat = fig.data[0]
    z = [list(r) for r in heat.z]
    assert z[0] == pytest.approx([0.8, 0.2, 0.0])
    assert z[1] == pytest.approx([0.1, 0.6, 0.3])
    assert z[2] == [0.0, 0.0, 0.0]  # a class with no images: no division by zero
    assert heat.text[0][0] == "8<br>80.0%"
    assert heat.text[1][2] == "3<br>30.0%"
    assert heat.text[2][2] == "0<br>–"
    assert (heat.zmin, heat.zmax) == (0, 1)


def test_confusion_matrix_click_targets(evaluation):
    fig = confusion_matrix_figure(evaluation)
    heat, cells = fig.data
    assert heat.hoverinfo == "skip"
    assert cells.name == "cells" and cells.mode == "markers"
    # one marker per cell, row by row, at (predicted, true)
    assert len(cells.x) == 9
    assert (cells.x[5], cells.y[5]) == ("bird", "dog")
    assert list(cells.customdata[5]) == ["dog", "bird"]
    assert "Images: 3 of 10" in cells.hovertext[5]
    assert fig.layout.hoverdistance == -1


def test_confusion_matrix_accepts_numpy(evaluation):
    evaluation["confusion_matrix"] = np.array(evaluation["confusion_matrix"], dtype=np.int64)
    evaluation["labels"] = np.array(evaluation["labels"]).tolist()
    fig = confusion_matrix_figure(evaluation)
    roundtrip(fig)
    assert [list(r) for r in fig.data[0].z] == [[8, 2, 0], [1, 6, 3], [0, 0, 0]]


def test_confusion_matrix_and_table_accept_evaluation_object(evaluation):
    from quasar_core.evaluation import Evaluation

    obj = Evaluation(**evaluation, predictions=[{"name": "x"}])
    fig = confusion_matrix_figure(obj)
    assert [list(r) for r in fig.data[0].z] == evaluation["confusion_matrix"]
    assert per_class_table(obj) == per_class_table(evaluation)


def test_confusion_matrix_numeric_looking_labels_stay_categories():
    fig = confusion_matrix_figure({"labels": ["1", "2"], "confusion_matrix": [[3, 1], [0, 4]]})
    assert fig.layout.xaxis.type == "category"
    assert "correct overall" not in fig.layout.title.text  # no accuracy given


@pytest.mark.parametrize(
    "change, quoted",
    [
        ({"confusion_matrix": [[1, 2, 3], [4, 5], [6, 7, 8]]}, "[4, 5]"),
        ({"confusion_matrix": [[1, 2], [3, 4]]}, "2x2"),
        ({"confusion_matrix": [[1, 2], [3, 4], [5, 6]]}, "[1, 2]"),
        ({"labels": ["cat", "dog"]}, "['cat', 'dog']"),
        ({"labels": ["cat", "cat", "dog"]}, "'cat'"),
        ({"labels": ["cat", "", "dog"]}, "''"),
        ({"labels": []}, "empty"),
        ({"confusion_matrix": [[1, -2, 0], [0, 1, 0], [0, 0, 1]]}, "-2"),
        ({"confusion_matrix": [[1, 2.5, 0], [0, 1, 0], [0, 0, 1]]}, "2.5"),
        ({"confusion_matrix": "oops"}, "'oops'"),
        ({"accuracy": 1.5}, "1.5"),
    ],
)
def test_confusion_matrix_bad_input(evaluation, change, quoted):
    evaluation.update(change)
    with pytest.raises(ValueError) as err:
        confusion_matrix_figure(evaluation)
    assert quoted in str(err.value)


def test_confusion_matrix_bad_normalize_and_missing_keys(evaluation):
    with pytest.raises(ValueError, match="normalize"):
        confusion_matrix_figure(evaluation, normalize="yes")
    with pytest.raises(ValueError, match="confusion_matrix"):
        confusion_matrix_figure({"labels": ["a"]})
    with pytest.raises(ValueError, match="labels"):
        confusion_matrix_figure({"confusion_matrix": [[1]]})


# --------------------------------------------------------------------------- selected_cell


def test_selected_cell_roundtrip_from_figure(evaluation):
    """A point as Streamlit reports it for the 'cells' trace maps back to the cell."""
    cells = confusion_matrix_figure(evaluation).data[1]
    i = 5
    point = {
        "curve_number": 1,
        "point_number": i,
        "point_index": i,
        "x": cells.x[i],
        "y": cells.y[i],
        "customdata": list(cells.customdata[i]),
    }
    assert selected_cell([point]) == ("dog", "bird")
    # without customdata: y is the true label, x the predicted one
    assert selected_cell([{"x": "bird", "y": "dog"}]) == ("dog", "bird")
    # only an index: needs the labels; markers are numbered row by row
    assert selected_cell([{"point_index": i}], labels=evaluation["labels"]) == ("dog", "bird")
    # heatmap-style [row, column] index
    assert selected_cell([{"point_index": [1, 2]}], labels=evaluation["labels"]) == ("dog", "bird")


def test_selected_cell_first_point_wins():
    points = [
        {"customdata": ["cat", "dog"], "x": "dog", "y": "cat"},
        {"customdata": ["dog", "dog"], "x": "dog", "y": "dog"},
    ]
    assert selected_cell(points) == ("cat", "dog")


@pytest.mark.parametrize(
    "points", [None, [], [{}], [{"point_index": 3}], [{"customdata": [1, 2]}]]
)
def test_selected_cell_nothing_usable(points):
    assert selected_cell(points) is None


def test_selected_cell_ignores_labels_not_in_evaluation():
    assert selected_cell([{"customdata": ["old", "cat"]}], labels=["cat", "dog"]) is None
    assert selected_cell([{"point_index": 99}], labels=["cat", "dog"]) is None


def test_selected_cell_bad_input():
    with pytest.raises(ValueError, match="selection_points"):
        selected_cell({"points": []})
    with pytest.raises(ValueError, match="'x'"):
        selected_cell(["x"])


# --------------------------------------------------------------------------- class distribution


def test_class_distribution():
    fig = class_distribution_figure({"zebra": 40, "ant": 10, "cow": 25})
    roundtrip(fig)
    bar = fig.data[0]
    assert isinstance(bar, go.Bar)
    assert list(bar.x) == ["zebra", "ant", "cow"]  # order as given, not sorted
    assert list(bar.y) == [40, 10, 25]
    assert list(bar.text) == ["40", "10", "25"]
    assert fig.layout.yaxis.title.text == "Number of images"
    assert fig.layout.shapes[0].y0 == pytest.approx(25.0)  # average line
    assert fig.layout.xaxis.type == "category"


def test_class_distribution_empty_and_bad():
    fig = class_distribution_figure({})
    roundtrip(fig)
    assert "No images yet" in [a.text for a in fig.layout.annotations]
    with pytest.raises(ValueError, match="-3"):
        class_distribution_figure({"cat": -3})
    with pytest.raises(ValueError, match="'many'"):
        class_distribution_figure({"cat": "many"})
    with pytest.raises(ValueError, match=r"\[\('cat', 3\)\]"):
        class_distribution_figure([("cat", 3)])


# --------------------------------------------------------------------------- probability bars


def test_probability_bars_top_and_order():
    probs = {"cat": 0.05, "dog": 0.873, "fox": 0.02, "owl": 0.03, "cow": 0.015, "ant": 0.012}
    fig = probability_bars(probs, top=3)
    roundtrip(fig)
    bar = fig.data[0]
    assert bar.orientation == "h"
    assert list(bar.y) == ["dog", "cat", "owl"]
    assert list(bar.x) == [0.873, 0.05, 0.03]
    assert list(bar.text) == ["87.3%", "5.0%", "3.0%"]
    assert fig.layout.yaxis.autorange == "reversed"  # first (highest) bar on top
    assert tuple(fig.layout.xaxis.range) == (0, 1)
    assert "top 3 of 6" in fig.layout.title.text
    assert bar.customdata[0] == "87.300%"


def test_probability_bars_defaults_and_ties():
    fig = probability_bars({"a": 0.25, "b": 0.5, "c": 0.25})
    assert list(fig.data[0].y) == ["b", "a", "c"]  # ties keep the given order
    assert "top" not in fig.layout.title.text


@pytest.mark.parametrize(
    "probs, top, quoted",
    [
        ({}, 5, "empty"),
        ({"a": 1.2}, 5, "1.2"),
        ({"a": float("nan")}, 5, "nan"),
        ({"a": 0.5}, 0, "0"),
        ({"a": 0.5}, 2.0, "2.0"),
        ([0.5], 5, "[0.5]"),
    ],
)
def test_probability_bars_bad_input(probs, top, quoted):
    with pytest.raises(ValueError) as err:
        probability_bars(probs, top=top)
    assert quoted in str(err.value)


# --------------------------------------------------------------------------- comparison


def test_comparison_figure(results):
    fig = comparison_figure(results)
    roundtrip(fig)
    assert [(t.name, t.xaxis) for t in fig.data] == [
        ("ImageNet weights", "x"),
        ("ImageNet weights", "x2"),
        ("From scratch", "x"),
        ("From scratch", "x2"),
    ]
    imagenet_data, imagenet_time, scratch_data, scratch_time = fig.data
    assert list(imagenet_data.x) == [50, 100]  # sorted by images per class
    assert list(imagenet_data.y) == [0.85, 0.92]
    assert list(scratch_data.x) == [50, 100]
    assert list(scratch_data.y) == [0.41, 0.55]
    assert list(imagenet_time.x) == [12.5, 22.0]
    assert list(scratch_time.x) == [21.0, 40.0]
    # hover shows training seconds
    assert "Training time" in imagenet_data.hovertemplate
    assert [c[2] for c in imagenet_data.customdata] == [12.5, 22.0]
    assert [t.showlegend for t in fig.data] == [True, False, True, False]
    assert fig.layout.xaxis.title.text == "Training images per class"
    assert fig.layout.xaxis2.title.text == "Training time (seconds)"
    assert tuple(fig.layout.yaxis.range) == (0, 1)


def test_comparison_figure_one_kind_and_empty(results):
    fig = comparison_figure([r for r in results if r["weights"] == "imagenet"])
    assert {t.name for t in fig.data} == {"ImageNet weights"}
    empty = comparison_figure([])
    roundtrip(empty)
    assert "No comparison runs yet" in [a.text for a in empty.layout.annotations]


@pytest.mark.parametrize(
    "change, quoted",
    [
        ({"weights": "random"}, "'random'"),
        ({"weights": ["imagenet"]}, "['imagenet']"),
        ({"accuracy": 92}, "92"),
        ({"fraction": 0}, "0"),
        ({"train_seconds": -1.0}, "-1.0"),
        ({"images_per_class": "ten"}, "'ten'"),
    ],
)
def test_comparison_figure_bad_input(results, change, quoted):
    results[0].update(change)
    with pytest.raises(ValueError) as err:
        comparison_figure(results)
    assert quoted in str(err.value)


def test_comparison_figure_missing_key(results):
    del results[1]["train_seconds"]
    with pytest.raises(ValueError, match="train_seconds"):
        comparison_figure(results)


# --------------------------------------------------------------------------- per_class_table


def test_per_class_table(evaluation):
    rows = per_class_table(evaluation)
    assert rows == [
        {"Class": "cat", "Precision": 0.888, "Recall": 0.8, "F1": 0.842, "Images": 10},
        {"Class": "dog", "Precision": 0.75, "Recall": 0.6, "F1": 0.667, "Images": 10},
        {"Class": "bird", "Precision": 0.0, "Recall": 0.0, "F1": 0.0, "Images": 0},
    ]
    assert all(isinstance(r["Images"], int) for r in rows)
    json.dumps(rows)


def test_per_class_table_order_follows_labels(evaluation):
    evaluation["labels"] = ["bird", "cat", "dog"]
    evaluation["confusion_matrix"] = [[0, 0, 0], [0, 8, 2], [3, 1, 6]]
    assert [r["Class"] for r in per_class_table(evaluation)] == ["bird", "cat", "dog"]
    del evaluation["labels"]
    assert [r["Class"] for r in per_class_table(evaluation)] == ["cat", "dog", "bird"]


def test_per_class_table_bad_input(evaluation):
    evaluation["per_class"]["dog"]["recall"] = 1.7
    with pytest.raises(ValueError, match="1.7"):
        per_class_table(evaluation)
    evaluation["per_class"]["dog"]["recall"] = 0.6
    del evaluation["per_class"]["bird"]
    with pytest.raises(ValueError, match="'bird'"):
        per_class_table(evaluation)
    with pytest.raises(ValueError, match="per_class"):
        per_class_table({"labels": ["a"]})


def test_per_class_table_undefined_precision(evaluation):
    evaluation["per_class"]["bird"]["precision"] = None
    assert per_class_table(evaluation)[2]["Precision"] is None
    assert not math.isnan(per_class_table(evaluation)[0]["F1"])
