"""Chart builders for the dashboard: plain data in, ``plotly.graph_objects.Figure`` out.

Every builder here is a pure function. It does not import streamlit or tensorflow, does
not read files and does not change its inputs, so the same data always gives the same
figure and every chart can be tested without a browser.

The charts are meant for people who are not machine-learning specialists: titles and
axis labels are in plain words, colours come from a colour-blind-safe palette, and the
hover text shows exact numbers.

Bad inputs raise ``ValueError`` with a message that quotes the offending value.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "training_curves",
    "confusion_matrix_figure",
    "class_distribution_figure",
    "probability_bars",
    "comparison_figure",
    "per_class_table",
    "selected_cell",
    "NO_EPOCHS_TEXT",
    "PHASE_NAMES",
    "WEIGHTS_NAMES",
]

# Okabe-Ito palette: distinguishable with the common kinds of colour blindness.
BLUE = "#0072B2"
ORANGE = "#E69F00"
VERMILLION = "#D55E00"
GREEN = "#009E73"
GREY = "#8C96A0"
FINE_TUNE_FILL = "#009E73"

TEMPLATE = "plotly_white"
FONT = dict(size=14)

NO_EPOCHS_TEXT = "No epochs yet"
PHASE_NAMES = {"head": "Training the new top layers", "fine-tune": "Fine-tuning"}
WEIGHTS_NAMES = {"imagenet": "ImageNet weights", "none": "From scratch"}
WEIGHTS_COLOURS = {"imagenet": BLUE, "none": VERMILLION}

_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80
_short.maxlist = 8
_short.maxdict = 8


def _q(value: Any) -> str:
    """A short repr of ``value`` for error messages (large inputs are cut)."""
    return _short.repr(value)


# --------------------------------------------------------------------------- checks


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number(value: Any, what: str, *, lo: float | None = None, hi: float | None = None) -> float:
    """A finite real number within [lo, hi], as a Python float."""
    if not _is_number(value) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {_q(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{what} must be between {lo} and {hi}, got {_q(value)}")
    return float(value)


def _curve_value(value: Any, what: str, *, lo=None, hi=None) -> float | None:
    """A point on a training curve: None, NaN and inf become a gap (None)."""
    if value is None:
        return None  # e.g. Keras gave no value for this epoch: a gap, not a crash
    if not _is_number(value):
        raise ValueError(f"{what} must be a number, got {_q(value)}")
    if not math.isfinite(value):
        return None  # a diverged loss: draw a gap rather than break the chart
    return _number(value, what, lo=lo, hi=hi)


def _count(value: Any, what: str) -> int:
    """A whole number >= 0 (numpy integers and integral floats are accepted)."""
    if _is_int(value):
        result = int(value)
    elif _is_number(value) and math.isfinite(value) and float(value).is_integer():
        result = int(value)
    else:
        raise ValueError(f"{what} must be a whole number, got {_q(value)}")
    if result < 0:
        raise ValueError(f"{what} must not be negative, got {_q(value)}")
    return result


def _label(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {_q(value)}")
    return value


def _is_sequence(value: Any) -> bool:
    """A list-like (list, tuple, numpy array, ...) but not a string or a mapping."""
    if isinstance(value, (str, bytes, Mapping)):
        return False
    if isinstance(value, Sequence):
        return True
    # numpy arrays (but not numpy scalars, which also have .tolist())
    return hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0


def _as_list(value: Any) -> list:
    return value.tolist() if hasattr(value, "tolist") else list(value)


_EVALUATION_KEYS = ("accuracy", "labels", "confusion_matrix", "per_class")


def _evaluation_mapping(evaluation: Any) -> Mapping:
    """The evaluation dict; an object with those attributes (quasar_core.evaluation.Evaluation)
    is read the same way, without copying its per-image predictions."""
    if isinstance(evaluation, Mapping):
        return evaluation
    if all(hasattr(evaluation, k) for k in ("labels", "confusion_matrix")):
        return {k: getattr(evaluation, k) for k in _EVALUATION_KEYS if hasattr(evaluation, k)}
    raise ValueError(f"evaluation must be a dict, got {_q(evaluation)}")


def _labels(evaluation: Mapping) -> list[str]:
    if "labels" not in evaluation:
        raise ValueError(f"evaluation has no 'labels'; keys are {_q(sorted(evaluation))}")
    raw = evaluation["labels"]
    if not _is_sequence(raw):
        raise ValueError(f"evaluation['labels'] must be a list of class names, got {_q(raw)}")
    labels = [_label(v, "each class label") for v in _as_list(raw)]
    if not labels:
        raise ValueError("evaluation['labels'] is empty: there are no classes to show")
    seen: set[str] = set()
    for name in labels:
        if name in seen:
            raise ValueError(f"class label {name!r} appears twice in evaluation['labels']")
        seen.add(name)
    return labels


def _matrix(evaluation: Mapping, labels: list[str]) -> list[list[int]]:
    if "confusion_matrix" not in evaluation:
        raise ValueError(
            f"evaluation has no 'confusion_matrix'; keys are {_q(sorted(evaluation))}"
        )
    raw = evaluation["confusion_matrix"]
    if not _is_sequence(raw):
        raise ValueError(f"confusion_matrix must be a list of rows, got {_q(raw)}")
    rows = _as_list(raw)
    n = len(rows)
    for i, row in enumerate(rows):
        if not _is_sequence(row):
            raise ValueError(f"confusion_matrix row {i} must be a list of counts, got {_q(row)}")
        if len(row) != n:
            raise ValueError(
                f"confusion_matrix must be square: it has {n} rows but row {i} has "
                f"{len(row)} values: {_q(_as_list(row))}"
            )
    if n != len(labels):
        raise ValueError(
            f"confusion_matrix is {n}x{n} but there are {len(labels)} labels {_q(labels)}"
        )
    return [
        [_count(v, f"confusion_matrix[{i}][{j}]") for j, v in enumerate(_as_list(row))]
        for i, row in enumerate(rows)
    ]


def _accuracy(evaluation: Mapping) -> float | None:
    if evaluation.get("accuracy") is None:
        return None
    return _number(evaluation["accuracy"], "evaluation['accuracy']", lo=0.0, hi=1.0)


def _pct(fraction: float, digits: int = 1) -> str:
    """0.8734 -> '87.3%' (as the rest of the dashboard writes it)."""
    return f"{fraction * 100:.{digits}f}%"


def _base_layout(fig: go.Figure, title: str) -> None:
    fig.update_layout(
        template=TEMPLATE,
        font=FONT,
        title=dict(text=title, x=0.0, xanchor="left"),
        hoverlabel=dict(font_size=14),
        margin=dict(l=70, r=30, t=80, b=60),
    )


def _empty_message(fig: go.Figure, text: str) -> None:
    fig.add_annotation(
        text=text,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        showarrow=False,
        font=dict(size=18, color=GREY),
    )


# --------------------------------------------------------------------------- history

_HISTORY_REQUIRED = ("epoch", "phase", "loss", "accuracy")


def _history_rows(history: Any) -> list[dict]:
    if history is None or isinstance(history, (str, bytes, Mapping)) or not _is_sequence(history):
        raise ValueError(f"history must be a list of per-epoch dicts, got {_q(history)}")
    rows: list[dict] = []
    previous_epoch: int | None = None
    for i, item in enumerate(history):
        if not isinstance(item, Mapping):
            raise ValueError(f"history[{i}] must be a dict, got {_q(item)}")
        missing = [k for k in _HISTORY_REQUIRED if k not in item]
        if missing:
            raise ValueError(f"history[{i}] is missing {missing}: {_q(dict(item))}")
        epoch = item["epoch"]
        if not _is_int(epoch) or epoch < 1:
            raise ValueError(f"history[{i}]['epoch'] must be a whole number >= 1, got {_q(epoch)}")
        epoch = int(epoch)
        if previous_epoch is not None and epoch <= previous_epoch:
            raise ValueError(
                f"history epochs must increase: epoch {epoch} comes after epoch {previous_epoch}"
            )
        previous_epoch = epoch
        phase = item["phase"]
        if not isinstance(phase, str) or phase not in PHASE_NAMES:
            raise ValueError(
                f"history[{i}]['phase'] must be 'head' or 'fine-tune', got {_q(phase)}"
            )
        seconds = item.get("seconds")
        if seconds is not None:
            seconds = _curve_value(seconds, f"history[{i}]['seconds']", lo=0.0)
        rows.append(
            {
                "epoch": epoch,
                "phase": phase,
                "loss": _curve_value(item["loss"], f"history[{i}]['loss']"),
                "accuracy": _curve_value(
                    item["accuracy"], f"history[{i}]['accuracy']", lo=0.0, hi=1.0
                ),
                "val_loss": _curve_value(item.get("val_loss"), f"history[{i}]['val_loss']"),
                "val_accuracy": _curve_value(
                    item.get("val_accuracy"),
                    f"history[{i}]['val_accuracy']",
                    lo=0.0,
                    hi=1.0,
                ),
                "seconds": seconds,
            }
        )
    return rows


def _fine_tune_spans(rows: list[dict]) -> list[tuple[int, int]]:
    """(first, last) epoch of each unbroken run of fine-tune epochs."""
    spans: list[tuple[int, int]] = []
    start = last = None
    for row in rows:
        if row["phase"] == "fine-tune":
            if start is None:
                start = row["epoch"]
            last = row["epoch"]
        elif start is not None:
            spans.append((start, last))
            start = last = None
    if start is not None:
        spans.append((start, last))
    return spans


def training_curves(history, *, title: str = "Training progress") -> go.Figure:
    """Loss (left) and accuracy (right) per epoch, for training and validation images.

    Validation lines are dashed; epochs with no validation value leave a gap. Epochs of
    the fine-tune phase are shaded and labelled "Fine-tuning" (one shaded band per
    subplot per unbroken run, from ``first - 0.5`` to ``last + 0.5`` so whole epochs are
    covered). ``layout.uirevision`` is the title, so a chart redrawn while training runs
    keeps the user's zoom. An empty history gives the empty axes and the annotation
    "No epochs yet".
    """
    if not isinstance(title, str):
        raise ValueError(f"title must be a string, got {_q(title)}")
    rows = _history_rows(history)

    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Loss (lower is better)", "Accuracy (higher is better)"),
        horizontal_spacing=0.1,
    )
    _base_layout(fig, title)
    fig.update_layout(
        uirevision=title,
        hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=-0.3, x=0.0),
        margin=dict(b=100),
    )

    epochs = [r["epoch"] for r in rows]
    hover_extra = [
        PHASE_NAMES[r["phase"]]
        + ("" if r["seconds"] is None else f", took {r['seconds']:.1f} s")
        for r in rows
    ]
    series = [
        # key, column, legend name, colour, dash, number format
        ("loss", 1, "Training images", BLUE, "solid", ".4f"),
        ("val_loss", 1, "Validation images", ORANGE, "dash", ".4f"),
        ("accuracy", 2, "Training images", BLUE, "solid", ".2%"),
        ("val_accuracy", 2, "Validation images", ORANGE, "dash", ".2%"),
    ]
    legend_shown: set[str] = set()
    for key, col, name, colour, dash, fmt in series:
        values = [r[key] for r in rows]
        if all(v is None for v in values):
            continue  # no epochs yet, or no validation split: no empty legend entries
        what = "loss" if col == 1 else "accuracy"
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=values,
                name=name,
                legendgroup=name,
                showlegend=name not in legend_shown,
                mode="lines+markers",
                line=dict(color=colour, dash=dash, width=3),
                marker=dict(size=7),
                connectgaps=False,
                customdata=hover_extra,
                # the phase and time are the same for both lines: show them once
                hovertemplate=(
                    f"{name}, {what}: %{{y:{fmt}}}"
                    + ("<br>%{customdata}" if dash == "solid" else "")
                    + "<extra></extra>"
                ),
            ),
            row=1,
            col=col,
        )
        legend_shown.add(name)

    for first, last in _fine_tune_spans(rows):
        for col in (1, 2):
            fig.add_vrect(
                x0=first - 0.5,
                x1=last + 0.5,
                row=1,
                col=col,
                fillcolor=FINE_TUNE_FILL,
                opacity=0.12,
                line_width=0,
                layer="below",
                annotation_text="Fine-tuning",
                annotation_position="top left",
                annotation_font=dict(size=13, color=GREEN),
            )

    if epochs:
        lo, hi = epochs[0] - 0.5, epochs[-1] + 0.5
    else:
        lo, hi = 0.5, 1.5
    span = epochs[-1] - epochs[0] + 1 if epochs else 1
    fig.update_xaxes(
        title_text="Epoch (one pass over all training images)",
        range=[lo, hi],
        tickmode="linear",
        tick0=0,
        dtick=max(1, math.ceil(span / 10)),
        tickformat="d",
        showgrid=False,
    )
    fig.update_yaxes(title_text="Loss", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(
        title_text="Share of images labelled correctly",
        range=[0, 1],
        tickformat=".0%",
        row=1,
        col=2,
    )
    if not rows:
        _empty_message(fig, NO_EPOCHS_TEXT)
    return fig


# --------------------------------------------------------------------------- confusion matrix


def confusion_matrix_figure(evaluation, *, normalize: bool = False) -> go.Figure:
    """Heatmap of true class (rows, first label on top) against predicted class (columns).

    Each cell shows its image count; with ``normalize=True`` the colour is the share of
    the row (of all images whose real class is that row) and the cell also shows that
    share. Text colour is picked by plotly to contrast with the cell, so the dark
    diagonal stays readable. Cell ``customdata`` is ``[true_label, predicted_label]``.

    Plotly heatmaps send no selection events to Streamlit, so the figure also holds a
    transparent marker at every cell centre (trace 1, ``name="cells"``) with the same
    ``customdata``: clicking a cell selects that marker, and ``selected_cell`` turns the
    event's points into ``(true_label, predicted_label)``.
    """
    if not isinstance(normalize, bool):
        raise ValueError(f"normalize must be True or False, got {_q(normalize)}")
    evaluation = _evaluation_mapping(evaluation)
    labels = _labels(evaluation)
    matrix = _matrix(evaluation, labels)
    accuracy = _accuracy(evaluation)

    row_totals = [sum(row) for row in matrix]
    shares = [
        [(v / total if total else 0.0) for v in row] for row, total in zip(matrix, row_totals)
    ]
    cells = [[[true, pred] for pred in labels] for true in labels]

    text: list[list[str]] = []
    hover: list[list[str]] = []
    for i, true in enumerate(labels):
        text_row, hover_row = [], []
        for j, pred in enumerate(labels):
            count = matrix[i][j]
            share = _pct(shares[i][j]) if row_totals[i] else "–"
            text_row.append(f"{count}<br>{share}" if normalize else str(count))
            verdict = "correct" if i == j else "mistake"
            hover_row.append(
                f"Real class: {true}<br>Predicted: {pred} ({verdict})<br>"
                f"Images: {count} of {row_totals[i]} real '{true}' images ({share})"
            )
        text.append(text_row)
        hover.append(hover_row)

    z = shares if normalize else [list(row) for row in matrix]
    colorbar = (
        dict(title=dict(text="Share of<br>real class"), tickformat=".0%")
        if normalize
        else dict(title=dict(text="Images"), tickformat="d")  # counts are whole numbers
    )
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            text=text,
            texttemplate="%{text}",
            customdata=cells,
            colorscale="Blues",
            zmin=0,
            zmax=1 if normalize else max(1, max(max(row) for row in matrix)),
            colorbar=colorbar,
            xgap=1,
            ygap=1,
            hoverinfo="skip",  # the "cells" markers carry the hover text
            name="confusion matrix",
        )
    )
    n = len(labels)
    fig.add_trace(
        go.Scatter(
            x=[pred for _ in labels for pred in labels],
            y=[true for true in labels for _ in labels],
            customdata=[cell for row in cells for cell in row],
            hovertext=[h for row in hover for h in row],
            hovertemplate="%{hovertext}<extra></extra>",
            mode="markers",
            marker=dict(size=18, color="rgba(0,0,0,0)", symbol="circle"),
            selected=dict(marker=dict(color=VERMILLION, opacity=0.9)),
            unselected=dict(marker=dict(opacity=0)),
            showlegend=False,
            name="cells",
        )
    )
    title = "What the model predicted for each real class"
    if accuracy is not None:
        title += f" — {_pct(accuracy)} correct overall"
    _base_layout(fig, title)
    fig.update_layout(
        hovermode="closest",
        hoverdistance=-1,  # a click anywhere in a cell reaches that cell's marker
        clickmode="event+select",
        height=max(400, min(900, 120 + 45 * n)),
    )
    fig.update_xaxes(
        title_text="Predicted class",
        type="category",
        showgrid=False,
        tickangle=0 if n <= 8 else -45,
    )
    fig.update_yaxes(
        title_text="Real class", type="category", autorange="reversed", showgrid=False
    )
    return fig


# --------------------------------------------------------------------------- simple bars


def class_distribution_figure(counts) -> go.Figure:
    """Bars of images per class, in the order given, with a dashed line at the average."""
    if not isinstance(counts, Mapping):
        raise ValueError(
            f"counts must be a dict of class name -> number of images, got {_q(counts)}"
        )
    names = [_label(name, "each class name in counts") for name in counts]
    values = [_count(counts[name], f"counts[{name!r}]") for name in names]

    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=names,
            y=values,
            text=[str(v) for v in values],
            textposition="outside",
            cliponaxis=False,
            marker_color=BLUE,
            hovertemplate="%{x}: %{y} images<extra></extra>",
            name="Images",
        )
    )
    _base_layout(fig, "Images per class")
    fig.update_xaxes(title_text="Class", type="category")
    fig.update_yaxes(title_text="Number of images", rangemode="tozero")
    if not names:
        _empty_message(fig, "No images yet")
    elif len(names) > 1 and len(set(values)) > 1:  # an average line over equal bars says nothing
        average = sum(values) / len(values)
        fig.add_hline(
            y=average,
            line_dash="dash",
            line_color=GREY,
            annotation_text=f"Average: {average:.0f}" if average == int(average) else f"Average: {average:.1f}",
            annotation_position="top right",
        )
    return fig


def probability_bars(probabilities, *, top: int = 5) -> go.Figure:
    """Horizontal bars of the ``top`` most likely classes, highest on top, text "87.3 %".

    Ties keep the order given. The most likely class is drawn in a stronger colour.
    """
    if not _is_int(top) or top < 1:
        raise ValueError(f"top must be a whole number of at least 1, got {_q(top)}")
    if not isinstance(probabilities, Mapping):
        raise ValueError(
            f"probabilities must be a dict of class name -> probability, got {_q(probabilities)}"
        )
    if not probabilities:
        raise ValueError("probabilities is empty: there is no prediction to show")
    items = [
        (_label(name, "each class name in probabilities"),
         _number(p, f"probabilities[{name!r}]", lo=0.0, hi=1.0))
        for name, p in probabilities.items()
    ]
    ranked = sorted(items, key=lambda item: -item[1])[: int(top)]
    names = [name for name, _ in ranked]
    values = [p for _, p in ranked]

    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            text=[_pct(p) for p in values],
            textposition="outside",
            cliponaxis=False,
            customdata=[_pct(p, 3) for p in values],
            hovertemplate="%{y}: %{customdata}<extra></extra>",
            marker_color=[BLUE] + [GREY] * (len(values) - 1),
            name="Probability",
        )
    )
    title = "How sure the model is"
    if len(items) > len(ranked):
        title += f" (top {len(ranked)} of {len(items)} classes)"
    _base_layout(fig, title)
    fig.update_layout(height=max(250, 90 + 45 * len(names)), margin=dict(r=70))
    fig.update_xaxes(
        title_text="Probability", range=[0, 1], tickformat=".0%", dtick=0.25
    )
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


# --------------------------------------------------------------------------- comparison

_COMPARISON_KEYS = ("weights", "fraction", "images_per_class", "accuracy", "train_seconds")


def _comparison_rows(results: Any) -> list[dict]:
    if results is None or isinstance(results, (str, bytes, Mapping)) or not _is_sequence(results):
        raise ValueError(f"results must be a list of dicts, got {_q(results)}")
    rows = []
    for i, item in enumerate(results):
        if not isinstance(item, Mapping):
            raise ValueError(f"results[{i}] must be a dict, got {_q(item)}")
        missing = [k for k in _COMPARISON_KEYS if k not in item]
        if missing:
            raise ValueError(f"results[{i}] is missing {missing}: {_q(dict(item))}")
        if not isinstance(item["weights"], str) or item["weights"] not in WEIGHTS_NAMES:
            raise ValueError(
                f"results[{i}]['weights'] must be 'imagenet' or 'none', got {_q(item['weights'])}"
            )
        fraction = _number(item["fraction"], f"results[{i}]['fraction']", lo=0.0, hi=1.0)
        if fraction == 0:
            raise ValueError(
                f"results[{i}]['fraction'] must be more than 0, got {_q(item['fraction'])}"
            )
        rows.append(
            {
                "weights": item["weights"],
                "fraction": fraction,
                "images_per_class": _count(
                    item["images_per_class"], f"results[{i}]['images_per_class']"
                ),
                "accuracy": _number(item["accuracy"], f"results[{i}]['accuracy']", lo=0.0, hi=1.0),
                "train_seconds": _number(
                    item["train_seconds"], f"results[{i}]['train_seconds']", lo=0.0
                ),
            }
        )
    return rows


def comparison_figure(results) -> go.Figure:
    """Held-out accuracy with ImageNet weights vs from scratch.

    Left: accuracy against training images per class, one line per kind of starting
    weights. Right: the same runs, accuracy against training time. Hover shows the exact
    accuracy, images per class, share of the data and training seconds. Runs are sorted
    by images per class (then fraction); trace order is ImageNet first, then from scratch,
    and a kind with no runs gets no trace.
    """
    rows = _comparison_rows(results)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Accuracy vs. amount of training data", "Accuracy vs. training time"),
        horizontal_spacing=0.1,
    )
    _base_layout(fig, "Does starting from ImageNet weights help?")
    fig.update_layout(
        hovermode="closest",
        legend=dict(orientation="h", yanchor="bottom", y=-0.3, x=0.0),
        margin=dict(b=100),
    )
    for kind, name in WEIGHTS_NAMES.items():
        runs = sorted(
            (r for r in rows if r["weights"] == kind),
            key=lambda r: (r["images_per_class"], r["fraction"]),
        )
        if not runs:
            continue
        customdata = [
            [
                r["images_per_class"],
                _pct(r["fraction"], 0),
                r["train_seconds"],
                _pct(r["accuracy"], 2),
            ]
            for r in runs
        ]
        hovertemplate = (
            f"<b>{name}</b><br>"
            "Accuracy on held-out images: %{customdata[3]}<br>"
            "Images per class: %{customdata[0]} (%{customdata[1]} of the data)<br>"
            "Training time: %{customdata[2]:.1f} s<extra></extra>"
        )
        style = dict(
            mode="lines+markers",
            line=dict(
                color=WEIGHTS_COLOURS[kind],
                width=3,
                dash="solid" if kind == "imagenet" else "dot",
            ),
            marker=dict(size=9, symbol="circle" if kind == "imagenet" else "square"),
            legendgroup=kind,
            customdata=customdata,
            hovertemplate=hovertemplate,
        )
        accuracy = [r["accuracy"] for r in runs]
        for col, key in ((1, "images_per_class"), (2, "train_seconds")):
            fig.add_trace(
                go.Scatter(
                    x=[r[key] for r in runs], y=accuracy, name=name, showlegend=col == 1, **style
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="Training images per class", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(title_text="Training time (seconds)", rangemode="tozero", row=1, col=2)
    fig.update_yaxes(title_text="Accuracy on held-out images", range=[0, 1], tickformat=".0%")
    if not rows:
        _empty_message(fig, "No comparison runs yet")
    return fig


# --------------------------------------------------------------------------- table


def per_class_table(evaluation) -> list[dict]:
    """Rows ``{"Class", "Precision", "Recall", "F1", "Images"}`` for a table widget.

    Rows follow ``evaluation["labels"]`` when present, else the order of
    ``evaluation["per_class"]``. Precision/Recall/F1 are fractions 0..1 (None when
    undefined) left unrounded, so the widget can format them (e.g. as percent);
    Images is the support as an int.
    """
    evaluation = _evaluation_mapping(evaluation)
    per_class = evaluation.get("per_class")
    if not isinstance(per_class, Mapping):
        raise ValueError(
            f"evaluation['per_class'] must be a dict of class -> scores, got {_q(per_class)}"
        )
    if "labels" in evaluation:
        labels = _labels(evaluation)
        missing = [name for name in labels if name not in per_class]
        extra = [name for name in per_class if name not in labels]
        if missing or extra:
            raise ValueError(
                f"evaluation['per_class'] does not match the labels: missing {_q(missing)}, "
                f"unexpected {_q(extra)}"
            )
    else:
        labels = [_label(name, "each class name in per_class") for name in per_class]

    rows = []
    for name in labels:
        scores = per_class[name]
        if not isinstance(scores, Mapping):
            raise ValueError(f"per_class[{name!r}] must be a dict of scores, got {_q(scores)}")
        missing = [k for k in ("precision", "recall", "f1", "support") if k not in scores]
        if missing:
            raise ValueError(f"per_class[{name!r}] is missing {missing}: {_q(dict(scores))}")
        row: dict[str, Any] = {"Class": name}
        for key, column in (("precision", "Precision"), ("recall", "Recall"), ("f1", "F1")):
            value = scores[key]
            if value is not None:
                value = _number(value, f"per_class[{name!r}][{key!r}]", lo=0.0, hi=1.0)
            row[column] = value
        row["Images"] = _count(scores["support"], f"per_class[{name!r}]['support']")
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- selection


def _cell_from_point(point: Mapping, labels: list[str] | None) -> tuple[str, str] | None:
    def known(cell: tuple[str, str]) -> tuple[str, str] | None:
        if labels is not None and (cell[0] not in labels or cell[1] not in labels):
            return None
        return cell

    customdata = point.get("customdata")
    if _is_sequence(customdata):
        data = _as_list(customdata)
        if len(data) >= 2 and isinstance(data[0], str) and isinstance(data[1], str):
            return known((data[0], data[1]))

    x, y = point.get("x"), point.get("y")
    if x is not None and y is not None and not _is_sequence(x) and not _is_sequence(y):
        return known((str(y), str(x)))

    if labels:
        index = point.get("point_index", point.get("point_indices"))
        if _is_sequence(index):  # heatmap style: [row, column]
            index = _as_list(index)
            if len(index) == 2 and all(_is_int(v) for v in index):
                r, c = (int(v) for v in index)
                if 0 <= r < len(labels) and 0 <= c < len(labels):
                    return labels[r], labels[c]
        elif _is_int(index):  # the "cells" markers, numbered row by row
            r, c = divmod(int(index), len(labels))
            if 0 <= r < len(labels):
                return labels[r], labels[c]
    return None


def selected_cell(selection_points, *, labels=None) -> tuple[str, str] | None:
    """``(true_label, predicted_label)`` of the first usable selected point, else None.

    ``selection_points`` is ``event.selection.points`` from
    ``st.plotly_chart(confusion_matrix_figure(...), on_select="rerun")``. The cell is
    read from the point's ``customdata`` ``[true, predicted]``; failing that from its
    ``y`` (true) and ``x`` (predicted); failing that, when ``labels`` (the evaluation's
    labels) is given, from ``point_index``. With ``labels`` given, cells naming a class
    not in ``labels`` are ignored (e.g. a stale selection from another evaluation).
    None or an empty list gives None.
    """
    if selection_points is None:
        return None
    if not _is_sequence(selection_points):
        raise ValueError(
            f"selection_points must be the list event.selection.points, got {_q(selection_points)}"
        )
    if labels is not None:
        if not _is_sequence(labels):
            raise ValueError(f"labels must be a list of class names, got {_q(labels)}")
        labels = [_label(v, "each label") for v in _as_list(labels)]
    for i, point in enumerate(_as_list(selection_points)):
        if not isinstance(point, Mapping):
            raise ValueError(f"selection_points[{i}] must be a dict, got {_q(point)}")
        cell = _cell_from_point(point, labels)
        if cell is not None:
            return cell
    return None
