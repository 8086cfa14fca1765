"""Grad-CAM: where in the picture the model looked. Its numbers and checks on a random-weights model at
32 px; that it points at what decides the class (a planted patch) with the ImageNet weights, which
only the one test reading QUASAR_VGG16_WEIGHTS can show."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from quasar_core.explain import _jet, explain_image, grad_cam, overlay
from quasar_core.features.networks import keras_network
from quasar_core.head import fit_head
from quasar_core.training import TransferClassifier

SIZE = 32


@pytest.fixture(scope="module")
def shapes_model(dataset, tiny_config, base, base_loader):
    """A classifier of the shapes from a head on random-weight features (no training run needed)."""
    head = fit_head(keras_network(base)(dataset.images(size=SIZE)), dataset.targets(), n_classes=3, strength=0.1)
    return TransferClassifier.from_learned(tiny_config, labels=dataset.labels, head=head, base_loader=base_loader)


def test_grad_cam_gives_a_map_in_0_to_1_and_the_models_probabilities(shapes_model, dataset):
    image = np.asarray(dataset.pixels(3), np.uint8)  # 40 px: the model resizes it
    model = shapes_model.model()
    heatmap, index, probabilities = grad_cam(model, image)
    assert heatmap.shape == image.shape[:2] and heatmap.dtype.kind == "f"
    assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0
    np.testing.assert_allclose(probabilities, np.asarray(model(image[None].astype(np.float32)))[0], atol=1e-5)
    assert index == int(np.argmax(probabilities))
    _, named, same = grad_cam(model, image, class_index=2)
    assert named == 2
    np.testing.assert_allclose(same, probabilities, atol=1e-6)


def test_grad_cam_rejects_a_bad_image_or_class(shapes_model):
    model = shapes_model.model()
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        grad_cam(model, np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="class_index"):
        grad_cam(model, np.zeros((40, 40, 3), np.uint8), class_index=7)


def test_with_the_runs_image_size_the_explanation_is_the_prediction(shapes_model, dataset):
    """One pass through VGG16 both classifies and explains: its probabilities are predict_proba's."""
    photo = np.asarray(dataset.pixels(17), np.uint8)[:37, :30]  # not the model's size, not square
    result = explain_image(shapes_model.model(), photo, shapes_model.labels_, image_size=SIZE, min_side=96)
    expected = shapes_model.predict_proba([photo])[0]
    assert [result["probabilities"][label] for label in shapes_model.labels_] == pytest.approx(expected, abs=1e-5)
    assert result["class_name"] == shapes_model.labels_[int(np.argmax(expected))]
    assert result["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
    assert result["overlay"].shape == (118, 96, 3)  # drawn on the photo, enlarged to a 96 px short side
    assert result["heatmap"].shape == (118, 96)


def test_explain_image_names_the_class_asked_for(shapes_model, dataset):
    image = np.asarray(dataset.pixels(0), np.uint8)
    result = explain_image(shapes_model.model(), image, shapes_model.labels_, class_name="square", min_side=64)
    assert result["class_name"] == "square" and result["overlay"].shape == (64, 64, 3)
    assert result["overlay"].dtype == np.uint8
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="'cat' is not one of"):
        explain_image(shapes_model.model(), image, shapes_model.labels_, class_name="cat")


def test_both_classes_of_a_two_class_model_can_be_explained(dataset, tiny_config, base, base_loader):
    """Each class is explained by its own logit: the first class of two must not get a blank map
    (at 64 px, so that block5_conv3 has 4 x 4 positions to tell apart)."""
    two = dataset.subset(np.flatnonzero(dataset.targets() < 2))
    head = fit_head(keras_network(base)(two.images(size=64)), two.targets(), n_classes=2, strength=0.1)
    model = TransferClassifier.from_learned(tiny_config.replace(image_size=64), labels=two.labels, head=head,
                                            base_loader=base_loader).model()
    cams = [[grad_cam(model, np.asarray(two.pixels(i), np.uint8), class_index=c)[0].max() for c in (0, 1)]
            for i in (0, 5, 9, 14)]
    blank = np.array(cams) == 0
    assert not blank[:, 0].all() and not blank[:, 1].all()  # each class has somewhere to point


def test_overlay_and_colour_map_checks():
    image = np.zeros((4, 6, 3), np.uint8)
    heat = np.linspace(0, 1, 24).reshape(4, 6).astype(np.float32)
    blended = overlay(image, heat, alpha=1.0)
    np.testing.assert_array_equal(blended, _jet(heat))
    np.testing.assert_array_equal(overlay(image + 100, heat, alpha=0.0), image + 100)
    assert tuple(_jet(np.array([1.0]))[0]) == (127, 0, 0)  # hottest is dark red
    assert tuple(_jet(np.array([0.0]))[0]) == (0, 0, 127)  # coldest is dark blue
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, heat[:3])
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, heat, alpha=1.5)


# --------------------------------------------------------------------------- with the ImageNet weights

# VGG16's last block sees most of a small image from every position, so localisation needs a fair
# size; a patch a quarter of the side is what a photo's object might be.
SIDE = 128
PATCH = 36
MARGIN = 16  # the features that find the patch fire on its edges: count a band around it


def noise_image(rng, patch_at=None):
    image = (rng.random((SIDE, SIDE, 3)) * 60 + 100).astype(np.uint8)
    if patch_at is not None:
        row, col = patch_at
        image[row : row + PATCH, col : col + PATCH] = (230, 20, 20)
    return image


@pytest.fixture(scope="module")
def patch_model():
    """A classifier for which one red patch decides the class: 'patch' vs 'plain' noise."""
    weights = os.environ.get("QUASAR_VGG16_WEIGHTS")
    if not weights:
        pytest.skip("needs the ImageNet weights (set QUASAR_VGG16_WEIGHTS)")
    from quasar_core.backbone import load_vgg16
    from quasar_core.config import TrainConfig
    from quasar_core.data import load_uploads

    rng = np.random.default_rng(0)
    items = []
    for label in ("patch", "plain"):
        for number in range(12):
            spot = tuple(int(v) for v in rng.integers(0, SIDE - PATCH, 2)) if label == "patch" else None
            buffer = io.BytesIO()
            Image.fromarray(noise_image(rng, spot)).save(buffer, "PNG")
            items.append((f"{number}.png", buffer.getvalue(), label))
    base = load_vgg16("imagenet")
    config = TrainConfig(image_size=SIDE, precision="float32", folds=3)
    return TransferClassifier(config, base_loader=lambda: base).fit(load_uploads(items))


def test_the_heatmap_is_hottest_on_the_planted_patch(patch_model):
    model = patch_model.model()
    patch = patch_model.labels_.index("patch")
    for spot in ((6, 6), (86, 86), (8, 80), (80, 12)):
        image = noise_image(np.random.default_rng(1), spot)
        heatmap, index, probabilities = grad_cam(model, image, class_index=patch)
        assert heatmap.shape == image.shape[:2]
        assert 0.0 <= heatmap.min() and 0.9 < heatmap.max() <= 1.0  # scaled to 1, then resized smoothly
        assert int(np.argmax(probabilities)) == patch, spot
        near = np.zeros(heatmap.shape, bool)
        top, left = max(0, spot[0] - MARGIN), max(0, spot[1] - MARGIN)
        near[top : spot[0] + PATCH + MARGIN, left : spot[1] + PATCH + MARGIN] = True
        # a map unrelated to the patch gives about 1
        assert heatmap[near].mean() > 2 * heatmap[~near].mean(), spot
