"""fine_tune_blocks at every value config.py allows: a tiny fine-tuning through TransferClassifier trains
exactly the top blocks asked for and leaves the rest as VGG16 had them, and Configure's estimates (time,
memory, the plan) exist for each value. One value above the range is refused by the config itself."""

from __future__ import annotations

import numpy as np
import pytest

from quasar_core import planning
from quasar_core.backbone import BLOCKS
from quasar_core.config import TrainConfig, spec_of
from quasar_core.features.precision import PrecisionChoice

SPEC = spec_of(TrainConfig, "fine_tune_blocks")
ALLOWED = list(range(int(SPEC.low), int(SPEC.high) + 1))
RATE = 8.0  # float32 photos a second at 224 px: any positive rate will do for the estimates


def tuned_config(base_config: TrainConfig, blocks: int) -> TrainConfig:
    """The conftest `fine_tuned` fixture's settings, with `blocks` top blocks to adjust."""
    return base_config.replace(mode="fine-tune", fine_tune_epochs=1, fine_tune_blocks=blocks, batch_size=8,
                               fine_tune_learning_rate=1e-3)


def test_the_allowed_values_are_the_ones_that_work():
    assert ALLOWED == [1, 2, 3, 4] and BLOCKS == 5  # block 1 stays frozen: its input is the photo itself
    with pytest.raises(ValueError, match="fine_tune_blocks"):
        TrainConfig(fine_tune_blocks=int(SPEC.high) + 1)


@pytest.mark.parametrize("blocks", ALLOWED)
def test_fine_tuning_trains_the_top_blocks_asked_for(blocks, request, dataset, tiny_config, base_loader, base,
                                                     tmp_path):
    config = tuned_config(tiny_config, blocks)
    if blocks == 1:  # the shared fixture is this very fit: do not pay for it twice
        classifier = request.getfixturevalue("fine_tuned")["classifier"]
        assert classifier.config == config
    else:
        from quasar_core.features.cache import FeatureCache
        from quasar_core.training import TransferClassifier

        classifier = TransferClassifier(config, cache=FeatureCache(tmp_path / "features"), base_loader=base_loader)
        classifier.fit(dataset)
    assert classifier.cancelled_ is False
    top = range(BLOCKS - blocks + 1, BLOCKS + 1)
    expected = sorted(layer.name for layer in base.layers if layer.name.split("_")[0] in {f"block{b}" for b in top})
    assert sorted(classifier.tuned_) == expected
    model = classifier.model()
    for block in top:  # trained: its last convolution moved away from VGG16's
        name = f"block{block}_conv{2 if block <= 2 else 3}"
        assert not np.allclose(model.get_layer(name).get_weights()[0], base.get_layer(name).get_weights()[0])
    frozen = f"block{BLOCKS - blocks}_conv1"  # the highest frozen block: as VGG16 had it
    np.testing.assert_array_equal(model.get_layer(frozen).get_weights()[0], base.get_layer(frozen).get_weights()[0])
    probabilities = classifier.predict_proba([dataset.pixels(0), dataset.pixels(20)])
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("blocks", ALLOWED)
def test_configures_estimates_exist_for_every_allowed_value(blocks, dataset, monkeypatch):
    monkeypatch.setenv(planning.MEMORY_LIMIT_ENV, str(64 * 1024))  # 64 GB: the check must not refuse here
    config = tuned_config(TrainConfig(image_size=224), blocks)
    estimate = planning.estimate_training_time(config, 200, rate_at_224=RATE, precision="int8")
    assert estimate.fine_tune_seconds > 0 and estimate.total_seconds > 0
    assert planning.estimate_training_memory(config, 200) > 0
    assert planning.check_memory(config, 200) == planning.estimate_training_memory(config, 200)
    plan = planning.plan(dataset, config, rate_at_224=RATE, precision=PrecisionChoice("int8", "test"))
    assert plan.time.fine_tune_seconds > 0 and all(row["seconds"] > 0 for row in plan.sizes)
    assert "held-out" in plan.method
    best = planning.estimate_best_time([TrainConfig(image_size=224), config], 200, rate_at_224=RATE,
                                       precision="int8")
    assert best.fine_tune_seconds == pytest.approx(estimate.fine_tune_seconds)


def test_more_blocks_cost_more_time_and_memory():
    configs = [tuned_config(TrainConfig(image_size=224), blocks) for blocks in ALLOWED]
    times = [planning.estimate_training_time(c, 200, rate_at_224=RATE).fine_tune_seconds for c in configs]
    memory = [planning.estimate_training_memory(c, 200) for c in configs]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert memory == sorted(memory) and len(set(memory)) == len(memory)

