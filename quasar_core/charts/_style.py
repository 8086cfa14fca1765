"""The look every chart shares: the Okabe-Ito palette, plain layout, empty states, safe numbers."""

from __future__ import annotations

import math

import plotly.graph_objects as go

# Okabe-Ito palette: distinguishable with the common kinds of colour blindness.
BLACK = "#000000"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
GREY = "#8C96A0"
LIGHT_GREY = "#C5CBD1"

# One colour per class, in this order (black is kept for outlines: flagged photos, the chosen point).
CLASS_COLOURS = (BLUE, ORANGE, GREEN, VERMILLION, SKY_BLUE, PURPLE, YELLOW)
CLASS_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross")
DASHES = ("solid", "dash", "dot", "dashdot")

TEMPLATE = "plotly_white"
FONT = dict(size=14)


def class_colour(index: int) -> str:
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def class_symbol(index: int) -> str:
    """Past seven classes the colours repeat: the marker shape tells them apart."""
    return CLASS_SYMBOLS[(index // len(CLASS_COLOURS)) % len(CLASS_SYMBOLS)]


def class_dash(index: int) -> str:
    return DASHES[(index // len(CLASS_COLOURS)) % len(DASHES)]


def finite(value: float | None) -> float | None:
    """A diverged loss (NaN, inf) or a missing value becomes a gap in the line."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def base_layout(fig: go.Figure, title: str, subtitle: str | None = None) -> None:
    title_spec: dict = dict(text=title, x=0.0, xanchor="left")
    if subtitle:
        title_spec["subtitle"] = dict(text=subtitle, font=dict(size=13, color=GREY))
    fig.update_layout(
        template=TEMPLATE,
        font=FONT,
        title=title_spec,
        hoverlabel=dict(font_size=14),
        margin=dict(l=70, r=30, t=100 if subtitle else 80, b=60),
    )


def empty_message(fig: go.Figure, text: str) -> None:
    fig.add_annotation(
        text=text,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        showarrow=False,
        font=dict(size=18, color=GREY),
    )


def legend_below(fig: go.Figure) -> None:
    """The legend under the plot, where it covers no line."""
    fig.update_layout(
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0.0, xanchor="left"),
        margin=dict(b=120),
    )
