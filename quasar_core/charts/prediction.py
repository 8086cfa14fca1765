"""Charts of what the model says about new photos: its probabilities, and how familiar they look."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

import plotly.graph_objects as go

from quasar_core.charts._style import (
    BLACK, BLUE, GREY, LIGHT_GREY, VERMILLION, base_layout, empty_message, legend_below,
)
from quasar_core.wording import confidence, plural

NO_PREDICTION_TEXT = "No prediction yet"
NO_NEW_PHOTOS_TEXT = "No new photos yet"
UNKNOWN_TITLE = "This photo looks like none of the classes"
BIN_WIDTH = 0.05


def probability_bars(probabilities: Mapping[str, float], *, top: int = 5, unknown: bool = False) -> go.Figure:
    """Horizontal bars of the ``top`` most likely classes, highest on top, text "87.3 %".

    Ties keep the order given. The most likely class is drawn in blue, the others in grey.
    With ``unknown=True`` (the photo looks like none of the classes) every bar is light grey
    and the title says so: the probabilities are still shown, for what they are worth.
    Hover shows the probability to 3 decimals. No probabilities gives "No prediction yet".
    """
    items = list(probabilities.items())
    ranked = sorted(items, key=lambda item: -item[1])[: max(1, int(top))]
    names = [name for name, _ in ranked]
    values = [float(p) for _, p in ranked]

    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            text=[confidence(p) for p in values],  # never "100.0 %"
            textposition="outside",
            cliponaxis=False,
            customdata=[confidence(p, 3) for p in values],
            hovertemplate="%{y}: %{customdata}<extra></extra>",
            marker_color=[LIGHT_GREY] * len(values) if unknown else [BLUE] + [GREY] * (len(values) - 1),
            textfont=dict(color=GREY) if unknown else None,
            name="Probability",
        )
    )
    if unknown:
        title = UNKNOWN_TITLE
        subtitle = "Its closest guesses, greyed out: none of them should be trusted."
    else:
        title = "How sure the model is"
        subtitle = None
    if len(items) > len(ranked):
        title += f" (top {len(ranked)} of {len(items)} classes)"
    base_layout(fig, title, subtitle)
    fig.update_layout(height=max(250, 90 + 45 * len(names) + (20 if subtitle else 0)), margin=dict(r=110))  # room for "more than 99 %"
    fig.update_xaxes(title_text="Probability", range=[0, 1], tickformat=".0%", dtick=0.25)
    fig.update_yaxes(type="category", autorange="reversed")
    if not items:
        empty_message(fig, NO_PREDICTION_TEXT)
    return fig


def familiarity_histogram(familiarity: Sequence[float], unknown: Sequence[bool], *, threshold: float) -> go.Figure:
    """The drift check: how familiar each new photo looks (0 = unlike any training photo, 1 = very like them).

    Two stacked histograms in bins of 0.05: the photos that look like the training photos
    (trace ``name="Looks familiar"``, blue) and the unknown ones (``"Looks unlike the
    training photos"``, vermillion, hatched), both from ``unknown`` as given. A dashed black
    line marks ``threshold``, its label above the plot so it covers no bar. The title counts
    the unknown photos: "7 of 20 new photos look unlike the training photos". No photos
    gives the annotation "No new photos yet".
    """
    values = [float(v) for v in familiarity]
    flags = [bool(u) for u in unknown]
    familiar = [v for v, u in zip(values, flags) if not u]
    strange = [v for v, u in zip(values, flags) if u]
    n, k = len(values), len(strange)
    if not n:
        title = "How familiar the new photos look"
    elif k == 0:
        title = f"All {plural(n, 'new photo')} look like the training photos" if n > 1 else \
            "The new photo looks like the training photos"
    else:
        title = f"{k} of {plural(n, 'new photo')} {'looks' if k == 1 else 'look'} unlike the training photos"

    bins = dict(start=0.0, end=1.0 + 1e-9, size=BIN_WIDTH)
    fig = go.Figure()
    for name, chosen, colour, pattern in (
        ("Looks familiar", familiar, BLUE, ""),
        ("Looks unlike the training photos", strange, VERMILLION, "/"),
    ):
        if not chosen:
            continue
        fig.add_trace(
            go.Histogram(
                x=chosen,
                name=name,
                xbins=bins,
                autobinx=False,
                marker=dict(color=colour, line=dict(color="white", width=1), pattern=dict(shape=pattern)),
                hovertemplate=f"{name}<br>Familiarity %{{x}}: %{{y}} photos<extra></extra>",
            )
        )
    base_layout(fig, title, "Photos left of the line are unlike anything the model learned from: "
                            "its answers for them are guesses." if n else None)
    legend_below(fig)
    fig.update_layout(barmode="stack", bargap=0.05, hovermode="closest", legend_traceorder="normal")
    fig.add_shape(type="line", x0=threshold, x1=threshold, xref="x", y0=0, y1=1, yref="paper",
                  line=dict(color=BLACK, dash="dash", width=2))
    fig.add_annotation(text=f"Unknown below {threshold:.2f}", x=threshold, xref="x", y=1.0, yref="paper",
                       yanchor="bottom", showarrow=False, font=dict(size=13, color=BLACK))
    fig.update_xaxes(title_text="How familiar the photo looks (0 = unlike any training photo, 1 = very like them)",
                     range=[0, 1])
    fullest = int(np.histogram(np.clip(values, 0, 1), bins=round(1 / BIN_WIDTH), range=(0, 1))[0].max()) if n else 1
    # whole photos only: a tick every 1, 2, 3... photos, never "1.5"
    fig.update_yaxes(title_text="Number of new photos", rangemode="tozero", tickformat="d",
                     dtick=max(1, math.ceil(fullest / 8)))
    if not n:
        empty_message(fig, NO_NEW_PHOTOS_TEXT)
    return fig


__all__ = ["probability_bars", "familiarity_histogram", "NO_PREDICTION_TEXT", "NO_NEW_PHOTOS_TEXT", "UNKNOWN_TITLE"]
