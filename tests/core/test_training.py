"""TransferClassifier: VGG16 runs once per image, the head trains on cached features, the saved
model is the same maths, and cancelling keeps what was learned.

All models use random weights ("none") at 32 px on the 24 shape pictures of conftest.py.
"""

from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np
import pytest

from quasar_core import training
from quasar_core.backbone import feature_network, preprocess
from quasar_core.config import Augmentation, TrainConfig
from quasar_core.data import Dataset, Split
from quasar_core.progress import TrainingHooks
from quasar_core.training import TransferClassifier, feature_batch_size, resize_batch

SIZE = 32
REAL_RUN_NETWORK = training.run_network
REAL_FIT_PHASE = TransferClassifier._fit_phase


@dataclasses.dataclass
class Pass:
    """One call of run_network: which network, on what, and how many batches it really ran."""

    network: str
    images: int
    batches: int
    augmented: bool
    from_pixels: bool
    input_shape: tuple
    output: np.ndarray | None


class PassRecorder:
    """Wraps training.run_network (the only way images go through VGG16) and training._fit_phase."""

    def __init__(self, monkeypatch):
        self.passes: list[Pass] = []
        self.phases: list[dict] = []
        real_run, real_fit_phase = REAL_RUN_NETWORK, REAL_FIT_PHASE

        def run_network(network, images, *, hooks, augmenter=None, preprocess=True, **kwargs):
            batches = [0]

            def count(progress):
                batches[0] += 1
                hooks.progress(progress)

            out = real_run(network, images, hooks=TrainingHooks(on_progress=count), augmenter=augmenter,
                           preprocess=preprocess, **kwargs)
            self.passes.append(Pass(network.name, len(images), batches[0], augmenter is not None, preprocess,
                                    tuple(np.shape(images)[1:]), out))
            return out

        def fit_phase(clf, model, learning_rate, epochs, phase, x, *args, **kwargs):
            self.phases.append({
                "phase": phase, "epochs": epochs, "samples": len(x), "input_shape": tuple(model.input_shape[1:]),
                "conv_layers": [layer.name for layer in model.layers if "Conv" in layer.__class__.__name__],
            })
            return real_fit_phase(clf, model, learning_rate, epochs, phase, x, *args, **kwargs)

        monkeypatch.setattr(training, "run_network", run_network)
        monkeypatch.setattr(TransferClassifier, "_fit_phase", fit_phase)

    def summary(self):
        """What went through which network, without the outputs (for comparing two fits)."""
        return [dataclasses.replace(p, output=None) for p in self.passes]


def fit(dataset, split, base, *, hooks=None, cancel=None, **settings):
    config = TrainConfig(weights="none", image_size=SIZE, batch_size=8, seed=0).replace(**settings)
    classifier = TransferClassifier(config, base=base)
    return classifier.fit(dataset, split, hooks=hooks, cancel=cancel)


@pytest.fixture
def small_feature_batches(monkeypatch):
    """Batches of 4 images in the feature pass, so 18 training images take several batches."""
    monkeypatch.setattr(training, "MAX_FEATURE_BATCH", 4)
    assert feature_batch_size(SIZE) == 4
    return 4


@pytest.fixture(scope="module")
def fitted(dataset, split, base):
    """One classifier trained for 4 epochs, with the head layers it trained (captured from build_head)."""
    heads = []
    real_build_head = training.build_head
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "build_head", lambda *a, **k: heads.append(real_build_head(*a, **k)) or heads[-1])
        classifier = TransferClassifier(TrainConfig(weights="none", image_size=SIZE, epochs=4, batch_size=8),
                                        base=base)
        before = set(vars(classifier))
        returned = classifier.fit(dataset, split)
    return {"classifier": classifier, "returned": returned, "attributes_before": before, "head": heads[0]}


# --------------------------------------------------------------------------- VGG16 runs once


def test_base_is_not_rerun_per_epoch(dataset, split, base, monkeypatch, small_feature_batches):
    b = small_feature_batches
    counts = {}
    for epochs in (1, 5):
        recorder = PassRecorder(monkeypatch)
        classifier = fit(dataset, split, base, epochs=epochs)
        assert len(classifier.history_) == epochs
        counts[epochs] = recorder
    one, five = counts[1], counts[5]
    assert one.summary() == five.summary()
    expected_batches = math.ceil(len(split.train) / b) + math.ceil(len(split.val) / b)
    assert sum(p.batches for p in five.passes) == expected_batches == 6
    assert sum(p.images for p in five.passes) == len(split.train) + len(split.val)
    assert all(p.from_pixels and p.network == "vgg16_input_to_block5_pool" for p in five.passes)
    # Every epoch trained a head on 512 cached numbers per image: no convolution in it.
    assert five.phases == [{"phase": "head", "epochs": 5, "samples": len(split.train), "input_shape": (512,),
                            "conv_layers": []}]


def test_augmentation_grows_the_feature_pass_by_the_views_only(dataset, split, base, monkeypatch,
                                                               small_feature_batches):
    b = small_feature_batches
    recorder = PassRecorder(monkeypatch)
    fit(dataset, split, base, epochs=3, augment=True, augmentation=Augmentation(views=2))
    passes = recorder.passes
    n_train, n_val = len(split.train), len(split.val)
    # 2 views x 5 training batches + 1 validation batch (without augmentation: 5 + 1), for any epochs.
    assert sum(p.batches for p in passes) == 2 * math.ceil(n_train / b) + math.ceil(n_val / b) == 11
    assert [(p.images, p.augmented) for p in passes] == [(n_train, False), (n_train, True), (n_val, False)]
    assert not np.allclose(passes[0].output, passes[1].output)  # the second view really is augmented
    assert recorder.phases[0]["samples"] == 2 * n_train  # the head trains on both views each epoch


def test_fine_tune_runs_the_frozen_part_once_from_pixels(dataset, split, base, monkeypatch):
    fine_tune_epochs = 2
    recorder = PassRecorder(monkeypatch)
    before = [w.copy() for w in base.get_layer("block5_conv3").get_weights()]
    classifier = fit(dataset, split, base, mode="fine-tune", epochs=2, fine_tune_epochs=fine_tune_epochs,
                     fine_tune_blocks=1, fine_tune_learning_rate=1e-3)
    n_train, n_val = len(split.train), len(split.val)
    pixel_passes = [p for p in recorder.passes if p.from_pixels]
    cached_passes = [p for p in recorder.passes if not p.from_pixels]
    # Pixels go through blocks 1-4 once per image...
    assert sum(p.images for p in pixel_passes) == n_train + n_val
    assert {p.network for p in pixel_passes} == {"vgg16_input_to_block4_pool"}
    # ... and block 5 (for the head's features) starts from the cached block4_pool activations.
    assert sum(p.images for p in cached_passes) == n_train + n_val
    assert {p.network for p in cached_passes} == {"vgg16_block4_pool_to_block5_pool"}
    assert all(p.input_shape == (SIZE // 16, SIZE // 16, 512) for p in cached_passes)
    head_phase, tune_phase = recorder.phases
    assert head_phase["conv_layers"] == []
    assert tune_phase["phase"] == "fine-tune" and tune_phase["epochs"] == fine_tune_epochs
    assert tune_phase["input_shape"] == (SIZE // 16, SIZE // 16, 512)
    assert tune_phase["conv_layers"] == ["block5_conv1", "block5_conv2", "block5_conv3"]
    assert [row["phase"] for row in classifier.history_] == ["head"] * 2 + ["fine-tune"] * fine_tune_epochs
    assert [row["epoch"] for row in classifier.history_] == list(range(1, 3 + fine_tune_epochs))
    # The tuned block is in the saved model; the frozen blocks and the shared base are unchanged.
    tuned = classifier.model_.get_layer("block5_conv3").get_weights()[0]
    assert not np.allclose(tuned, before[0])
    np.testing.assert_array_equal(base.get_layer("block5_conv3").get_weights()[0], before[0])
    np.testing.assert_array_equal(classifier.model_.get_layer("block4_conv3").get_weights()[0],
                                  base.get_layer("block4_conv3").get_weights()[0])


# --------------------------------------------------------------------------- estimator behaviour


def test_fit_returns_self_and_learned_attributes_end_in_underscore(fitted):
    classifier = fitted["classifier"]
    assert fitted["returned"] is classifier
    # Public attributes set by fit are the learned ones (private helpers may start with "_").
    learned = {name for name in set(vars(classifier)) - fitted["attributes_before"] if not name.startswith("_")}
    assert learned >= {"model_", "labels_", "history_", "cancelled_", "timings_", "precision_"}
    assert all(name.endswith("_") for name in learned), sorted(learned)
    assert fitted["attributes_before"] == {"config", "base"}


def test_unfitted_classifier_refuses_to_predict(dataset):
    classifier = TransferClassifier(TrainConfig(weights="none", image_size=SIZE))
    assert not hasattr(classifier, "model_")
    with pytest.raises(ValueError, match="fit"):
        classifier.predict_proba(dataset.images([0], size=SIZE))


def test_settings_override_the_config():
    classifier = TransferClassifier(TrainConfig(weights="none"), epochs=3, image_size=48)
    assert (classifier.config.epochs, classifier.config.image_size, classifier.config.weights) == (3, 48, "none")
    with pytest.raises(ValueError, match="-1"):
        TransferClassifier(TrainConfig(weights="none"), epochs=-1)


def test_learned_state(fitted, dataset):
    classifier = fitted["classifier"]
    assert classifier.labels_ == dataset.labels == ["circle", "square", "triangle"]
    assert classifier.cancelled_ is False
    assert [row["epoch"] for row in classifier.history_] == [1, 2, 3, 4]
    assert all(row["phase"] == "head" and row["val_accuracy"] is not None for row in classifier.history_)
    assert set(classifier.timings_) == {"features", "head"}
    assert classifier.precision_ in ("float32", "bfloat16")


def test_predict_proba_rows_are_probabilities(fitted, dataset):
    classifier = fitted["classifier"]
    probabilities = classifier.predict_proba(dataset.images(size=SIZE))
    assert probabilities.shape == (len(dataset), 3)
    assert (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    labels = classifier.predict(dataset.images(size=SIZE))
    assert labels == [classifier.labels_[i] for i in probabilities.argmax(axis=1)]
    assert classifier.predict_proba(np.zeros((0, SIZE, SIZE, 3), np.uint8)).shape == (0, 3)


def test_it_learns_the_shapes(fitted, dataset):
    """Coloured shapes are easy even for random convolutions: most pictures are named right."""
    predicted = fitted["classifier"].predict_proba(dataset.images(size=SIZE)).argmax(axis=1)
    assert (predicted == dataset.targets()).mean() >= 0.8


def apply_head(layers, features):
    """The trained head on given features, as in inference; returns (input of the last layer, output)."""
    tensor = features
    for layer in layers[:-1]:
        tensor = layer(tensor, training=False)
    return np.asarray(tensor), np.asarray(layers[-1](tensor))


def test_saved_model_is_the_same_maths_as_the_head_on_float32_features(fitted, dataset, base):
    import keras

    classifier, head = fitted["classifier"], fitted["head"]
    images = dataset.images(size=SIZE).astype(np.float32)
    features = np.asarray(feature_network(base, precision="float32")(preprocess(images))).mean(axis=(1, 2))
    expected_hidden, expected = apply_head(head, features)
    model = classifier.model_
    hidden = np.asarray(keras.Model(model.input, model.get_layer("predictions").input)(images))
    np.testing.assert_allclose(hidden, expected_hidden, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(model(images)), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(classifier.predict_proba(images), expected, rtol=1e-4, atol=1e-5)


def test_flatten_pooling_with_a_hidden_layer(dataset, split, base, monkeypatch):
    import keras

    heads = []
    real_build_head = training.build_head
    monkeypatch.setattr(training, "build_head", lambda *a, **k: heads.append(real_build_head(*a, **k)) or heads[-1])
    classifier = fit(dataset, split, base, epochs=2, pooling="flatten", dense_units=8, precision="float32")
    assert classifier.precision_ == "float32"
    model = classifier.model_
    assert {"flatten", "head_dense", "head_dense_dropout"} <= {layer.name for layer in model.layers}
    images = dataset.images(size=SIZE).astype(np.float32)
    features = np.asarray(feature_network(base, precision="float32")(preprocess(images)))
    expected_hidden, expected = apply_head(heads[0], features)
    hidden = np.asarray(keras.Model(model.input, model.get_layer("predictions").input)(images))
    np.testing.assert_allclose(hidden, expected_hidden, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(model(images)), expected, rtol=1e-4, atol=1e-5)


def test_full_model_takes_images_of_any_size(fitted, dataset):
    classifier = fitted["classifier"]
    model = classifier.model_
    assert model.input_shape == (None, None, None, 3)
    assert model.get_layer("resize").__class__.__name__ == "Resizing"
    for height, width in ((57, 41), (32, 32), (200, 90)):
        out = np.asarray(model(np.full((2, height, width, 3), 120.0, np.float32)))
        assert out.shape == (2, 3)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    # predict_proba takes a list of pictures of different sizes, or a single picture.
    mixed = [np.asarray(dataset.samples[0].pixels), np.zeros((70, 50, 3), np.uint8), np.zeros((33, 90, 3), np.uint8)]
    assert classifier.predict_proba(mixed).shape == (3, 3)
    single = classifier.predict_proba(dataset.images([5], size=SIZE)[0])
    np.testing.assert_allclose(single, classifier.predict_proba(dataset.images([5], size=SIZE)), atol=1e-6)


def test_same_seed_same_model(dataset, split, base, fitted):
    again = fit(dataset, split, base, epochs=4)
    images = dataset.images(size=SIZE)
    np.testing.assert_allclose(again.predict_proba(images), fitted["classifier"].predict_proba(images), atol=1e-5)
    np.testing.assert_allclose([r["loss"] for r in again.history_],
                               [r["loss"] for r in fitted["classifier"].history_], rtol=1e-4)


def test_empty_training_split_is_refused(dataset, base):
    empty = Split(train=np.array([], np.int64), val=np.array([0]), test=np.array([1]))
    with pytest.raises(ValueError, match="empty"):
        TransferClassifier(TrainConfig(weights="none", image_size=SIZE), base=base).fit(dataset, empty)


def test_early_stopping_says_so(dataset, split, base):
    """Validation pictures relabelled wrongly: the better the head fits, the worse the validation loss."""
    val = set(split.val.tolist())
    shifted = [dataclasses.replace(s, label=dataset.labels[(dataset.labels.index(s.label) + 1) % 3])
               if i in val else s for i, s in enumerate(dataset.samples)]
    mislabelled = Dataset(samples=shifted, labels=dataset.labels, report=dataset.report)
    messages = []
    classifier = fit(mislabelled, split, base, epochs=60, early_stopping=True, patience=2,
                     hooks=TrainingHooks(on_message=messages.append))
    done = len(classifier.history_)
    assert done < 60
    assert messages == [f"Stopped head early after {done} of 60 epochs: the validation loss had stopped "
                        "improving, so the best epoch was kept."]


# --------------------------------------------------------------------------- cancelling


def cancel_when(phase):
    cancel = threading.Event()
    seen = []

    def on_progress(progress):
        seen.append(progress.phase)
        if progress.phase == phase:
            cancel.set()

    return cancel, seen, TrainingHooks(on_progress=on_progress)


def test_cancel_after_the_first_head_batch_keeps_a_usable_model(dataset, split, base):
    cancel, seen, hooks = cancel_when("head")
    classifier = fit(dataset, split, base, epochs=5, batch_size=4, hooks=hooks, cancel=cancel)
    assert classifier.cancelled_ is True
    assert seen.count("head") == 1  # stopped at the next batch
    assert len(classifier.history_) < 5
    assert classifier.model_ is not None
    probabilities = classifier.predict_proba(dataset.images(size=SIZE))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_cancel_during_the_head_skips_fine_tuning(dataset, split, base):
    cancel, seen, hooks = cancel_when("head")
    classifier = fit(dataset, split, base, mode="fine-tune", epochs=3, fine_tune_epochs=3, hooks=hooks,
                     cancel=cancel)
    assert classifier.cancelled_ and classifier.model_ is not None
    assert "fine-tune" not in seen
    assert all(row["phase"] == "head" for row in classifier.history_)


@pytest.mark.parametrize("mode", ["feature-extraction", "fine-tune"])
def test_cancel_during_the_feature_pass_leaves_no_model(dataset, split, base, mode):
    cancel, seen, hooks = cancel_when("features")
    classifier = fit(dataset, split, base, mode=mode, epochs=3, hooks=hooks, cancel=cancel)
    assert classifier.cancelled_ is True
    assert classifier.model_ is None
    assert classifier.history_ == []
    assert "head" not in seen
    with pytest.raises(ValueError, match="no trained model"):
        classifier.predict(dataset.images([0], size=SIZE))


def test_cancel_before_fit_runs_nothing(dataset, split, base, monkeypatch):
    recorder = PassRecorder(monkeypatch)
    cancel = threading.Event()
    cancel.set()
    classifier = fit(dataset, split, base, cancel=cancel)
    assert classifier.model_ is None and classifier.cancelled_
    assert [p.batches for p in recorder.passes] == [0]
    assert recorder.phases == []


# --------------------------------------------------------------------------- helpers


def test_feature_batch_size_is_bounded_by_memory():
    assert feature_batch_size(32) == training.MAX_FEATURE_BATCH
    sizes = [feature_batch_size(s) for s in (32, 128, 224, 512)]
    assert sizes == sorted(sizes, reverse=True)
    assert feature_batch_size(512) >= 1
    assert 2 * 224 * 224 * 64 * 4 * feature_batch_size(224) <= training.FEATURE_PASS_BUDGET_BYTES


def test_resize_batch():
    square = np.zeros((2, 32, 32, 3), np.uint8)
    out = resize_batch(square, 32)
    assert out.dtype == np.float32 and out.shape == (2, 32, 32, 3)
    mixed = resize_batch([np.zeros((10, 20, 3), np.uint8), np.full((64, 64, 3), 200, np.uint8)], 32)
    assert mixed.shape == (2, 32, 32, 3)
    assert mixed[1].min() == mixed[1].max() == 200.0
    assert resize_batch(np.zeros((40, 40, 3), np.uint8), 32).shape == (1, 32, 32, 3)
    assert resize_batch([], 32).shape == (0, 32, 32, 3)


def test_balanced_class_weights():
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    weights = training._balanced_class_weights(y, 3)
    assert weights[0] == pytest.approx(8 / (2 * 6))
    assert weights[1] == pytest.approx(8 / (2 * 2))
    assert weights[2] == 1.0  # a class missing from training gets a neutral weight


def test_head_normalization_floors_near_zero_variance():
    """A feature that never fired in training must not be blown up ~1e7x on a new picture."""
    import keras

    config = TrainConfig(weights="none", dropout=0.0)
    rng = np.random.default_rng(0)
    features = rng.random((20, 4)).astype(np.float32)
    features[:, 3] = 0.0  # never fires in training
    layers = training.build_head(config, 2, features=features)
    normalization = layers[0]
    assert isinstance(normalization, keras.layers.Normalization)
    typical = features[:, :3].var(axis=0).mean()
    new = np.array([[0.5, 0.5, 0.5, 1.0]], np.float32)
    normalized = np.asarray(normalization(new))
    assert np.abs(normalized).max() < 1.0 / np.sqrt(training.VARIANCE_FLOOR * typical * 3 / 4)
    np.testing.assert_allclose(normalized[0, :3], (0.5 - features[:, :3].mean(0)) / features[:, :3].std(0),
                               rtol=1e-3)
