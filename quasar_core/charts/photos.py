"""Charts of the photos themselves: how many per class, and a map of all of them."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from quasar_core.charts._style import (
    BLACK, BLUE, GREY, base_layout, class_colour, class_symbol, empty_message,
)
from quasar_core.wording import plural

NO_PHOTOS_TEXT = "No photos yet"
FLAGGED_NAME = "Flagged for a look"
THUMBNAIL_SHARE = 0.06  # a thumbnail's side, as a share of each axis' span


def class_distribution_figure(counts: Mapping[str, int]) -> go.Figure:
    """Bars of photos per class, in the order given, with a dashed line at the average.

    The average line is left out when all bars are equal (it would say nothing). No classes
    gives the annotation "No photos yet".
    """
    names = list(counts)
    values = [int(counts[name]) for name in names]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=names,
            y=values,
            text=[str(v) for v in values],
            textposition="outside",
            cliponaxis=False,
            marker_color=BLUE,
            hovertemplate="%{x}: %{y} photos<extra></extra>",
            name="Photos",
        )
    )
    base_layout(fig, "Photos per class")
    fig.update_xaxes(title_text="Class", type="category")
    fig.update_yaxes(title_text="Number of photos", rangemode="tozero")
    if not names:
        empty_message(fig, NO_PHOTOS_TEXT)
    elif len(names) > 1 and len(set(values)) > 1:
        average = sum(values) / len(values)
        fig.add_hline(
            y=average,
            line_dash="dash",
            line_color=GREY,
            annotation_text=f"Average: {average:.0f}" if average == int(average) else f"Average: {average:.1f}",
            annotation_position="top right",
        )
    return fig


def photo_map_figure(
    points: np.ndarray,
    labels: Sequence[str],
    names: Sequence[str],
    *,
    flagged: Mapping[str, str] | None = None,
    thumbnails: Mapping[str, Any] | None = None,
) -> go.Figure:
    """A 2-D map of every photo (``points``: (n, 2), e.g. a PCA of the features), one trace per class.

    Classes are sorted by name, each with its Okabe-Ito colour (and past seven classes a
    different marker shape). Photos in ``flagged`` (file name -> short reason) also get a
    black ring, drawn on top as the trace ``name="Flagged for a look"``. Hover shows the file
    name, the class and the reason. Every marker's ``customdata`` is
    ``[name, shown name, class, reason]`` with the exact file name first, so
    ``selected_photo(event.selection.points)`` gives back the clicked photo. ``thumbnails``
    (file name -> anything plotly's ``layout.images`` source takes: a URL, a data URI, a PIL
    image) are drawn just up and right of their dot, behind the markers; pass a few hundred
    at most. No photos gives the annotation "No photos yet".
    """
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labels, names = list(labels), list(names)
    flagged = dict(flagged or {})
    reasons = ["<br>Flagged: " + html.escape(flagged[name]) if name in flagged else "" for name in names]
    customdata = [[name, html.escape(name), html.escape(label), reason]
                  for name, label, reason in zip(names, labels, reasons)]
    hovertemplate = "<b>%{customdata[1]}</b><br>Class: %{customdata[2]}%{customdata[3]}<extra></extra>"

    fig = go.Figure()
    for number, label in enumerate(sorted(set(labels))):
        chosen = [i for i, other in enumerate(labels) if other == label]
        fig.add_trace(
            go.Scatter(
                x=xy[chosen, 0],
                y=xy[chosen, 1],
                name=label,
                mode="markers",
                marker=dict(size=10, color=class_colour(number), symbol=class_symbol(number),
                            line=dict(color="white", width=1)),
                customdata=[customdata[i] for i in chosen],
                hovertemplate=hovertemplate,
            )
        )
    ringed = [i for i, name in enumerate(names) if name in flagged]
    if ringed:
        fig.add_trace(
            go.Scatter(
                x=xy[ringed, 0],
                y=xy[ringed, 1],
                name=FLAGGED_NAME,
                mode="markers",
                marker=dict(size=18, symbol="circle-open", color=BLACK, line=dict(width=2.5)),
                customdata=[customdata[i] for i in ringed],
                hovertemplate=hovertemplate,
            )
        )
    if thumbnails and len(xy):
        span_x = float(np.ptp(xy[:, 0])) or 1.0
        span_y = float(np.ptp(xy[:, 1])) or 1.0
        for i, name in enumerate(names):
            if name in thumbnails:
                fig.add_layout_image(
                    source=thumbnails[name], xref="x", yref="y", x=float(xy[i, 0]), y=float(xy[i, 1]),
                    sizex=THUMBNAIL_SHARE * span_x, sizey=THUMBNAIL_SHARE * span_y,
                    xanchor="left", yanchor="bottom", sizing="contain", layer="below",
                )

    subtitle = None
    if names:
        subtitle = f"{plural(len(names), 'photo')}; similar photos sit close together."
        if ringed:
            subtitle += f" {plural(len(ringed), 'photo')} flagged for a look (black rings)."
    base_layout(fig, "Map of your photos", subtitle)
    fig.update_layout(
        hovermode="closest",
        clickmode="event+select",
        uirevision="photo map",  # a click reruns the page: keep the user's zoom
        legend=dict(title=dict(text="Class"), itemsizing="constant"),
    )
    # the directions of a PCA have no unit: no numbers on the axes
    fig.update_xaxes(title_text="Biggest difference between photos", showticklabels=False, zeroline=False)
    fig.update_yaxes(title_text="Next biggest difference", showticklabels=False, zeroline=False)
    if not names:
        empty_message(fig, NO_PHOTOS_TEXT)
    return fig


def selected_photo(selection_points: Sequence[Mapping] | None) -> str | None:
    """The file name of the first selected photo on a ``photo_map_figure``, else None.

    ``selection_points`` is ``event.selection.points`` from
    ``st.plotly_chart(photo_map_figure(...), on_select="rerun")``.
    """
    for point in selection_points or ():
        data = point.get("customdata")
        if isinstance(data, (list, tuple)) and data and isinstance(data[0], str):
            return data[0]
        if isinstance(data, str):
            return data
    return None


__all__ = ["class_distribution_figure", "photo_map_figure", "selected_photo", "NO_PHOTOS_TEXT", "FLAGGED_NAME"]
