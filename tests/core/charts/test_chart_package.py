"""Rules for the whole charts package: pure, small modules, every builder re-exported, one % style."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from quasar_core import charts
from quasar_core.evaluation import Evaluation

REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "quasar_core" / "charts"
BUILDERS = [
    "training_curves", "selection_figure", "confusion_matrix_figure", "selected_cell", "per_class_table",
    "reliability_figure", "class_distribution_figure", "probability_bars", "comparison_figure",
    "learning_curve_figure", "photo_map_figure", "selected_photo", "familiarity_histogram",
]


@dataclass(frozen=True)
class Advice:
    label: str
    count: int
    accuracy: float
    curve: tuple[tuple[int, float], ...]
    more_photos: int | None


def every_figure():
    """One figure from each builder, with inputs kept to check they are not changed."""
    history = [
        {"phase": "head", "strength": 0.1, "accuracy": 0.8, "log_loss": 0.5, "train_accuracy": 0.9, "chosen": True},
        {"phase": "fine-tune", "epoch": 1, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.75,
         "seconds": 3.0, "label": "hold-out"},
    ]
    evaluation = Evaluation(
        accuracy=0.75, labels=["a", "b"], confusion_matrix=[[2, 1], [0, 1]],
        per_class={"a": {"precision": 1.0, "recall": 0.667, "f1": 0.8, "support": 3},
                   "b": {"precision": 0.5, "recall": 1.0, "f1": 0.667, "support": 1}},
        accuracy_interval=[0.3, 0.95], method="held-out photos", calibration_error=0.1,
        reliability=[{"low": 0.7, "high": 0.8, "confidence": 0.75, "accuracy": 0.75, "count": 4}],
    )
    results = [{"weights": "imagenet", "fraction": 1.0, "images_per_class": 2, "train_images": 4, "accuracy": 0.75,
                "accuracy_interval": [0.3, 0.95], "test_images": 4, "train_seconds": 1.5}]
    classes = [Advice("a", 3, 0.667, ((1, 0.5), (3, 0.667)), 5)]
    counts = {"a": 3, "b": 1}
    probabilities = {"a": 0.6, "b": 0.4}
    points = np.array([[0.0, 1.0], [1.0, 0.0]])
    labels, names, flagged = ["a", "b"], ["a.jpg", "b.jpg"], {"b.jpg": "blurry"}
    familiarity, unknown = [0.2, 0.9], [True, False]
    inputs = (history, evaluation, results, classes, counts, probabilities, points, labels, names, flagged,
              familiarity, unknown)
    before = copy.deepcopy(inputs)
    figures = [
        charts.training_curves(history), charts.selection_figure(history),
        charts.confusion_matrix_figure(evaluation), charts.confusion_matrix_figure(evaluation, normalize=True),
        charts.reliability_figure(evaluation), charts.class_distribution_figure(counts),
        charts.probability_bars(probabilities), charts.probability_bars(probabilities, unknown=True),
        charts.comparison_figure(results), charts.learning_curve_figure(classes),
        charts.photo_map_figure(points, labels, names, flagged=flagged),
        charts.familiarity_histogram(familiarity, unknown, threshold=0.5),
    ]
    charts.per_class_table(evaluation)
    return figures, inputs, before


def test_package_imports_neither_streamlit_nor_tensorflow():
    code = ("import sys; from quasar_core import charts; "
            "bad = [m for m in ('streamlit', 'tensorflow', 'keras', 'sklearn') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_every_builder_is_re_exported():
    for name in BUILDERS:
        assert name in charts.__all__ and callable(getattr(charts, name)), name
    assert all(hasattr(charts, name) for name in charts.__all__)


def test_the_old_module_is_gone_and_modules_stay_small():
    assert not (REPO / "quasar_core" / "charts.py").exists()  # a module would shadow the package
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text().splitlines()) < 300, path.name


def test_builders_are_pure():
    figures, inputs, before = every_figure()
    after = inputs
    assert all(isinstance(f, go.Figure) for f in figures)
    for new, old in zip(after, before):
        if isinstance(new, np.ndarray):
            assert np.array_equal(new, old)
        else:
            assert new == old
    for fig in figures:
        fig.to_json()


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, v in value.items():
            if key not in ("tickformat", "hoverformat"):  # plotly's ".0%" stays fine on axes
                yield from strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v)


def test_one_percent_style_in_every_text_and_hover():
    """"94.7 %" everywhere people read a number; plotly's "%{y:.1%}" (no space) nowhere."""
    figures, _, _ = every_figure()
    seen = 0
    for fig in figures:
        data = fig.to_plotly_json()
        texts = list(strings(data["data"])) + [a.get("text", "") for a in data["layout"].get("annotations", [])]
        title = data["layout"].get("title", {})
        texts += [title.get("text", ""), title.get("subtitle", {}).get("text", "")]
        for text in texts:
            assert not re.search(r"%\{[^}]*%\}", text), text  # a plotly percent format in a hover
            assert not re.search(r"\d%", text), text  # "94.7%" without the space
            seen += bool(re.search(r"\d %", text))
    assert seen > 10
