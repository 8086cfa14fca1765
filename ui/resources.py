"""Things shared by every session of the server, loaded once (st.cache_resource).

Only read-only things belong here: the VGG16 convolutional base (one per weights choice;
training never changes it, see quasar_core.backbone) and this machine's measured VGG16
speed. Each user's own work lives in their workspace on disk and in their session, never
here. TensorFlow is imported inside these functions, so only when a page first needs them.
"""

from __future__ import annotations

import streamlit as st

from quasar_core import backbone, planning, speed
from quasar_core.runs.folder import default_runs_root


def shared_base(weights: str):
    """The VGG16 base for a TrainConfig.weights choice ("imagenet", "none" or a file).

    Raises WeightsUnavailableError (a plain message) when the weights cannot be had.
    """
    # Keyed by the resolved choice, so "imagenet" follows QUASAR_VGG16_WEIGHTS if it changes.
    resolved = backbone.resolve_weights(weights)
    return _load_base("none" if resolved is None else resolved)


def base_loader(weights: str):
    """A function the job's thread calls to get the shared base (loaded here on first use)."""
    return lambda: shared_base(weights)


@st.cache_resource(show_spinner="Loading VGG16, the network that already knows how to see (once per server)…")
def _load_base(resolved_weights: str):
    return backbone.load_vgg16(resolved_weights)


def forward_rate(weights: str) -> float:
    """VGG16 photos per second at 224 px on this machine, in float32: measured once, then remembered.

    Read back from a file beside the runs (quasar_core.speed), so a visit after the first, or a
    restarted server, neither loads VGG16 nor measures it again; measured behind a spinner only when
    this machine has no figure yet. The speed does not depend on the weights' values.
    """
    root = default_runs_root()
    rate = speed.remembered(root)
    if rate is None:
        with st.spinner("Measuring how fast this computer runs VGG16 (once on this computer)…"):
            rate = _measured_rate(weights)
        speed.remember(root, rate)
    return rate


@st.cache_resource(show_spinner=False)
def _measured_rate(_weights: str) -> float:
    """Measured once per server even when the figure cannot be kept on disk (the first caller's base is used:
    `_weights` is left out of the cache key)."""
    return planning.measure_forward_rate(shared_base(_weights))
