"""TrainConfig and Augmentation: settings declared once with their metadata (Spec, declared, in_words),
bad values refused up front quoting the value, every declared range checked at both ends, and saved
settings round-trip."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quasar_core.config import (MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, MODES, PRECISIONS, STRATEGIES, Augmentation, Spec,
                                TrainConfig, declared, spec_of)

BAD_SETTINGS = [
    ("mode", "fine_tune"), ("mode", None), ("precision", "float16"), ("strategy", "tpu"),
    ("weights", ""), ("weights", None), ("weights", 3),
    ("image_size", MIN_IMAGE_SIZE - 1), ("image_size", MAX_IMAGE_SIZE + 1), ("image_size", 64.5),
    ("image_size", "64"), ("image_size", True),
    ("batch_size", 0), ("batch_size", 513), ("batch_size", 2.0),
    ("fine_tune_epochs", -1), ("fine_tune_epochs", 101), ("fine_tune_epochs", True),
    ("fine_tune_blocks", 0), ("fine_tune_blocks", 5), ("fine_tune_blocks", 6),
    ("fine_tune_learning_rate", 0), ("fine_tune_learning_rate", 1.0), ("fine_tune_learning_rate", 1.5),
    ("fine_tune_learning_rate", -0.01), ("fine_tune_learning_rate", "0.01"),
    ("fine_tune_learning_rate", float("nan")), ("fine_tune_learning_rate", float("inf")),
    ("folds", 1), ("folds", 11), ("max_cv_photos", 9), ("holdout_fraction", 0.04), ("holdout_fraction", 0.51),
    ("holdout_fraction", None), ("seed", -1), ("seed", 2**31),
    ("augment", "no"), ("class_weights", None), ("class_weights", 1),
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
    assert config.mode == "feature-extraction" and config.weights == "imagenet" and config.precision == "auto"
    assert MIN_IMAGE_SIZE <= config.image_size <= MAX_IMAGE_SIZE
    assert isinstance(config.augmentation, Augmentation)
    assert not config.fine_tunes and config.views == 1
    assert (config.folds, config.cv_repeats, config.holdout_fraction) == (10, 3, 0.2)


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


@pytest.mark.parametrize("name", ["mode", "precision", "strategy"])
def test_choice_error_lists_the_choices(name):
    choices = {"mode": MODES, "precision": PRECISIONS, "strategy": STRATEGIES}[name]
    with pytest.raises(ValueError) as raised:
        TrainConfig(**{name: "nonsense"})
    assert all(repr(choice) in str(raised.value) for choice in choices)


# --------------------------------------------------------------------------- the declarations


def every_declared():
    for cls in (TrainConfig, Augmentation):
        for name, default, spec in declared(cls):
            yield pytest.param(cls, name, default, spec, id=f"{cls.__name__}.{name}")


def make(cls, name, value):
    return cls(**{name: value})


@pytest.mark.parametrize("cls, name, default, spec", list(every_declared()))
def test_every_declared_setting_has_help_and_its_range_is_checked(cls, name, default, spec):
    assert isinstance(spec, Spec) and spec.label and spec.help and spec is spec_of(cls, name)
    assert getattr(cls(), name) == default
    if isinstance(default, bool):
        make(cls, name, not default)
        for bad in (0, 1, "yes", None):
            with pytest.raises(ValueError, match=name):
                make(cls, name, bad)
        return
    if isinstance(default, str):
        assert default in spec.choices
        for choice in spec.choices:
            assert getattr(make(cls, name, choice), name) == choice
        with pytest.raises(ValueError, match=quoted("nonsense")):
            make(cls, name, "nonsense") if name != "weights" else spec.check(name, "nonsense", default)
        return
    assert spec.low is not None and spec.high is not None and spec.low <= default <= spec.high
    step = 1 if isinstance(default, int) else 1e-9 * max(1.0, abs(spec.high))
    assert getattr(make(cls, name, type(default)(spec.low)), name) == spec.low  # the low end is allowed
    with pytest.raises(ValueError, match=name):
        make(cls, name, type(default)(spec.low - step))
    if spec.exclusive_high:
        with pytest.raises(ValueError, match="below"):
            make(cls, name, type(default)(spec.high))
        make(cls, name, spec.high - step)
    else:
        assert getattr(make(cls, name, type(default)(spec.high)), name) == spec.high
        with pytest.raises(ValueError, match=name):
            make(cls, name, type(default)(spec.high + step))
    if spec.steps:
        assert all(spec.low <= s <= spec.high for s in spec.steps) and list(spec.steps) == sorted(spec.steps)


def test_declared_lists_the_settings_in_order_with_their_sections():
    names = [name for name, _, _ in declared(TrainConfig)]
    assert names[:3] == ["weights", "mode", "image_size"] and "augmentation" not in names  # a group of its own
    assert {f.name for f in dataclasses.fields(TrainConfig)} == set(names) | {"augmentation"}
    assert [name for name, _, _ in declared(Augmentation)] == ["flip", "rotation", "zoom", "contrast", "views"]
    assert all(spec.section == "Augmentation" for _, _, spec in declared(Augmentation))
    assert spec_of(TrainConfig, "image_size").unit == "px"


def test_weights_may_be_a_file_path_besides_the_choices(tmp_path):
    assert TrainConfig(weights=str(tmp_path / "vgg16.weights.h5")).weights.endswith("vgg16.weights.h5")
    assert TrainConfig(weights="none").weights == "none"


def test_spec_words_read_like_a_model_card():
    assert spec_of(TrainConfig, "image_size").words(224) == "224 px"
    assert spec_of(TrainConfig, "augment").words(True) == "on" and spec_of(TrainConfig, "augment").words(False) == "off"
    assert spec_of(TrainConfig, "fine_tune_learning_rate").words(1e-5) == "0.00001"
    assert spec_of(TrainConfig, "holdout_fraction").words(0.2) == "0.2"


def test_in_words_shows_what_matters_to_this_run():
    rows = dict(TrainConfig(weights="none", image_size=96).in_words())
    assert rows["Image size"] == "96 px" and rows["Starting weights"] == "random (from scratch)"
    assert rows["Training mode"] == "feature extraction (VGG16 kept as it is)"
    assert "Fine-tuning epochs" not in rows and "Batch size" not in rows and "Distribution strategy" not in rows
    assert "Zoom" not in rows and rows["Augment the training photos"] == "off"
    assert rows["Cross-validation folds"] == "10" and rows["Balance uneven classes"] == "on"
    tuned = dict(TrainConfig(mode="fine-tune", fine_tune_epochs=3, augment=True).in_words())
    assert tuned["Training mode"] == "fine-tuning" and tuned["Fine-tuning epochs"] == "3"
    assert tuned["Starting weights"] == "ImageNet" and tuned["Copies per photo"] == "2" and tuned["Zoom"] == "0.1"
    assert dict(TrainConfig(weights="/tmp/mine.weights.h5").in_words())["Starting weights"] == \
        "from the file /tmp/mine.weights.h5"


# --------------------------------------------------------------------------- using configs


def test_replace_is_checked_too():
    config = TrainConfig(weights="none")
    assert config.replace(fine_tune_epochs=3).fine_tune_epochs == 3
    assert config.replace(fine_tune_epochs=3).weights == "none"
    with pytest.raises(ValueError, match="-1"):
        config.replace(fine_tune_epochs=-1)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().image_size = 64  # type: ignore[misc]


def test_fine_tunes_only_in_fine_tune_mode_with_epochs_and_views_only_when_augmenting():
    assert TrainConfig(mode="fine-tune").fine_tunes
    assert not TrainConfig(mode="fine-tune", fine_tune_epochs=0).fine_tunes
    assert not TrainConfig(mode="feature-extraction", fine_tune_epochs=5).fine_tunes
    assert TrainConfig(augment=True, augmentation=Augmentation(views=3)).views == 3
    assert TrainConfig(augment=False, augmentation=Augmentation(views=3)).views == 1


def test_round_trip_through_json_keeps_every_setting():
    config = TrainConfig(mode="fine-tune", weights="none", image_size=96, fine_tune_epochs=7, augment=True,
                         augmentation=Augmentation(flip=False, rotation=0.2, views=3), folds=3, precision="float32",
                         seed=11)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["augmentation"] == {"flip": False, "rotation": 0.2, "zoom": 0.1, "contrast": 0.1, "views": 3}
    restored = TrainConfig.from_dict(data)
    assert restored == config
    assert isinstance(restored.augmentation, Augmentation)


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from(MODES), precision=st.sampled_from(PRECISIONS), strategy=st.sampled_from(STRATEGIES),
    image_size=st.integers(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE), fine_tune_epochs=st.integers(0, 100),
    learning_rate=st.floats(1e-7, 0.99), holdout_fraction=st.floats(0.05, 0.5), folds=st.integers(2, 10),
    augment=st.booleans(), views=st.integers(1, 8), rotation=st.floats(0, 0.5),
)
def test_any_valid_config_round_trips(mode, precision, strategy, image_size, fine_tune_epochs, learning_rate,
                                      holdout_fraction, folds, augment, views, rotation):
    config = TrainConfig(mode=mode, precision=precision, strategy=strategy, image_size=image_size,
                         fine_tune_epochs=fine_tune_epochs, fine_tune_learning_rate=learning_rate,
                         holdout_fraction=holdout_fraction, folds=folds, augment=augment,
                         augmentation=Augmentation(views=views, rotation=rotation))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_unknown_keys_are_rejected_by_name():
    data = TrainConfig().to_dict()
    data["epochs"] = 3  # the head has no epochs any more
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig.from_dict(data)
    data = TrainConfig().to_dict()
    data["augmentation"]["spin"] = 0.3
    with pytest.raises(ValueError, match="spin"):
        TrainConfig.from_dict(data)


def test_partial_dict_takes_defaults():
    assert TrainConfig.from_dict({"image_size": 64}) == TrainConfig(image_size=64)
