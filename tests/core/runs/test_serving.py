"""A run's answers through the feature pass (quasar_core.runs.serving): `quasar evaluate`, `quasar predict` and the
Predict page run VGG16 batched in the training's precision (int8 where it ran int8) and the head's arrays, and
the kept float model agrees with them."""

from __future__ import annotations

import os

import numpy as np
import pytest

from quasar_core.data import Limits, load_uploads
from quasar_core.runs import serving
from quasar_core.runs.learned import classifier_of
from quasar_core.runs.pipeline import evaluate_run
from quasar_core.training import TransferClassifier
from tests.core.runs.support import small_config

WEIGHTS = os.environ.get("QUASAR_VGG16_WEIGHTS", "")


def new_photos(shapes, first=40, count=5):
    items = [(f"{label}_{n}.png", shapes.png(shapes.image(label, n, side=90)), label)
             for label in shapes.classes for n in range(first, first + count)]
    return load_uploads(items, limits=Limits(), source="new-photos.zip")


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory, dataset):
    """A run trained in int8 on ImageNet's weights at 64 px (the weights file of QUASAR_VGG16_WEIGHTS)."""
    if not WEIGHTS or not os.path.isfile(WEIGHTS):
        pytest.skip("needs the ImageNet weights (set QUASAR_VGG16_WEIGHTS)")
    from quasar_core.features import int8

    if not int8.runtime_available():
        pytest.skip("needs ONNX Runtime")
    from quasar_core.features.cache import FeatureCache
    from quasar_core.runs.pipeline import train_run

    root = tmp_path_factory.mktemp("int8-run")
    config = small_config(weights="imagenet", image_size=64, precision="int8", folds=3)
    run = train_run(dataset, config, root / "run", cache=FeatureCache(root / "features"))
    assert run.status.precision == "int8"
    return run


def test_evaluate_runs_through_the_feature_pass_not_the_keras_model(tiny_run, base_loader, shapes, monkeypatch):
    monkeypatch.setattr(TransferClassifier, "model", lambda self: pytest.fail("the Keras model was assembled"))
    serving.forget(tiny_run.path)
    evaluation = evaluate_run(tiny_run, new_photos(shapes), base_loader=base_loader)
    assert evaluation.n_images == 15
    served = serving.served_model(tiny_run, base_loader=base_loader)
    assert served.route == "feature pass"
    assert served.precision == ("int8" if tiny_run.status.precision == "int8" else "float32")  # never bfloat16


@pytest.fixture(scope="module")
def float32_run(tmp_path_factory, dataset, base):
    from tests.core.runs.support import train_small

    return train_small(dataset, tmp_path_factory.mktemp("float32-run") / "run", base,
                       small_config(precision="float32"))


def test_the_feature_pass_answers_as_the_kept_model(float32_run, base_loader, shapes):
    """Float runs: the head's arrays on the feature pass's features give the kept Keras model's answers."""
    photos = [np.asarray(shapes.image(label, 50, side=side)) for label in shapes.classes for side in (32, 200)]
    served = serving.served_model(float32_run, base_loader=base_loader)
    assert served.precision == "float32"
    ours, features = served.predict_proba(photos, with_features=True)
    kept, kept_features = classifier_of(float32_run, base_loader=base_loader).predict_proba(photos,
                                                                                            with_features=True)
    np.testing.assert_allclose(ours, kept, rtol=0, atol=1e-5)
    np.testing.assert_allclose(features, kept_features, rtol=1e-4, atol=1e-4)


def test_an_int8_run_is_answered_in_int8_and_its_float_model_agrees(int8_run, shapes):
    """The reported answers come from int8 features (as the run learned); the kept float model gives the same
    classes and probabilities close to them on a few of the same photos."""
    from quasar_core.data.images import resize_square

    photos = new_photos(shapes)
    served = serving.served_model(int8_run)
    assert served.route == "feature pass" and served.precision == "int8"
    evaluation = evaluate_run(int8_run, photos)
    reported = np.array([[p["probabilities"][label] for label in int8_run.labels] for p in evaluation.predictions])
    few = np.arange(0, len(photos), 3)
    kept = np.asarray(classifier_of(int8_run).model().predict(
        np.stack([resize_square(photos.pixels(int(i)), 64) for i in few]), verbose=0))
    assert np.array_equal(kept.argmax(1), reported[few].argmax(1))
    difference = float(np.max(np.abs(kept - reported[few])))
    print(f"int8 feature pass vs the kept float model on {len(few)} photos: largest difference {difference:.4f}")
    assert difference < 0.05
    # predict answers as evaluate reported
    ours = served.predict_proba([photos.pixels(i) for i in range(len(photos))])
    np.testing.assert_allclose(ours, reported, rtol=0, atol=1e-5)


def test_the_app_of_an_int8_run_ships_the_int8_model_and_answers_as_the_product(int8_run, tmp_path):
    from quasar_core.runs.export import export_run

    result = export_run(int8_run.path, format="app", out=tmp_path / "app")
    assert result["storage"] == "int8" and "int8" in result["model"]
    assert result["max_difference"] <= 1e-4, result  # the same int8 arithmetic as the product's feature pass
    assert result["model_bytes"] <= 25 * 1024**2, result["model_bytes"]
    print(f"int8 app: model.onnx {result['model_bytes'] / 1e6:.1f} MB, largest difference {result['max_difference']:.1e}")
