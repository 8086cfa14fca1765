"""Planning: VGG16's arithmetic, time and memory estimates, presets."""

from __future__ import annotations

import math

import pytest

from quasar_core import planning
from quasar_core.config import Augmentation, TrainConfig
from quasar_core.errors import QuasarError, ResourceLimitError
from quasar_core.planning import (
    MEMORY_LIMIT_ENV,
    PRESET_DESCRIPTIONS,
    PRESETS,
    check_memory,
    estimate_training_memory,
    estimate_training_time,
    format_duration,
    memory_limit_bytes,
    suggest_sizes_table,
    vgg16_gflops,
)

RATE = 10.0  # images per second at 224 px


def estimate(config, n_train=100, n_val=20, n_test=20, **kwargs):
    return estimate_training_time(config, n_train, n_val, n_test, images_per_second_at_224=RATE, **kwargs)


def test_vgg16_is_about_30_7_gflops_at_224():
    assert vgg16_gflops(224) == pytest.approx(30.69, abs=0.01)


@pytest.mark.parametrize("size", [32, 96, 112, 160])
def test_gflops_grow_with_the_square_of_the_side(size):
    assert vgg16_gflops(size) == pytest.approx(vgg16_gflops(224) * (size / 224) ** 2)


def test_gflops_from_a_block_on_are_the_top_of_the_stack():
    per_block = [vgg16_gflops(224, from_block=b) - vgg16_gflops(224, from_block=b + 1) for b in range(1, 5)]
    per_block.append(vgg16_gflops(224, from_block=5))
    assert all(part > 0 for part in per_block)
    assert sum(per_block) == pytest.approx(vgg16_gflops(224))
    assert vgg16_gflops(224, from_block=1) == vgg16_gflops(224)
    assert vgg16_gflops(224, from_block=6) == 0


def test_time_estimate_by_hand():
    config = TrainConfig(weights="none", image_size=224, epochs=30)
    result = estimate(config)
    assert result.feature_seconds == pytest.approx((100 + 20) / RATE)  # once per image, at the measured rate
    assert result.evaluate_seconds == pytest.approx(20 / RATE)
    assert result.head_seconds == pytest.approx(30 * (0.08 + 120 * 2e-5))
    assert result.fine_tune_seconds == 0
    assert result.total_seconds == pytest.approx(planning.FIXED_OVERHEAD_SECONDS + 12 + 2 + 30 * (0.08 + 120 * 2e-5))


def test_time_grows_with_the_square_of_the_image_size():
    small, big = estimate(TrainConfig(image_size=64)), estimate(TrainConfig(image_size=128))
    assert big.feature_seconds == pytest.approx(4 * small.feature_seconds)
    assert big.evaluate_seconds == pytest.approx(4 * small.evaluate_seconds)
    assert big.head_seconds == pytest.approx(small.head_seconds)  # the head does not see pixels


@pytest.mark.parametrize("views", [1, 2, 5])
def test_time_grows_with_the_augmented_views(views):
    plain = estimate(TrainConfig(image_size=96))
    augmented = estimate(TrainConfig(image_size=96, augment=True, augmentation=Augmentation(views=views)))
    assert augmented.feature_seconds == pytest.approx(plain.feature_seconds * (100 * views + 20) / 120)
    assert augmented.evaluate_seconds == pytest.approx(plain.evaluate_seconds)


def test_views_count_only_when_augmenting():
    assert estimate(TrainConfig(augmentation=Augmentation(views=4))) == estimate(TrainConfig())


def test_bfloat16_speedup_divides_the_feature_pass():
    config = TrainConfig(image_size=96)
    assert estimate(config, precision_speedup=2).feature_seconds == pytest.approx(
        estimate(config).feature_seconds / 2)


def test_fine_tuning_costs_more_the_more_blocks_it_trains():
    times = [estimate(TrainConfig(mode="fine-tune", fine_tune_blocks=b)).fine_tune_seconds for b in (1, 2, 3)]
    assert 0 < times[0] < times[1] < times[2]
    assert estimate(TrainConfig(mode="fine-tune", fine_tune_epochs=0)).fine_tune_seconds == 0
    ten = estimate(TrainConfig(mode="fine-tune", fine_tune_epochs=10)).fine_tune_seconds
    assert ten == pytest.approx(2 * estimate(TrainConfig(mode="fine-tune", fine_tune_epochs=5)).fine_tune_seconds)


@pytest.mark.parametrize("rate", [0, -1.5])
def test_a_rate_that_is_not_positive_is_refused(rate):
    with pytest.raises(ValueError, match=repr(rate)):
        estimate_training_time(TrainConfig(), 10, 2, 2, images_per_second_at_224=rate)


def test_sizes_table_is_ordered_and_slower_for_bigger_images():
    table = suggest_sizes_table(TrainConfig(), 100, 20, 20, images_per_second_at_224=RATE)
    assert [row["image_size"] for row in table] == [64, 96, 128, 160, 224]
    seconds = [row["seconds"] for row in table]
    assert seconds == sorted(seconds) and len(set(seconds)) == len(seconds)


def test_measured_forward_rate_is_positive(base):
    rate = planning.measure_forward_rate(base, image_size=32, batch=2)
    assert math.isfinite(rate) and rate > 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (-3, "0 s"), (59.4, "59 s"), (60, "1 min 00 s"), (125, "2 min 05 s"), (3600, "1 h 00 min"),
     (3725, "1 h 02 min")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# --------------------------------------------------------------------------- memory


def test_memory_grows_with_size_views_images_and_fine_tuning():
    config = TrainConfig(image_size=96)
    base_need = estimate_training_memory(config, 300)
    assert estimate_training_memory(config.replace(image_size=192), 300) > base_need
    assert estimate_training_memory(config.replace(augment=True, augmentation=Augmentation(views=4)), 300) > base_need
    assert estimate_training_memory(config, 3000) > base_need
    assert estimate_training_memory(config.replace(mode="fine-tune"), 300) > base_need
    # The frozen copy of VGG16 and the assembled model alone are ~2 x 59 M float32 weights.
    assert base_need > 2 * 58_900_000


def test_memory_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "512")
    assert memory_limit_bytes() == 512 * 1024**2
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "0.5")
    assert memory_limit_bytes() == 512 * 1024
    monkeypatch.delenv(MEMORY_LIMIT_ENV)
    assert memory_limit_bytes() > 0


def test_check_memory_refuses_a_job_that_does_not_fit(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "1")
    with pytest.raises(ResourceLimitError) as raised:
        check_memory(TrainConfig(image_size=224), 500)
    message = str(raised.value)
    assert "GB" in message and "smaller image size" in message
    assert isinstance(raised.value, QuasarError)


def test_check_memory_passes_when_there_is_room(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(1024 * 1024))  # a terabyte
    config = TrainConfig(image_size=224)
    assert check_memory(config, 500) == estimate_training_memory(config, 500)


def test_check_memory_counts_what_is_reserved(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(1024 * 1024))
    config = TrainConfig(image_size=96)
    check_memory(config, 100)
    with pytest.raises(ResourceLimitError):
        check_memory(config, 100, reserved_bytes=1024**4)


def test_a_memory_limit_that_is_not_a_number_is_refused(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(ValueError, match="'lots'"):
        check_memory(TrainConfig(), 10)


# --------------------------------------------------------------------------- presets


def test_presets_are_valid_described_and_ordered_by_cost():
    assert list(PRESETS) == list(PRESET_DESCRIPTIONS)
    for name, config in PRESETS.items():
        assert TrainConfig.from_dict(config.to_dict()) == config
        assert PRESET_DESCRIPTIONS[name]
    times = [estimate(config).total_seconds for config in PRESETS.values()]
    assert times == sorted(times)
    assert PRESETS["Best accuracy"].fine_tunes and not PRESETS["Quick look"].fine_tunes
