"""The head: scikit-learn's softmax regression turned into one linear layer (two-class and multi-class),
the temperature that calibrates it, and the deployable Keras model assembled from stock layers."""

from __future__ import annotations

import numpy as np
import pytest

from quasar_core.data.images import resize_square
from quasar_core.features.networks import keras_network
from quasar_core.head import (VARIANCE_FLOOR, Head, assemble_model, fit_head, fit_temperature, preprocess_weights,
                              rooted, softmax, with_features)

SIZE = 32


def clusters(n_per_class, classes, *, d=16, seed=0, spread=1.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, d)) * 3
    x = np.concatenate([centres[c] + rng.normal(0, spread, (n_per_class, d)) for c in range(classes)])
    y = np.repeat(np.arange(classes), n_per_class)
    # unequal scales and offsets, and >= 0 like pooled features after ReLU (squared: the head roots them)
    return ((x * rng.uniform(0.5, 4, d) + rng.normal(0, 5, d)) ** 2).astype(np.float32), y


def sklearn_probabilities(x, y, x_new, *, strength, class_weights=True):
    from sklearn.linear_model import LogisticRegression

    x, x_new = rooted(x), rooted(x_new)
    mean, std = x.mean(axis=0), x.std(axis=0)
    model = LogisticRegression(C=strength, max_iter=500, class_weight="balanced" if class_weights else None)
    model.fit((x - mean) / std, y)
    return model.predict_proba((x_new - mean) / std)


def log_loss(probabilities, targets):
    return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(targets)), targets], 1e-12, None))))


# --------------------------------------------------------------------------- fit_head


@pytest.mark.parametrize("classes", [2, 3, 5])
@pytest.mark.parametrize("class_weights", [True, False])
def test_probabilities_equal_scikit_learns_on_standardised_features(classes, class_weights):
    x, y = clusters(12, classes, seed=classes)
    y = y[: len(y) - 5]  # uneven classes, so balancing matters
    x = x[: len(y)]
    new, _ = clusters(4, classes, seed=99)
    head = fit_head(x, y, n_classes=classes, strength=0.1, class_weights=class_weights)
    assert head.kernel.shape == (16, classes) and head.bias.shape == (classes,) and head.temperature == 1.0
    np.testing.assert_allclose(head.mean, rooted(x).mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(head.scale, rooted(x).std(axis=0), rtol=1e-4)
    expected = sklearn_probabilities(x, y, new, strength=0.1, class_weights=class_weights)
    np.testing.assert_allclose(head.probabilities(new), expected, atol=2e-5)
    assert head.probabilities(new).dtype == np.float32


def test_two_classes_get_logits_of_their_own_that_sum_to_zero():
    """scikit-learn keeps one logit for two classes; both classes' logits must move with the photo
    (Grad-CAM explains a class by its own logit: one fixed at 0 gave a blank map)."""
    x, y = clusters(10, 2, seed=1)
    head = fit_head(x, y, n_classes=2, strength=0.1)
    np.testing.assert_allclose(head.kernel[:, 0], -head.kernel[:, 1])
    assert head.bias[0] == pytest.approx(-head.bias[1])
    logits = head.logits(x)
    assert np.abs(logits[:, 0]).max() > 0.1
    np.testing.assert_allclose(logits.sum(axis=1), 0.0, atol=1e-4)
    multi = fit_head(*clusters(10, 3, seed=1), n_classes=3, strength=0.1)  # the multi-class solution does too
    np.testing.assert_allclose(multi.logits(x[:5, :16]).sum(axis=1), 0.0, atol=1e-3)


@pytest.mark.parametrize("present, n_classes", [((0, 2), 3), ((0, 1, 3), 4)])
def test_an_absent_class_never_wins(present, n_classes):
    x, y = clusters(10, len(present), seed=4)
    targets = np.asarray(present)[y]
    head = fit_head(x, targets, n_classes=n_classes, strength=0.3)
    absent = sorted(set(range(n_classes)) - set(present))
    probe = np.random.default_rng(0).normal(0, 50, (200, x.shape[1])).astype(np.float32)  # anything at all
    probabilities = head.probabilities(probe)
    assert probabilities.shape == (200, n_classes)
    assert not np.isin(probabilities.argmax(axis=1), absent).any()
    assert probabilities[:, absent].max() < 1e-6
    expected = sklearn_probabilities(x, targets, probe[:20], strength=0.3)
    np.testing.assert_allclose(probabilities[:20][:, list(present)], expected, atol=2e-5)


def test_one_class_is_refused():
    x, _ = clusters(5, 1)
    with pytest.raises(ValueError, match="at least 2 classes"):
        fit_head(x, np.zeros(len(x), np.int64), n_classes=3, strength=0.1)


def test_a_feature_that_never_fired_is_not_blown_up_on_a_new_photo():
    rng = np.random.default_rng(0)
    x = rng.random((20, 4)).astype(np.float32)
    x[:, 3] = 0.0  # never fires in training
    head = fit_head(x, np.arange(20) % 2, n_classes=2, strength=0.1)
    r = rooted(x)  # what the head standardises
    typical = r[:, :3].var(axis=0).mean()
    assert head.scale[3] == pytest.approx(np.sqrt(VARIANCE_FLOOR * r.var(axis=0).mean()), rel=1e-3)
    standardised = (rooted(np.array([0.5, 0.5, 0.5, 1.0], np.float32)) - head.mean) / head.scale
    assert np.abs(standardised).max() < 1.0 / np.sqrt(VARIANCE_FLOOR * typical * 3 / 4)
    np.testing.assert_allclose(standardised[:3], (rooted(0.5) - r[:, :3].mean(0)) / r[:, :3].std(0), rtol=1e-3)


def test_softmax_is_stable_and_the_arrays_round_trip():
    probabilities = softmax(np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(probabilities, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-6)
    x, y = clusters(6, 3)
    head = fit_head(x, y, n_classes=3, strength=0.1)
    head.temperature = 1.7
    again = Head.from_arrays(head.to_arrays())
    assert again.temperature == pytest.approx(1.7)
    np.testing.assert_array_equal(again.probabilities(x), head.probabilities(x))
    np.testing.assert_allclose(head.probabilities(x), softmax(head.logits(x) / 1.7), atol=1e-6)


# --------------------------------------------------------------------------- temperature


def calibrated_logits(n=400, classes=4, seed=0):
    """Logits whose softmax is right about as often as it says, and the labels drawn from it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, classes))
    p = softmax(logits).astype(np.float64)
    targets = np.array([rng.choice(classes, p=row / row.sum()) for row in p])
    return logits, targets


def test_temperature_lowers_the_log_loss_of_over_confident_logits_and_keeps_the_argmax():
    logits, targets = calibrated_logits()
    over = logits * 4  # over-confident
    temperature = fit_temperature(over, targets)
    assert 2.5 < temperature < 6
    assert log_loss(softmax(over / temperature), targets) < log_loss(softmax(over), targets)
    np.testing.assert_array_equal(softmax(over / temperature).argmax(1), softmax(over).argmax(1))
    assert fit_temperature(logits / 4, targets) < 0.5  # under-confident: sharpened
    assert 0.7 < fit_temperature(logits, targets) < 1.4  # calibrated already: about 1
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, np.int64)) == 1.0


# --------------------------------------------------------------------------- the Keras model


@pytest.fixture(scope="module")
def photos(dataset):
    return [dataset.pixels(i) for i in range(0, len(dataset), 3)]


@pytest.fixture(scope="module")
def trained_head(dataset, base):
    features = keras_network(base)(dataset.images(size=SIZE))
    head = fit_head(features, dataset.targets(), n_classes=3, strength=0.1)
    head.temperature = 2.5
    return head


@pytest.fixture(scope="module")
def model(base, trained_head):
    return assemble_model(base, trained_head, image_size=SIZE)


def expected_probabilities(base, head, photos):
    features = keras_network(base)(np.stack([resize_square(p, SIZE) for p in photos]))
    return head.probabilities(features), features


def test_the_model_is_the_head_on_pooled_features_of_resized_photos(model, base, trained_head, photos):
    assert model.input_shape == (None, None, None, 3)
    expected, _ = expected_probabilities(base, trained_head, photos)
    got = np.concatenate([np.asarray(model(p[None].astype(np.float32))) for p in photos])  # 40 px in, resized
    np.testing.assert_allclose(got, expected, atol=1e-4)
    for height, width in ((57, 41), (200, 90)):
        out = np.asarray(model(np.full((2, height, width, 3), 120.0, np.float32)))
        assert out.shape == (2, 3)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_the_folded_temperature_changes_probabilities_not_the_argmax(model, base, trained_head, photos):
    batch = np.stack([resize_square(p, SIZE) for p in photos])
    plain = Head(trained_head.mean, trained_head.scale, trained_head.kernel, trained_head.bias, 1.0)
    uncalibrated = np.asarray(assemble_model(base, plain, image_size=SIZE)(batch))
    calibrated = np.asarray(model(batch))
    assert np.abs(uncalibrated - calibrated).max() > 0.01
    np.testing.assert_array_equal(uncalibrated.argmax(1), calibrated.argmax(1))
    assert calibrated.max(axis=1).mean() < uncalibrated.max(axis=1).mean()  # T > 1: less sure


def test_the_model_saves_and_loads_in_safe_mode_with_the_same_numbers(model, photos, tmp_path):
    import keras

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    batch = np.stack([resize_square(p, 48) for p in photos])
    np.testing.assert_allclose(np.asarray(loaded(batch)), np.asarray(model(batch)), atol=1e-6)


def test_with_features_answers_probabilities_and_pooled_features_in_one_pass(model, base, trained_head, photos):
    batch = np.stack([resize_square(p, SIZE) for p in photos])
    probabilities, features = with_features(model)(batch)
    expected, expected_features = expected_probabilities(base, trained_head, photos)
    np.testing.assert_allclose(np.asarray(probabilities), expected, atol=1e-4)
    np.testing.assert_allclose(np.asarray(features), expected_features, rtol=1e-4, atol=1e-5)


def test_preprocessing_inside_the_model_equals_keras_preprocess_input(model, base):
    import keras

    layer = model.get_layer("vgg16_preprocess")
    assert not layer.trainable
    pixels = np.random.default_rng(1).uniform(0, 255, (3, SIZE, SIZE, 3)).astype(np.float32)
    expected = keras.applications.vgg16.preprocess_input(pixels.copy())
    np.testing.assert_allclose(np.asarray(layer(pixels)), expected, atol=1e-4)
    kernel, bias = preprocess_weights()
    assert kernel.shape == (1, 1, 3, 3) and bias.shape == (3,)
    for name in ("block1_conv1", "block5_conv3"):  # copies of the base's weights, in layers of its own
        assert model.get_layer(name) is not base.get_layer(name)
        for copied, original in zip(model.get_layer(name).get_weights(), base.get_layer(name).get_weights()):
            np.testing.assert_array_equal(copied, original)
    assert model.get_layer("resize").__class__.__name__ == "Resizing"


def test_tuned_layers_replace_the_bases(base, trained_head):
    tuned = {"block5_conv3": [np.full_like(w, 0.5) for w in base.get_layer("block5_conv3").get_weights()]}
    model = assemble_model(base, trained_head, image_size=SIZE, tuned=tuned)
    for got, wanted in zip(model.get_layer("block5_conv3").get_weights(), tuned["block5_conv3"]):
        np.testing.assert_array_equal(got, wanted)
    np.testing.assert_array_equal(model.get_layer("block5_conv2").get_weights()[0],
                                  base.get_layer("block5_conv2").get_weights()[0])
    assert not np.allclose(base.get_layer("block5_conv3").get_weights()[0], 0.5)  # the base is untouched
