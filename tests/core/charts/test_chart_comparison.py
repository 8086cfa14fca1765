"""comparison_figure (transfer from ImageNet vs a small CNN from scratch) and learning_curve_figure (which class
needs photos)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from quasar_core import charts
from quasar_core.charts._style import CLASS_COLOURS


def run(weights, fraction, per_class, accuracy, seconds, interval=None):
    return {"weights": weights, "fraction": fraction, "images_per_class": per_class,
            "train_images": per_class * 3, "accuracy": accuracy,
            "accuracy_interval": interval or [accuracy - 0.1, accuracy + 0.05],
            "test_images": 300, "train_seconds": seconds}


@pytest.fixture
def results():
    return [
        {**run("scratch", 1.0, 80, 0.55, 140.0), "test_images": 60},
        run("imagenet", 0.5, 50, 0.85, 12.5, interval=[0.8, 0.9]),
        run("imagenet", 1.0, 100, 0.92, 22.0, interval=[0.88, 0.95]),
    ]


def test_comparison_figure(results):
    fig = charts.comparison_figure(results)
    json.loads(fig.to_json())
    assert [(t.name, t.xaxis) for t in fig.data] == [
        ("Transfer from ImageNet (VGG16)", "x"), ("Transfer from ImageNet (VGG16)", "x2"),
        ("Small CNN trained from scratch", "x"), ("Small CNN trained from scratch", "x2"),
    ]
    imagenet_data, imagenet_time, scratch_data, scratch_time = fig.data
    assert list(imagenet_data.x) == [50, 100]  # sorted by photos per class
    assert list(imagenet_data.y) == [0.85, 0.92]
    assert list(scratch_data.x) == [80] and list(scratch_data.y) == [0.55]  # one network: one point
    assert list(imagenet_time.x) == [12.5, 22.0]
    assert list(scratch_time.x) == [140.0]
    assert [t.showlegend for t in fig.data] == [True, False, True, False]
    assert fig.layout.xaxis.title.text == "Training photos per class"
    assert fig.layout.xaxis2.title.text == "Training time (seconds)"
    assert fig.layout.yaxis.title.text.replace("<br>", " ") == charts.ACCURACY_AXIS
    assert charts.ACCURACY_AXIS == "Accuracy on photos each model never saw"
    assert tuple(fig.layout.yaxis.range) == (0, 1)
    assert "60 photos" in scratch_data.customdata[0][5] and "300 photos" in imagenet_data.customdata[0][5]


def test_comparisons_saved_before_the_small_cnn_are_named_for_what_they_measured():
    """A saved "none" result is VGG16 frozen at random weights under a trained head: not "from scratch"."""
    fig = charts.comparison_figure([run("imagenet", 1.0, 100, 0.92, 22.0), run("none", 1.0, 100, 0.55, 40.0)])
    assert [t.name for t in fig.data][::2] == ["Transfer from ImageNet (VGG16)",
                                                "VGG16's architecture without its ImageNet knowledge"]
    assert "scratch" not in fig.data[2].hovertemplate


def test_comparison_figure_error_bars_from_the_interval(results):
    imagenet_data = charts.comparison_figure(results).data[0]
    bars = imagenet_data.error_y
    assert bars.type == "data" and bars.symmetric is False
    assert list(bars.array) == pytest.approx([0.05, 0.03])  # up to the high end
    assert list(bars.arrayminus) == pytest.approx([0.05, 0.04])  # down to the low end


def test_comparison_figure_hover(results):
    imagenet_data = charts.comparison_figure(results).data[0]
    assert list(imagenet_data.customdata[0]) == [50, "50 %", 12.5, "85.00 %", " (95 % range 80–90 %)", "300 photos"]
    assert "Training time: %{customdata[2]:.1f} s" in imagenet_data.hovertemplate
    assert "Accuracy on %{customdata[5]} it never saw: %{customdata[3]}%{customdata[4]}" in imagenet_data.hovertemplate


def test_comparison_figure_one_kind_without_intervals_and_empty(results):
    old = [{k: v for k, v in r.items() if k != "accuracy_interval"} for r in results if r["weights"] == "imagenet"]
    fig = charts.comparison_figure(old)
    assert {t.name for t in fig.data} == {"Transfer from ImageNet (VGG16)"}
    assert fig.data[0].error_y.array is None  # no interval saved: no bars
    assert fig.data[0].customdata[0][4] == ""
    empty = charts.comparison_figure([])
    json.loads(empty.to_json())
    assert "No comparison runs yet" in [a.text for a in empty.layout.annotations]


# --------------------------------------------------------------------------- learning curves


@dataclass(frozen=True)
class Advice:
    label: str
    count: int
    accuracy: float
    curve: tuple[tuple[int, float], ...]
    more_photos: int | None


def test_learning_curve_one_line_per_class_in_order():
    classes = [
        Advice("cat", 40, 0.8, ((10, 0.5), (20, 0.7), (40, 0.8)), 30),
        Advice("dog", 40, 0.95, ((10, 0.85), (20, 0.93), (40, 0.95)), None),
    ]
    fig = charts.learning_curve_figure(classes)
    json.loads(fig.to_json())
    cat, dog = fig.data
    assert cat.name == "cat (about 30 more photos)" and dog.name == "dog"
    assert (list(cat.x), list(cat.y)) == ([10, 20, 40], [0.5, 0.7, 0.8])
    assert [c[0] for c in dog.customdata] == ["85.0 %", "93.0 %", "95.0 %"]
    assert "add about 30 more photos" in cat.hovertemplate and "Advice" not in dog.hovertemplate
    assert [cat.line.color, dog.line.color] == list(CLASS_COLOURS[:2])
    assert fig.layout.xaxis.title.text == "Photos of the class"
    assert fig.layout.yaxis.tickformat == ".0%"
    assert "more photos" in fig.layout.title.text


def test_learning_curve_class_without_curve_and_one_more_photo():
    fig = charts.learning_curve_figure([Advice("owl", 3, 0.33, (), 1)])
    (owl,) = fig.data
    assert (list(owl.x), list(owl.y)) == ([3], [0.33])
    assert owl.name == "owl (about 1 more photo)"


def test_learning_curve_empty():
    fig = charts.learning_curve_figure([])
    json.loads(fig.to_json())
    assert len(fig.data) == 0
    assert [a.text for a in fig.layout.annotations] == ["No classes to show yet"]
