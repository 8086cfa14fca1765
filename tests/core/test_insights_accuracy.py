"""Tests for quasar_core.insights.accuracy_hint: a poor held-out score is said, with what to do."""

from __future__ import annotations

import pytest

from quasar_core import insights
from quasar_core.config import TrainConfig
from quasar_core.evaluation import Evaluation


def evaluation(accuracy: float) -> Evaluation:
    right = round(accuracy * 10)
    return Evaluation(accuracy=accuracy, labels=["a", "b"], confusion_matrix=[[right, 10 - right], [0, 0]],
                      per_class={})


@pytest.mark.parametrize("accuracy, poor", [(0.0, True), (0.599, True), (0.6, False), (0.95, False)])
def test_accuracy_hint_only_below_the_bar(accuracy, poor):
    hint = insights.accuracy_hint(evaluation(accuracy))
    assert (hint is not None) is poor
    if poor:
        assert hint.kind == "poor"
        assert f"only {accuracy:.0%} of the held-out photos" in hint.text
        assert "more epochs" in hint.text and "bigger images" in hint.text and "more photos" in hint.text


def test_accuracy_hint_quotes_the_settings_used_and_comes_first():
    config = TrainConfig(image_size=32, epochs=2)
    hint = insights.accuracy_hint(evaluation(0.2), config)
    assert "more epochs than 2, use bigger images than 32 px, and add more photos of each class." in hint.text
    assert insights.accuracy_hint(None, config) is None
    history = [{"epoch": 1, "loss": 2.0, "accuracy": 0.3, "val_loss": 2.1, "val_accuracy": 0.3}]
    kinds = [h.kind for h in insights.all_hints(history, evaluation(0.2), {"a": 5, "b": 5}, config)]
    assert kinds == ["poor", "underfitting", "confusion"]  # 8 of 10 "a" taken for "b"
    assert "poor" not in [h.kind for h in insights.all_hints(history, evaluation(0.9), None, config)]
