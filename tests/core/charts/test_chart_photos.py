"""class_distribution_figure, photo_map_figure and selected_photo (the click on the map)."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from quasar_core import charts
from quasar_core.charts._style import BLACK, CLASS_COLOURS


# --------------------------------------------------------------------------- class distribution


def test_class_distribution():
    fig = charts.class_distribution_figure({"zebra": 40, "ant": 10, "cow": 25})
    json.loads(fig.to_json())
    bar = fig.data[0]
    assert isinstance(bar, go.Bar)
    assert list(bar.x) == ["zebra", "ant", "cow"]  # order as given, not sorted
    assert list(bar.y) == [40, 10, 25]
    assert list(bar.text) == ["40", "10", "25"]
    assert "photos" in bar.hovertemplate
    assert fig.layout.title.text == "Photos per class"
    assert fig.layout.yaxis.title.text == "Number of photos"
    assert fig.layout.xaxis.type == "category"
    assert fig.layout.shapes[0].y0 == pytest.approx(25.0)  # the average line
    assert "Average: 25" in [a.text for a in fig.layout.annotations]


def test_class_distribution_equal_bars_and_empty():
    assert len(charts.class_distribution_figure({"a": 5, "b": 5}).layout.shapes) == 0
    assert "Average: 12.5" in [a.text for a in charts.class_distribution_figure({"a": 10, "b": 15}).layout.annotations]
    empty = charts.class_distribution_figure({})
    json.loads(empty.to_json())
    assert [a.text for a in empty.layout.annotations] == ["No photos yet"]


# --------------------------------------------------------------------------- photo map


@pytest.fixture
def photos():
    points = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0], [8.0, 9.0]])
    labels = ["dog", "cat", "dog", "cat", "bird"]
    names = ["d1.jpg", "c1.jpg", "d<2>.jpg", "c2.jpg", "b1.jpg"]
    return points, labels, names


def test_photo_map_one_trace_per_class(photos):
    points, labels, names = photos
    fig = charts.photo_map_figure(points, labels, names)
    json.loads(fig.to_json())
    assert [t.name for t in fig.data] == ["bird", "cat", "dog"]  # sorted: the same colours every time
    bird, cat, dog = fig.data
    assert (list(dog.x), list(dog.y)) == ([0.0, 4.0], [1.0, 5.0])
    assert [c[0] for c in dog.customdata] == ["d1.jpg", "d<2>.jpg"]  # the exact name, for the click
    assert dog.customdata[1][1] == "d&lt;2&gt;.jpg"  # ...and a safe one to show
    assert [t.marker.color for t in fig.data] == list(CLASS_COLOURS[:3])
    assert "%{customdata[1]}" in dog.hovertemplate and "Class: %{customdata[2]}" in dog.hovertemplate
    assert fig.layout.clickmode == "event+select" and fig.layout.uirevision == "photo map"
    assert "5 photos" in fig.layout.title.subtitle.text


def test_photo_map_flagged_photos_get_a_ring_and_a_reason(photos):
    points, labels, names = photos
    flagged = {"c2.jpg": "looks like a dog", "not-on-the-map.jpg": "gone"}
    fig = charts.photo_map_figure(points, labels, names, flagged=flagged)
    ring = fig.data[-1]
    assert ring.name == charts.FLAGGED_NAME == "Flagged for a look"
    assert (list(ring.x), list(ring.y)) == ([6.0], [7.0])
    assert ring.marker.symbol == "circle-open" and ring.marker.color == BLACK
    assert ring.customdata[0][0] == "c2.jpg"
    assert ring.customdata[0][3] == "<br>Flagged: looks like a dog"
    cat = fig.data[1]
    assert [c[3] for c in cat.customdata] == ["", "<br>Flagged: looks like a dog"]  # reason on hover too
    assert "1 photo flagged" in fig.layout.title.subtitle.text


def test_photo_map_many_classes_change_shape():
    labels = [f"class {i:02d}" for i in range(9)]
    fig = charts.photo_map_figure(np.arange(18.0).reshape(9, 2), labels, [f"{i}.jpg" for i in range(9)])
    assert fig.data[0].marker.color == fig.data[7].marker.color  # seven colours, then repeats...
    assert fig.data[0].marker.symbol != fig.data[7].marker.symbol  # ...with another marker


def test_photo_map_thumbnails_and_empty(photos):
    points, labels, names = photos
    fig = charts.photo_map_figure(points, labels, names, thumbnails={"b1.jpg": "data:image/png;base64,AAAA"})
    (image,) = fig.layout.images
    assert (image.x, image.y, image.xref, image.source) == (8.0, 9.0, "x", "data:image/png;base64,AAAA")
    assert image.layer == "below"  # the markers, which take the clicks, stay on top
    empty = charts.photo_map_figure(np.zeros((0, 2)), [], [])
    json.loads(empty.to_json())
    assert len(empty.data) == 0 and [a.text for a in empty.layout.annotations] == ["No photos yet"]


def test_photo_map_does_not_change_its_inputs(photos):
    points, labels, names = photos
    before = (points.copy(), list(labels), list(names))
    flagged = {"c1.jpg": "blurry"}
    charts.photo_map_figure(points, labels, names, flagged=flagged)
    assert np.array_equal(points, before[0]) and (labels, names) == before[1:]
    assert flagged == {"c1.jpg": "blurry"}


# --------------------------------------------------------------------------- selected_photo


def test_selected_photo_roundtrip_from_figure(photos):
    points, labels, names = photos
    dog = charts.photo_map_figure(points, labels, names).data[2]
    point = {"curve_number": 2, "point_index": 1, "x": dog.x[1], "y": dog.y[1], "customdata": list(dog.customdata[1])}
    assert charts.selected_photo([point]) == "d<2>.jpg"
    assert charts.selected_photo([{"customdata": "c1.jpg"}]) == "c1.jpg"
    assert charts.selected_photo([{"x": 1.0}, {"customdata": ["b1.jpg", "b1.jpg", "bird", ""]}]) == "b1.jpg"


@pytest.mark.parametrize("points", [None, [], [{}], [{"customdata": [3]}], [{"x": 1.0, "y": 2.0}]])
def test_selected_photo_nothing_usable(points):
    assert charts.selected_photo(points) is None
