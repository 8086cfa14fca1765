"""How good a model is: confusion matrix (clickable), per-class table, reliability diagram."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from quasar_core.charts._style import BLUE, GREY, VERMILLION, base_layout, empty_message, legend_below
from quasar_core.wording import percent, percent_range, plural

if TYPE_CHECKING:
    from quasar_core.evaluation import Evaluation

NO_BANDS_TEXT = "No predictions to check yet"


def confusion_matrix_figure(evaluation: Evaluation, *, normalize: bool = False) -> go.Figure:
    """Heatmap of real class (rows, first label on top) against predicted class (columns).

    Each cell shows its photo count; with ``normalize=True`` the colour is the share of the
    row (of all photos whose real class is that row) and the cell also shows that share.
    Text colour is left to plotly, which contrasts it with the cell. Cell ``customdata`` is
    ``[true_label, predicted_label]``.

    Plotly heatmaps send no selection events to Streamlit, so the figure also holds a
    transparent marker at every cell centre (trace 1, ``name="cells"``, row by row) with the
    same ``customdata`` and the hover text: clicking a cell selects that marker, and
    ``selected_cell`` turns the event's points into ``(true_label, predicted_label)``.
    """
    labels = list(evaluation.labels)
    matrix = [[int(v) for v in row] for row in evaluation.confusion_matrix]
    row_totals = [sum(row) for row in matrix]
    shares = [[(v / total if total else 0.0) for v in row] for row, total in zip(matrix, row_totals)]
    cells = [[[true, pred] for pred in labels] for true in labels]

    text: list[list[str]] = []
    hover: list[list[str]] = []
    for i, true in enumerate(labels):
        text_row, hover_row = [], []
        for j, pred in enumerate(labels):
            count = matrix[i][j]
            share = percent(shares[i][j]) if row_totals[i] else "–"
            text_row.append(f"{count}<br>{share}" if normalize else str(count))
            verdict = "correct" if i == j else "mistake"
            hover_row.append(
                f"Real class: {true}<br>Predicted: {pred} ({verdict})<br>"
                f"Photos: {count} of {row_totals[i]} real '{true}' photos ({share})"
            )
        text.append(text_row)
        hover.append(hover_row)

    colorbar = (
        dict(title=dict(text="Share of<br>real class"), tickformat=".0%")
        if normalize
        else dict(title=dict(text="Photos"), tickformat="d")  # counts are whole numbers
    )
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            z=shares if normalize else matrix,
            x=labels,
            y=labels,
            text=text,
            texttemplate="%{text}",
            customdata=cells,
            colorscale="Blues",
            zmin=0,
            zmax=1 if normalize else max(1, max((max(row) for row in matrix), default=0)),
            colorbar=colorbar,
            xgap=1,
            ygap=1,
            hoverinfo="skip",  # the "cells" markers carry the hover text
            name="confusion matrix",
        )
    )
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
    n = len(labels)
    title = f"What the model predicted for each real class — {percent(evaluation.accuracy)} correct overall"
    base_layout(fig, title, f"Measured by {evaluation.method}." if evaluation.method else None)
    fig.update_layout(
        hovermode="closest",
        hoverdistance=-1,  # a click anywhere in a cell reaches that cell's marker
        clickmode="event+select",
        height=max(400, min(900, 120 + 45 * n)),
    )
    fig.update_xaxes(title_text="Predicted class", type="category", showgrid=False, tickangle=0 if n <= 8 else -45)
    fig.update_yaxes(title_text="Real class", type="category", autorange="reversed", showgrid=False)
    return fig


def _known(cell: tuple[str, str], labels: Sequence[str] | None) -> tuple[str, str] | None:
    if labels is not None and (cell[0] not in labels or cell[1] not in labels):
        return None  # e.g. a stale selection from another evaluation
    return cell


def _is_index(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _cell_from_point(point: Mapping, labels: Sequence[str] | None) -> tuple[str, str] | None:
    customdata = point.get("customdata")
    if isinstance(customdata, (list, tuple)) and len(customdata) >= 2:
        if isinstance(customdata[0], str) and isinstance(customdata[1], str):
            return _known((customdata[0], customdata[1]), labels)

    x, y = point.get("x"), point.get("y")
    if x is not None and y is not None and not isinstance(x, (list, tuple)) and not isinstance(y, (list, tuple)):
        return _known((str(y), str(x)), labels)

    if labels:
        index = point.get("point_index", point.get("point_indices"))
        if isinstance(index, (list, tuple)):  # heatmap style: [row, column]
            if len(index) == 2 and all(_is_index(v) for v in index):
                r, c = index
                if 0 <= r < len(labels) and 0 <= c < len(labels):
                    return labels[r], labels[c]
        elif _is_index(index):  # the "cells" markers, numbered row by row
            r, c = divmod(index, len(labels))
            if 0 <= r < len(labels):
                return labels[r], labels[c]
    return None


def selected_cell(
    selection_points: Sequence[Mapping] | None, *, labels: Sequence[str] | None = None
) -> tuple[str, str] | None:
    """``(true_label, predicted_label)`` of the first usable selected point, else None.

    ``selection_points`` is ``event.selection.points`` from
    ``st.plotly_chart(confusion_matrix_figure(...), on_select="rerun")``. The cell is read
    from the point's ``customdata`` ``[true, predicted]``; failing that from its ``y`` (true)
    and ``x`` (predicted); failing that, when ``labels`` (the evaluation's labels) is given,
    from ``point_index`` (an int for the "cells" markers, ``[row, column]`` for a heatmap).
    With ``labels`` given, cells naming a class not in ``labels`` are ignored. None or an
    empty list gives None.
    """
    labels = list(labels) if labels is not None else None
    for point in selection_points or ():
        cell = _cell_from_point(point, labels)
        if cell is not None:
            return cell
    return None


def per_class_table(evaluation: Evaluation) -> list[dict]:
    """Rows ``{"Class", "Precision", "Recall", "F1", "Photos"}`` for a table widget, in label order.

    Precision/Recall/F1 are fractions 0..1 left unrounded (the widget formats them, e.g. as
    percent); Photos is the support as an int.
    """
    rows = []
    for label in evaluation.labels:
        scores = evaluation.per_class[label]
        rows.append({
            "Class": label,
            "Precision": scores["precision"],
            "Recall": scores["recall"],
            "F1": scores["f1"],
            "Photos": int(scores["support"]),
        })
    return rows


def reliability_figure(evaluation: Evaluation) -> go.Figure:
    """Reliability diagram: for each band of stated confidence, how often the model was right.

    x is the mean confidence the model stated in the band, y the share it got right; the
    point's area grows with the number of photos in the band (trace 1). The
    dashed diagonal (trace ``name="Perfectly calibrated"``) is where stated confidence and
    accuracy agree; points below it are over-confident. The calibration error is not in the
    title (a number for specialists: the pages put it in their details). No bands gives the
    annotation "No predictions to check yet".
    """
    bands = list(evaluation.reliability)
    title = "How sure it says it is vs. how often it is right" if bands else "Can you trust how sure it says it is?"
    fig = go.Figure()
    base_layout(fig, title, "On the dashed line, a photo it calls 80 % sure is right 80 % of the time; "
                            "below the line, it is more sure than it should be." if bands else None)
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            name="Perfectly calibrated",
            mode="lines",
            line=dict(color=GREY, dash="dash", width=2),
            hoverinfo="skip",
        )
    )
    if bands:
        largest = max(b["count"] for b in bands)
        fig.add_trace(
            go.Scatter(
                x=[b["confidence"] for b in bands],
                y=[b["accuracy"] for b in bands],
                name="Photos, by how sure it said it was (bigger: more photos)",
                mode="lines+markers",
                cliponaxis=False,  # a band at 100 % right stays whole
                line=dict(color=BLUE, width=2),
                marker=dict(
                    size=[b["count"] for b in bands],
                    sizemode="area",
                    sizeref=2.0 * largest / 40**2,  # the fullest band is 40 px across
                    sizemin=6,
                    color=BLUE,
                    line=dict(color="white", width=1),
                ),
                customdata=[
                    [percent_range(b["low"], b["high"]), percent(b["confidence"]),
                     percent(b["accuracy"]), plural(int(b["count"]), "photo")]
                    for b in bands
                ],
                hovertemplate=(
                    "Said %{customdata[0]} sure (on average %{customdata[1]})<br>"
                    "Right: %{customdata[2]} of %{customdata[3]}<extra></extra>"
                ),
            )
        )
    else:
        empty_message(fig, NO_BANDS_TEXT)
    legend_below(fig)
    fig.update_layout(hovermode="closest", showlegend=True, legend_itemsizing="constant")
    fig.update_xaxes(title_text="How sure it said it was", range=[0, 1], tickformat=".0%", constrain="domain")
    fig.update_yaxes(title_text="How often it was right", range=[0, 1.05], tickformat=".0%")
    return fig


__all__ = ["confusion_matrix_figure", "selected_cell", "per_class_table", "reliability_figure", "NO_BANDS_TEXT"]
