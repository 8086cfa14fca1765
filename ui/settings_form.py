"""The training settings form: every TrainConfig option as a widget with a one-line help.

Widget values live under their keys (``setting.<field>``); ``values_from_config`` and
``config_from_values`` translate between those values and a TrainConfig, so a preset or
a saved config can fill the form and the form always yields a checked TrainConfig.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import streamlit as st

from quasar_core import planning
from quasar_core.config import MODES, POOLINGS, PRECISIONS, TrainConfig
from quasar_core.data import suggest_image_size
from ui import state

PRESET_KEY = "setting.preset"
IMAGE_SIZES = (32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512)
LEARNING_RATES = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
DENSE_UNITS = (0, 32, 64, 128, 256, 512, 1024, 2048, 4096)
BATCH_SIZES = (4, 8, 16, 32, 64, 128, 256, 512)
L2_VALUES = (0.0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
# The presets that keep their own image size; the others start at the size suggested for the photos.
FULL_SIZE_PRESETS = ("Best accuracy",)

WEIGHT_CHOICES = ("imagenet", "none")
NAMES = {
    "feature-extraction": "Feature extraction: keep VGG16 as it is, train only a new top",
    "fine-tune": "Fine-tuning: then also adjust VGG16's top blocks a little",
    "imagenet": "ImageNet (recommended): start from what VGG16 learned on 1.2 million photos",
    "none": "None: start from random weights (much less accurate; for comparison)",
    "avg": "Average (compact, works at any image size)",
    "flatten": "Flatten (keeps where things are in the picture; more weights)",
    "auto": "Automatic (bfloat16 where this processor supports it)",
    "float32": "float32 (standard)",
    "bfloat16": "bfloat16 (about twice as fast on processors with support)",
}


@dataclass(frozen=True)
class Setting:
    field: str  # TrainConfig field, or "augmentation.<field>"
    label: str
    help: str
    draw: Callable[..., Any]  # the Streamlit widget function
    options: dict  # extra keyword arguments for it

    @property
    def key(self) -> str:
        return f"setting.{self.field}"


def _choice(field, label, help, options, horizontal=False):
    return Setting(field, label, help, st.radio,
                   dict(options=options, format_func=lambda v: NAMES.get(v, str(v)), horizontal=horizontal))


def _steps(field, label, help, options, fmt=str):
    return Setting(field, label, help, st.select_slider, dict(options=options, format_func=fmt))


def _number(field, label, help, low, high):
    return Setting(field, label, help, st.number_input, dict(min_value=low, max_value=high, step=1))


def _slider(field, label, help, low, high, step):
    return Setting(field, label, help, st.slider, dict(min_value=low, max_value=high, step=step))


def _toggle(field, label, help):
    return Setting(field, label, help, st.checkbox, {})


def _rate(value) -> str:
    """0.00001 rather than 1e-05: plain decimals for people who do not read scientific notation."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


SECTIONS: dict[str, list[Setting]] = {
    "Starting point": [
        _choice("weights", "Starting weights", "What VGG16 knows before it sees your photos.", WEIGHT_CHOICES),
        _choice("mode", "Training mode", "Fine-tuning can add a few points of accuracy but takes longer.", MODES),
        _steps("image_size", "Image size (pixels)",
               "Photos are resized to this square; bigger sees more detail but is slower.", IMAGE_SIZES),
    ],
    "Training": [
        _number("epochs", "Epochs", "How many times the new top sees every training photo.", 1, 500),
        _steps("batch_size", "Batch size", "Photos per learning step; 32 suits most data.", BATCH_SIZES),
        _steps("learning_rate", "Learning rate", "How big each learning step is; the preset's value is a safe start.",
               LEARNING_RATES, _rate),
        _toggle("early_stopping", "Stop early when it stops improving",
                "Ends training once the check photos stop getting better, keeping the best epoch."),
        _number("patience", "Patience (epochs)", "How many epochs without improvement before stopping early.",
                1, 100),
        _toggle("class_weights", "Balance uneven classes",
                "Counts mistakes on rare classes more, so a big class does not dominate."),
    ],
    "New top layers": [
        _choice("pooling", "Pooling", "How VGG16's feature map is turned into one list of numbers.", POOLINGS),
        _steps("dense_units", "Hidden layer size", "Neurons in the new hidden layer; 0 means none.", DENSE_UNITS),
        _slider("dropout", "Dropout", "Share of neurons switched off at random while training, against overfitting.",
                0.0, 0.9, 0.05),
        _steps("l2", "Weight decay (L2)", "Keeps the new layers' weights small, against overfitting; 0 turns it off.",
               L2_VALUES, _rate),
    ],
    "Fine-tuning (used in fine-tuning mode)": [
        _number("fine_tune_epochs", "Fine-tuning epochs", "Extra epochs that also adjust VGG16's top blocks.",
                0, 500),
        _slider("fine_tune_blocks", "Blocks to adjust", "How many of VGG16's 5 blocks, from the top, may change.",
                1, 5, 1),
        _steps("fine_tune_learning_rate", "Fine-tuning learning rate",
               "Keep it small (0.00001) so VGG16 keeps what it knows.", LEARNING_RATES, _rate),
    ],
    "Augmentation": [
        _toggle("augment", "Augment the training photos",
                "Also trains on flipped, turned, zoomed copies: helps with few photos, costs time."),
        _toggle("augmentation.flip", "Mirror left-right", "Fine for most objects; not for text or arrows."),
        _slider("augmentation.rotation", "Rotation (share of a full turn)", "0.05 is about 18 degrees either way.",
                0.0, 0.5, 0.01),
        _slider("augmentation.zoom", "Zoom", "Zoom in or out by up to this share.", 0.0, 0.5, 0.01),
        _slider("augmentation.contrast", "Contrast", "Change contrast by up to this share.", 0.0, 0.5, 0.01),
        _slider("augmentation.views", "Copies per photo", "Augmented copies of each training photo; time grows with it.",
                1, 8, 1),
    ],
    "Checking and repeatability": [
        _slider("val_fraction", "Share kept for checking during training",
                "Photos used to watch progress and stop early, never trained on.", 0.05, 0.45, 0.05),
        _slider("test_fraction", "Share kept for the final test",
                "Photos held back until the end to measure accuracy honestly.", 0.0, 0.45, 0.05),
        _number("seed", "Random seed", "The same seed and data give the same split and a very similar model.",
                0, 2**31 - 1),
        _choice("precision", "Number precision", "bfloat16 is faster on recent processors, with the same accuracy.",
                PRECISIONS),
    ],
}
SETTINGS: list[Setting] = [setting for group in SECTIONS.values() for setting in group]
# TrainConfig.strategy is not offered here: a multi-worker strategy must be set up when a process
# starts, and a web server is one process shared by every visitor. It is the CLI's (README, Bigger data).
NOT_OFFERED = ("strategy",)


def preset_config(name: str, suggested_size: int | None = None) -> TrainConfig:
    """A preset's settings; with photos loaded, at the image size suggested for them."""
    config = planning.PRESETS[name]
    if suggested_size is not None and name not in FULL_SIZE_PRESETS:
        config = config.replace(image_size=suggested_size)
    return config


def adapt_to_photos(dataset) -> None:
    """New photos loaded: settings already chosen move to the image size that suits them."""
    chosen = state.config()
    if chosen is not None and state.preset() not in FULL_SIZE_PRESETS:
        state.set_config(chosen.replace(image_size=suggest_image_size(dataset)))


def values_from_config(config: TrainConfig) -> dict[str, Any]:
    """Widget key -> value for every setting."""
    data = config.to_dict()
    values = {}
    for setting in SETTINGS:
        if setting.field.startswith("augmentation."):
            value = data["augmentation"][setting.field.split(".", 1)[1]]
        else:
            value = data[setting.field]
        values[setting.key] = value
    return values


def config_from_values(values: dict[str, Any], base: TrainConfig) -> TrainConfig:
    """`base` with the form's values; ValueError (from TrainConfig's checks) names a wrong setting."""
    top, augmentation = {}, {}
    for setting in SETTINGS:
        value = values[setting.key]
        if setting.field.startswith("augmentation."):
            augmentation[setting.field.split(".", 1)[1]] = value
        else:
            top[setting.field] = value
    return base.replace(**top, augmentation=dataclasses.replace(base.augmentation, **augmentation))


def apply_preset(suggested_size: int | None) -> None:
    """on_change of the preset choice: fill every setting with the chosen preset's values."""
    name = state.widget_value(PRESET_KEY)
    state.set_preset(name)
    state.set_widget_values(values_from_config(preset_config(name, suggested_size)))


def draw(config: TrainConfig) -> dict[str, Any]:
    """Draw every setting (starting from `config` where the user has not changed it); returns values."""
    start = values_from_config(config)
    state.init_widget_values(start)
    values = {}
    for section, settings in SECTIONS.items():
        st.markdown(f"**{section}**")
        for setting in settings:
            options = dict(setting.options)
            if "options" in options and start[setting.key] not in options["options"]:
                # a value from a saved run or a custom preset: offer it too
                options["options"] = tuple(sorted({*options["options"], start[setting.key]}))
            values[setting.key] = setting.draw(setting.label, help=setting.help, key=setting.key, **options)
    return values
