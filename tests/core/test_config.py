"""TrainConfig and Augmentation: bad values are refused up front, saved settings round-trip."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quasar_core.config import (
    MAX_IMAGE_SIZE,
    MIN_IMAGE_SIZE,
    MODES,
    POOLINGS,
    PRECISIONS,
    STRATEGIES,
    Augmentation,
    TrainConfig,
)

BAD_SETTINGS = [
    ("mode", "fine_tune"), ("mode", None),
    ("pooling", "max"), ("precision", "float16"), ("strategy", "tpu"),
    ("weights", ""), ("weights", None), ("weights", 3),
    ("image_size", MIN_IMAGE_SIZE - 1), ("image_size", MAX_IMAGE_SIZE + 1), ("image_size", 64.5),
    ("image_size", "64"), ("image_size", True),
    ("epochs", 0), ("epochs", 501), ("epochs", 2.0), ("epochs", True),
    ("batch_size", 0), ("batch_size", 513),
    ("fine_tune_epochs", -1), ("fine_tune_blocks", 0), ("fine_tune_blocks", 6),
    ("dense_units", -1), ("dense_units", 4097),
    ("patience", 0), ("seed", -1), ("seed", 2**31),
    ("learning_rate", 0), ("learning_rate", 1), ("learning_rate", -0.01), ("learning_rate", "0.01"),
    ("learning_rate", float("nan")), ("fine_tune_learning_rate", 1.5),
    ("l2", -0.1), ("l2", 1.0), ("l2", None),
    ("dropout", 1.0), ("dropout", -0.1),
    ("val_fraction", 0), ("val_fraction", 0.5), ("test_fraction", -0.01), ("test_fraction", 0.5),
    ("augment", "no"), ("early_stopping", 1), ("class_weights", None),
    ("augmentation", "flip"),
]

BAD_AUGMENTATIONS = [
    ("rotation", -0.01), ("rotation", 0.51), ("zoom", 0.6), ("contrast", -1.0), ("contrast", "0.1"),
    ("views", 0), ("views", 9), ("views", 2.5), ("flip", "yes"),
]


def quoted(value) -> str:
    return re.escape(repr(value))


def test_defaults_are_valid_and_suit_a_laptop():
    config = TrainConfig()
    assert config.mode == "feature-extraction"
    assert config.weights == "imagenet"
    assert MIN_IMAGE_SIZE <= config.image_size <= MAX_IMAGE_SIZE
    assert isinstance(config.augmentation, Augmentation)
    assert not config.fine_tunes


@pytest.mark.parametrize(("name", "value"), BAD_SETTINGS, ids=[f"{n}={v!r}" for n, v in BAD_SETTINGS])
def test_bad_setting_raises_value_error_quoting_the_value(name, value):
    with pytest.raises(ValueError, match=quoted(value)) as raised:
        TrainConfig(**{name: value})
    assert name in str(raised.value)


@pytest.mark.parametrize(("name", "value"), BAD_AUGMENTATIONS, ids=[f"{n}={v!r}" for n, v in BAD_AUGMENTATIONS])
def test_bad_augmentation_raises_value_error_quoting_the_value(name, value):
    with pytest.raises(ValueError, match=quoted(value)) as raised:
        Augmentation(**{name: value})
    assert name in str(raised.value)
    # The same value inside a saved config (a dict) is refused too.
    with pytest.raises(ValueError, match=quoted(value)):
        TrainConfig.from_dict({"augmentation": {name: value}})


@pytest.mark.parametrize("name", ["mode", "pooling", "precision", "strategy"])
def test_choice_error_lists_the_choices(name):
    choices = {"mode": MODES, "pooling": POOLINGS, "precision": PRECISIONS, "strategy": STRATEGIES}[name]
    with pytest.raises(ValueError) as raised:
        TrainConfig(**{name: "nonsense"})
    assert all(repr(choice) in str(raised.value) for choice in choices)


def test_boundaries_are_accepted():
    TrainConfig(image_size=MIN_IMAGE_SIZE, epochs=1, batch_size=1, fine_tune_epochs=0, fine_tune_blocks=1,
                dense_units=0, patience=1, seed=0, l2=0.0, dropout=0.0, test_fraction=0.0)
    TrainConfig(image_size=MAX_IMAGE_SIZE, epochs=500, batch_size=512, fine_tune_blocks=5, dense_units=4096,
                seed=2**31 - 1, val_fraction=0.49, test_fraction=0.49)
    Augmentation(rotation=0.0, zoom=0.5, contrast=0.5, views=1)
    Augmentation(views=8)


def test_replace_is_checked_too():
    config = TrainConfig(weights="none")
    assert config.replace(epochs=3).epochs == 3
    assert config.replace(epochs=3).weights == "none"
    with pytest.raises(ValueError, match="0"):
        config.replace(epochs=0)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3  # type: ignore[misc]


def test_fine_tunes_only_in_fine_tune_mode_with_epochs():
    assert TrainConfig(mode="fine-tune").fine_tunes
    assert not TrainConfig(mode="fine-tune", fine_tune_epochs=0).fine_tunes
    assert not TrainConfig(mode="feature-extraction", fine_tune_epochs=5).fine_tunes


def test_round_trip_through_json_keeps_every_setting():
    config = TrainConfig(mode="fine-tune", weights="none", image_size=96, epochs=7, augment=True,
                         augmentation=Augmentation(flip=False, rotation=0.2, views=3), pooling="flatten",
                         dense_units=64, precision="float32", seed=11)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["augmentation"] == {"flip": False, "rotation": 0.2, "zoom": 0.1, "contrast": 0.1, "views": 3}
    restored = TrainConfig.from_dict(data)
    assert restored == config
    assert isinstance(restored.augmentation, Augmentation)


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from(MODES), pooling=st.sampled_from(POOLINGS), precision=st.sampled_from(PRECISIONS),
    image_size=st.integers(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE), epochs=st.integers(1, 500),
    learning_rate=st.floats(1e-6, 0.9), dropout=st.floats(0, 0.99), val_fraction=st.floats(0.01, 0.49),
    augment=st.booleans(), views=st.integers(1, 8), rotation=st.floats(0, 0.5),
)
def test_any_valid_config_round_trips(mode, pooling, precision, image_size, epochs, learning_rate, dropout,
                                      val_fraction, augment, views, rotation):
    config = TrainConfig(mode=mode, pooling=pooling, precision=precision, image_size=image_size, epochs=epochs,
                         learning_rate=learning_rate, dropout=dropout, val_fraction=val_fraction, augment=augment,
                         augmentation=Augmentation(views=views, rotation=rotation))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_unknown_keys_are_rejected_by_name():
    data = TrainConfig().to_dict()
    data["epochz"] = 3
    with pytest.raises(ValueError, match="epochz"):
        TrainConfig.from_dict(data)
    data = TrainConfig().to_dict()
    data["augmentation"]["spin"] = 0.3
    with pytest.raises(ValueError, match="spin"):
        TrainConfig.from_dict(data)


def test_partial_dict_takes_defaults():
    assert TrainConfig.from_dict({"epochs": 3}) == TrainConfig(epochs=3)
