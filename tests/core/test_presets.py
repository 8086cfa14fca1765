"""The presets: sized for the photos, Best's candidates cheapest first with Quick look's among them,
and names looked up with a helpful error. No TensorFlow here."""

from __future__ import annotations

import pytest

from quasar_core.config import Augmentation, TrainConfig
from quasar_core.planning import estimate_training_time
from quasar_core.presets import (BY_NAME, DEFAULT, IMAGE_SIZE_CANDIDATES, PRESETS, QUICK_MAX_SIZE, large_size,
                                 preset_named, suggest_image_size)


class Photos:
    """Just what the presets read from a dataset."""

    def __init__(self, side):
        self.side = side

    def median_source_side(self):
        return self.side


@pytest.mark.parametrize("side, size", [(10, 64), (21, 64), (22, 96), (28, 96), (40, 128), (50, 160),
                                        (60, 224), (500, 224)])
def test_suggested_size_upscales_small_photos_about_three_times_at_most_to_224(side, size):
    assert suggest_image_size(Photos(side)) == size
    assert size in IMAGE_SIZE_CANDIDATES


@pytest.mark.parametrize("side, size", [(100, None), (191, None), (192, 288), (234, 288), (235, 352), (240, 352),
                                        (4000, 352)])
def test_large_size_only_where_the_photos_have_the_detail_enlarged_by_half_at_most(side, size):
    assert large_size(Photos(side)) == size


def test_quick_and_balanced_are_one_setting_each(dataset):
    base = TrainConfig(weights="none", seed=3)
    for key in ("quick", "balanced"):
        [config] = PRESETS[key].candidates(Photos(60), base)
        assert config == PRESETS[key].config(Photos(60), base)
        assert (config.weights, config.seed, config.mode) == ("none", 3, "feature-extraction")
    quick, balanced = PRESETS["quick"].config(Photos(60), base), PRESETS["balanced"].config(Photos(60), base)
    assert quick.image_size == QUICK_MAX_SIZE and not quick.augment
    assert balanced.image_size == 224 and not balanced.augment
    assert PRESETS["quick"].config().image_size == 128  # without photos: a middle size
    assert PRESETS["quick"].config(dataset).image_size == 128  # the 40 px shapes


def test_one_default_everywhere():
    from quasar_core.cli import build_parser

    assert DEFAULT is PRESETS["balanced"]
    assert build_parser().parse_args(["train", "photos", "--out", "run"]).preset == DEFAULT.key


def test_best_tries_balanced_a_larger_size_and_augmented_copies_cheapest_first_without_fine_tuning():
    base = TrainConfig(weights="none")
    candidates = PRESETS["best"].candidates(Photos(400), base)
    plain = PRESETS["balanced"].config(Photos(400), base)
    augmented = Augmentation(views=2)
    assert candidates == [plain, plain.replace(image_size=352), plain.replace(augment=True, augmentation=augmented),
                          plain.replace(image_size=352, augment=True, augmentation=augmented)]
    assert not any(c.fine_tunes for c in candidates)  # never a fine-tuned model it might discard
    assert all(c.weights == "none" for c in candidates)
    times = [estimate_training_time(c, 200, rate_at_224=10.0).total_seconds for c in candidates]
    assert times[:2] == sorted(times[:2]) and times[2:] == sorted(times[2:])


def test_best_drops_the_larger_size_for_small_photos():
    candidates = PRESETS["best"].candidates(Photos(30))  # suggested 96 px
    assert len(candidates) == len(set(candidates)) == 2
    assert [(c.image_size, c.augment) for c in candidates] == [(96, False), (96, True)]


def test_presets_are_valid_described_and_round_trip():
    assert list(PRESETS) == ["quick", "balanced", "best"]
    for preset in PRESETS.values():
        assert preset.description and BY_NAME[preset.name] is preset
        for config in preset.candidates(Photos(400)):
            assert TrainConfig.from_dict(config.to_dict()) == config


def test_presets_are_found_by_dashboard_name_or_cli_key():
    assert preset_named("Best accuracy") is PRESETS["best"] is preset_named("best")
    assert preset_named("Quick look").key == "quick"
    with pytest.raises(ValueError, match="'fastest'") as raised:
        preset_named("fastest")
    assert "quick, balanced, best" in str(raised.value)
