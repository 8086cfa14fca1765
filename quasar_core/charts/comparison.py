"""Charts of accuracy against the amount of data: transfer from ImageNet vs a small CNN trained from scratch, and
per class."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from quasar_core.charts._style import (
    BLUE, GREY, VERMILLION, base_layout, class_colour, class_dash, class_symbol, empty_message, legend_below,
)
from quasar_core.charts.types import ClassAdviceLike, ComparisonResult
from quasar_core.wording import percent, percent_range, plural

# "none": comparisons saved before the small CNN (VGG16 frozen at random weights under a trained head)
WEIGHTS_NAMES = {"imagenet": "Transfer from ImageNet (VGG16)", "scratch": "Small CNN trained from scratch",
                 "none": "VGG16's architecture without its ImageNet knowledge"}
WEIGHTS_COLOURS = {"imagenet": BLUE, "scratch": VERMILLION, "none": GREY}
WEIGHTS_LINES = {"imagenet": ("solid", "circle"), "scratch": ("dot", "square"), "none": ("dash", "diamond")}
ACCURACY_AXIS = "Accuracy on photos each model never saw"
NO_RUNS_TEXT = "No comparison runs yet"
NO_CLASSES_TEXT = "No classes to show yet"


def _error_bars(runs: Sequence[ComparisonResult]) -> dict | None:
    intervals = [r.get("accuracy_interval") for r in runs]
    if any(i is None for i in intervals):
        return None  # a result saved without its interval: no bars rather than wrong ones
    return dict(
        type="data",
        symmetric=False,
        array=[max(0.0, high - r["accuracy"]) for r, (_, high) in zip(runs, intervals)],
        arrayminus=[max(0.0, r["accuracy"] - low) for r, (low, _) in zip(runs, intervals)],
        thickness=1.5,
        width=4,
    )


def comparison_figure(results: Sequence[ComparisonResult]) -> go.Figure:
    """Accuracy on photos each model never saw, transfer from ImageNet vs a small CNN trained from scratch,
    with 95 % error bars.

    Left: accuracy against training photos per class, one line (or point) per kind of start. Right: the
    same runs, accuracy against training time. Error bars span ``accuracy_interval``. Hover shows the exact
    accuracy, its range and on how many photos it was measured, photos per class, share of the data and
    training time. Runs are sorted by photos per class (then fraction); trace order is transfer first, then
    from scratch (then, in comparisons saved before it, VGG16's architecture without its ImageNet
    knowledge), and a kind with no runs gets no trace. No runs gives the annotation "No comparison runs yet".
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Accuracy vs. amount of training photos", "Accuracy vs. training time"),
        horizontal_spacing=0.1,
    )
    base_layout(fig, "Does starting from ImageNet weights help?",
                "Bars: the range the true accuracy is 95 % likely to lie in." if results else None)
    legend_below(fig)
    fig.update_layout(hovermode="closest", margin=dict(l=90))
    for kind, name in WEIGHTS_NAMES.items():
        runs = sorted((r for r in results if r["weights"] == kind),
                      key=lambda r: (r["images_per_class"], r["fraction"]))
        if not runs:
            continue
        customdata = [
            [
                r["images_per_class"],
                percent(r["fraction"], 0),
                float(r["train_seconds"]),
                percent(r["accuracy"], 2),
                f" (95 % range {percent_range(*r['accuracy_interval'])})" if r.get("accuracy_interval") else "",
                plural(int(r.get("test_images", 0)), "photo") if r.get("test_images") else "the photos",
            ]
            for r in runs
        ]
        dash, symbol = WEIGHTS_LINES[kind]
        style = dict(
            mode="lines+markers",
            line=dict(color=WEIGHTS_COLOURS[kind], width=3, dash=dash),
            marker=dict(size=11 if len(runs) == 1 else 9, symbol=symbol),
            error_y=_error_bars(runs),
            legendgroup=kind,
            customdata=customdata,
            hovertemplate=(
                f"<b>{name}</b><br>"
                "Accuracy on %{customdata[5]} it never saw: %{customdata[3]}%{customdata[4]}<br>"
                "Photos per class: %{customdata[0]} (%{customdata[1]} of the data)<br>"
                "Training time: %{customdata[2]:.1f} s<extra></extra>"
            ),
        )
        accuracy = [r["accuracy"] for r in runs]
        for col, key in ((1, "images_per_class"), (2, "train_seconds")):
            fig.add_trace(
                go.Scatter(x=[r[key] for r in runs], y=accuracy, name=name, showlegend=col == 1, **style),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="Training photos per class", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(title_text="Training time (seconds)", rangemode="tozero", row=1, col=2)
    # on two lines: one would be longer than the plot is high
    fig.update_yaxes(title_text=ACCURACY_AXIS.replace(" each ", "<br>each "), range=[0, 1], tickformat=".0%", row=1,
                     col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    if not results:
        empty_message(fig, NO_RUNS_TEXT)
    return fig


def learning_curve_figure(classes: Sequence[ClassAdviceLike]) -> go.Figure:
    """One line per class: cross-validated accuracy of that class against its number of photos.

    A line still climbing at its right end means more photos of that class should help. The
    legend (and hover) says how many more photos the photo check advises, when it does. Lines keep
    the order given, each with its Okabe-Ito colour (past seven classes, another dash and
    marker). A class without a curve is drawn as its single point (count, accuracy). No
    classes gives the annotation "No classes to show yet".
    """
    fig = go.Figure()
    for number, advice in enumerate(classes):
        curve = list(advice.curve) or [(advice.count, advice.accuracy)]
        more = advice.more_photos
        name = advice.label if not more else f"{advice.label} (about {plural(int(more), 'more photo')})"
        advice_text = f"<br>Advice: add about {plural(int(more), 'more photo')}" if more else ""
        fig.add_trace(
            go.Scatter(
                x=[int(photos) for photos, _ in curve],
                y=[float(accuracy) for _, accuracy in curve],
                name=name,
                mode="lines+markers",
                line=dict(color=class_colour(number), dash=class_dash(number), width=3),
                marker=dict(size=8, symbol=class_symbol(number)),
                customdata=[[percent(accuracy)] for _, accuracy in curve],
                hovertemplate=(
                    f"<b>{advice.label}</b><br>With %{{x}} photos: %{{customdata[0]}} right"
                    f"{advice_text}<extra></extra>"
                ),
            )
        )
    base_layout(fig, "Which classes need more photos?",
                "How well each class is recognised as it gets more photos (cross-validated). "
                "A line still climbing at its end: more photos should help." if classes else None)
    legend_below(fig)
    fig.update_layout(hovermode="closest")
    fig.update_xaxes(title_text="Photos of the class", rangemode="tozero")
    fig.update_yaxes(title_text="Share of its photos named correctly", range=[0, 1.02], tickformat=".0%")
    if not classes:
        empty_message(fig, NO_CLASSES_TEXT)
    return fig


__all__ = ["comparison_figure", "learning_curve_figure", "WEIGHTS_NAMES", "ACCURACY_AXIS", "NO_RUNS_TEXT",
           "NO_CLASSES_TEXT"]
