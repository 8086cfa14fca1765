"""Fine-tuning on cached boundary activations: the network is the stacked model's maths with the lower
blocks frozen, only the top blocks and the head learn, Stop is honoured, and a run cut off
mid-fine-tuning is recovered from its per-epoch checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quasar_core.features.networks import keras_network
from quasar_core.head import fit_head
from quasar_core.tuning import CHECKPOINT_INFO, CHECKPOINT_WEIGHTS, class_weights, recover_tuned, tune_network

SIZE = 32
BOUNDARY = "block4_pool"


@pytest.fixture(scope="module")
def activations(dataset, base):
    """(1, n, 2, 2, 512) block4_pool activations of the shapes and the head learned on their features."""
    images = dataset.images(size=SIZE)
    boundary = keras_network(base, stop_at=BOUNDARY, pooled=False)(images)
    head = fit_head(keras_network(base)(images), dataset.targets(), n_classes=3, strength=0.1)
    return boundary[None], head


def test_the_network_on_activations_is_the_head_on_pooled_features(activations, base):
    x, head = activations
    model, pairs, dense = tune_network(base, BOUNDARY, x.shape[2:], head)
    pooled = keras_network(base, start_after=BOUNDARY)(x[0])
    np.testing.assert_allclose(np.asarray(model(x[0])), head.probabilities(pooled), atol=1e-4)
    assert [original.name for _, original in pairs] == ["block5_conv1", "block5_conv2", "block5_conv3", "block5_pool"]
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"block5_conv1", "block5_conv2", "block5_conv3", "predictions"}  # not the normalisation
    assert all(clone is not original for clone, original in pairs)


def test_class_weights_are_balanced_and_neutral_for_an_absent_class():
    weights = class_weights(np.array([0, 0, 0, 0, 0, 0, 1, 1]), 3)
    assert weights[0] == pytest.approx(8 / (2 * 6)) and weights[1] == pytest.approx(8 / (2 * 2))
    assert weights[2] == 1.0


def test_fine_tuning_learns_and_records_every_epoch(fine_tuned):
    rows = [row for row in fine_tuned["rows"] if row["phase"] == "fine-tune"]
    assert len(rows) == 2 and all(isinstance(row["loss"], float) and row["seconds"] >= 0 for row in rows)
    assert 0 <= rows[0]["val_accuracy"] <= 1
    batches = [p for p in fine_tuned["progress"] if p.phase == "fine-tune"]
    assert batches and all(p.total_epochs == 1 for p in batches)


def test_recover_tuned_from_the_checkpoint(fine_tuned, base):
    classifier = fine_tuned["classifier"]
    folder = fine_tuned["checkpoint_dir"]
    info = json.loads((folder / CHECKPOINT_INFO).read_text())
    assert info == {"boundary": BOUNDARY, "activation_shape": [SIZE // 16, SIZE // 16, 512]}
    assert (folder / CHECKPOINT_WEIGHTS).is_file()
    head, tuned = recover_tuned(base, classifier.head_, folder)
    # The checkpoint is the kept model's last epoch: what the classifier kept, with its temperature.
    assert head.temperature == classifier.head_.temperature
    np.testing.assert_allclose(head.kernel, classifier.head_.kernel, atol=1e-6)
    np.testing.assert_allclose(head.bias, classifier.head_.bias, atol=1e-6)
    assert sorted(tuned) == sorted(classifier.tuned_)
    for name, weights in classifier.tuned_.items():
        for got, kept in zip(tuned[name], weights):
            np.testing.assert_allclose(got, kept, atol=1e-6)


def test_nothing_to_recover(fine_tuned, base, tmp_path):
    head = fine_tuned["classifier"].head_
    assert recover_tuned(base, head, tmp_path / "missing") is None
    (tmp_path / CHECKPOINT_INFO).write_text(json.dumps({"boundary": BOUNDARY, "activation_shape": [2, 2, 512]}))
    assert recover_tuned(base, head, tmp_path) is None  # no weights yet: the first epoch never finished
    (tmp_path / CHECKPOINT_INFO).write_text("{not json")
    (tmp_path / CHECKPOINT_WEIGHTS).write_bytes(b"")
    assert recover_tuned(base, head, tmp_path) is None
