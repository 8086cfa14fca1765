"""Label assist: a model trained on a few labelled photos helps label the rest.

It pre-labels every unlabelled photo (the suggested class, a calibrated confidence and the three
answers of "none of these": familiar / unusual / unknown), asks about the photos that teach it most
(a known active-learning strategy, chosen by measurement: strategy.py), and marks the pre-labels sure
enough to accept in bulk, saying how often those are expected to be wrong (assistant.py, band.py). use.py
applies it to real photos: their cached features, a trained run (``quasar suggest``), one labelling
round of the Label more page. No Streamlit here.
"""

from quasar_core.label_assist.assistant import (ANSWERS, DEFAULT_COUNT, DEFAULT_RIGHT, REASONS, LabelAssistant,
                                                Suggestion, Suggestions)
from quasar_core.label_assist.band import BandRule, confident_band
from quasar_core.label_assist.strategy import DEFAULT_STRATEGY, STRATEGIES, feature_view, margins, select
from quasar_core.label_assist.use import labelling_round, photo_features, suggest_for_run

__all__ = [
    "ANSWERS", "DEFAULT_COUNT", "DEFAULT_RIGHT", "DEFAULT_STRATEGY", "REASONS", "STRATEGIES", "BandRule",
    "LabelAssistant", "Suggestion", "Suggestions", "confident_band", "feature_view", "labelling_round", "margins",
    "photo_features", "select", "suggest_for_run",
]
