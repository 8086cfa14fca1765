"""The training settings form: a widget per declared setting, its range and help read from config.py.

Widget values live under their keys (``setting.<field>``); ``values_from_config`` and
``config_from_values`` translate between those values and a TrainConfig, so a preset or a
saved config can fill the form and the form always yields a checked TrainConfig.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import streamlit as st

from quasar_core.config import Augmentation, Spec, TrainConfig, declared
from quasar_core.presets import BY_NAME, QUICK_MAX_SIZE, large_size, preset_named, suggest_image_size
from quasar_core.wording import join_words
from ui import state, workspace

PRESET_KEY = "setting.preset"
# Words for choices (the settings' values stay what the engine and the CLI use).
NAMES = {
    "feature-extraction": "Feature extraction: keep VGG16 as it is, learn only a new top",
    "fine-tune": "Fine-tuning: then also adjust VGG16's top blocks a little",
    "imagenet": "ImageNet (recommended): start from what VGG16 learned on 1.2 million photos",
    "none": "None: start from random weights (much less accurate; for comparison)",
    "auto": "Automatic (int8 or bfloat16 where this processor runs them fast and they agree with float32)",
    "float32": "float32 (standard)",
    "bfloat16": "bfloat16 (about twice as fast on processors with native support)",
    "int8": "int8 (fastest on processors with VNNI or AMX; checked on your photos)",
}


def _settings() -> list[tuple[str, Any, Spec]]:
    """(form field, default, spec) of every setting offered, "augmentation.<name>" for augmentation's.

    Augmentation's own settings come right after the switch that turns it on, so the form shows one
    "Augmentation" section (appended after the rest they made a second one, below "Checking").
    """
    top = [(name, default, spec) for name, default, spec in declared(TrainConfig) if spec.section]
    details = [(f"augmentation.{name}", default, spec) for name, default, spec in declared(Augmentation)]
    after = next((i + 1 for i, (name, _, _) in enumerate(top) if name == "augment"), len(top))
    return top[:after] + details + top[after:]


SETTINGS = _settings()
# Declared without a section: not a dashboard setting. The distribution strategy must be set up when a
# process starts, and a web server is one process shared by every visitor (README, Bigger data).
NOT_OFFERED = tuple(name for name, _, spec in declared(TrainConfig) if not spec.section)


def key_of(field: str) -> str:
    return f"setting.{field}"


def _value(config: TrainConfig, field: str):
    if field.startswith("augmentation."):
        return getattr(config.augmentation, field.split(".", 1)[1])
    return getattr(config, field)


def values_from_config(config: TrainConfig) -> dict[str, Any]:
    """Widget key -> value for every setting."""
    return {key_of(field): _value(config, field) for field, _, _ in SETTINGS}


def config_from_values(values: dict[str, Any], base: TrainConfig) -> TrainConfig:
    """`base` with the form's values; ValueError (from TrainConfig's checks) names a wrong setting by its label."""
    top, augmentation = {}, {}
    for field, _, _ in SETTINGS:
        value = values[key_of(field)]
        if field.startswith("augmentation."):
            augmentation[field.split(".", 1)[1]] = value
        else:
            top[field] = value
    try:
        return base.replace(**top, augmentation=dataclasses.replace(base.augmentation, **augmentation))
    except ValueError as exc:
        raise ValueError(_in_words(str(exc))) from None


def _in_words(message: str) -> str:
    """TrainConfig's check names the field ("fine_tune_learning_rate must be…"): people read its label."""
    for field, _, spec in sorted(SETTINGS, key=lambda item: -len(item[0].split(".")[-1])):
        name = field.split(".")[-1]
        if message.startswith(f"{name} "):
            return f"{spec.label} {message[len(name) + 1:]}"
    return message


def size_sentence(dataset, preset_name: str, config: TrainConfig) -> str:
    """Why this image size, true for the preset shown (and for the size chosen, when it differs)."""
    side = dataset.median_source_side()
    suggested = suggest_image_size(dataset)
    preset = preset_named(preset_name)
    text = (f"Your photos are typically {side:.0f} px on their shorter side, so the suggested image size is "
            f"**{suggested} px** (enough to enlarge small photos about three times, and at most VGG16's 224 px). ")
    if preset.key == "quick":
        size = min(suggested, QUICK_MAX_SIZE)
        text += f"Quick look uses **{size} px**" + (", its limit, to stay quick" if size < suggested else "") + "."
    elif preset.key == "balanced":
        size = suggested
        text += f"Balanced uses **{size} px**."
    else:
        sizes = sorted({candidate.image_size for candidate in preset.candidates(dataset)})
        size = preset.config(dataset).image_size
        larger = large_size(dataset)
        text += f"Best accuracy tries its settings at **{join_words([f'{s} px' for s in sizes])}**" + (
            f" ({larger} px because your photos have the detail for it)" if larger in sizes else "") + "."
    if config.image_size != size:
        text += f" Your settings use **{config.image_size} px**."
    return text


def apply_preset(dataset) -> None:
    """on_change of the preset choice: fill every setting with the chosen preset's values."""
    name = state.widget_value(PRESET_KEY)
    state.set_preset(name)
    config = BY_NAME[name].config(dataset)
    state.set_config(config)
    state.set_settings_chosen(True)
    state.set_widget_values(values_from_config(config))
    workspace.keep_settings()


def _draw(field: str, default, spec: Spec, current):
    key = key_of(field)
    if isinstance(default, bool):
        return st.checkbox(spec.label, help=spec.help, key=key)
    if spec.choices is not None:
        options = list(spec.choices) + ([current] if current not in spec.choices else [])
        return st.radio(spec.label, options, help=spec.help, key=key, format_func=lambda v: NAMES.get(v, str(v)))
    if spec.steps is not None:
        options = sorted({*spec.steps, current})
        words = (lambda v: f"{v:g} {spec.unit}".strip()) if isinstance(default, int) else \
            (lambda v: f"{v:.7f}".rstrip("0").rstrip("."))
        return st.select_slider(spec.label, options=options, help=spec.help, key=key, format_func=words)
    if isinstance(default, int) and spec.high - spec.low <= 10:
        return st.slider(spec.label, int(spec.low), int(spec.high), step=1, help=spec.help, key=key)
    if isinstance(default, int):
        return st.number_input(spec.label, int(spec.low), int(spec.high), step=1, help=spec.help, key=key)
    return st.slider(spec.label, float(spec.low), float(spec.high), step=0.01 if spec.high <= 1 else 0.1,
                     help=spec.help, key=key)


def draw(config: TrainConfig) -> dict[str, Any]:
    """Draw every setting (starting from `config` where the user has not changed it); returns values."""
    start = values_from_config(config)
    state.init_widget_values(start)
    values, section = {}, None
    for field, default, spec in SETTINGS:
        if spec.section != section:
            section = spec.section
            st.markdown(f"**{section}**")
        values[key_of(field)] = _draw(field, default, spec, start[key_of(field)])
    return values
