"""Grad-CAM points at what decides the class: a planted patch, where the answer is known."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from quasar_core.explain import _jet, explain_image, grad_cam, overlay

# VGG16's last block sees most of a small image from every position, so localisation is tested at
# its native 224 px; a 64-px patch is what a photo's object might be.
SIDE = 224
PATCH = 64
MARGIN = 24  # the features that find the patch fire on its edges: count a band around it


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
    from quasar_core.data import load_uploads, split_dataset
    from quasar_core.training import TransferClassifier

    rng = np.random.default_rng(0)
    items = []
    for label in ("patch", "plain"):
        for number in range(20):
            spot = tuple(int(v) for v in rng.integers(0, SIDE - PATCH, 2)) if label == "patch" else None
            buffer = io.BytesIO()
            Image.fromarray(noise_image(rng, spot)).save(buffer, "PNG")
            items.append((f"{number}.png", buffer.getvalue(), label))
    dataset = load_uploads(items)
    config = TrainConfig(image_size=SIDE, epochs=15, seed=0)
    return TransferClassifier(config, base=load_vgg16(weights)).fit(dataset, split_dataset(dataset, seed=0))


@pytest.mark.parametrize("spot", [(8, 8), (150, 150), (10, 140), (140, 20)])
def test_the_heatmap_is_hottest_on_the_planted_patch(patch_model, spot):
    image = noise_image(np.random.default_rng(1), spot)
    heatmap, index, probabilities = grad_cam(patch_model.model_, image,
                                             class_index=patch_model.labels_.index("patch"))
    assert heatmap.shape == image.shape[:2]
    assert 0.0 <= heatmap.min() and 0.9 < heatmap.max() <= 1.0  # scaled to 1, then resized smoothly
    assert patch_model.labels_[int(np.argmax(probabilities))] == "patch"
    near = np.zeros(heatmap.shape, bool)
    near[max(0, spot[0] - MARGIN) : spot[0] + PATCH + MARGIN, max(0, spot[1] - MARGIN) : spot[1] + PATCH + MARGIN] = True
    # measured 3-20x on random spots; a map unrelated to the patch gives about 1
    assert heatmap[near].mean() > 2 * heatmap[~near].mean()


def test_explain_image_enlarges_small_images_and_names_the_class(patch_model):
    image = noise_image(np.random.default_rng(2), (10, 10))[:96, :96]
    result = explain_image(patch_model.model_, image, patch_model.labels_, class_name="plain", min_side=160)
    assert result["overlay"].shape == (160, 160, 3) and result["overlay"].dtype == np.uint8
    assert result["class_name"] == "plain"
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="'cat' is not one of"):
        explain_image(patch_model.model_, image, patch_model.labels_, class_name="cat")


def test_overlay_and_colour_map_checks():
    image = np.zeros((4, 6, 3), np.uint8)
    heat = np.linspace(0, 1, 24).reshape(4, 6).astype(np.float32)
    blended = overlay(image, heat, alpha=1.0)
    np.testing.assert_array_equal(blended, _jet(heat))
    assert tuple(_jet(np.array([1.0]))[0]) == (127, 0, 0)  # hottest is dark red
    assert tuple(_jet(np.array([0.0]))[0]) == (0, 0, 127)  # coldest is dark blue
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, heat[:3])
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, heat, alpha=1.5)


def test_grad_cam_rejects_a_bad_image_or_class(patch_model):
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        grad_cam(patch_model.model_, np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="class_index"):
        grad_cam(patch_model.model_, np.zeros((40, 40, 3), np.uint8), class_index=7)


def test_with_the_runs_image_size_the_explanation_is_the_prediction(patch_model):
    """One pass through VGG16 both classifies and explains: its probabilities are predict_proba's."""
    photo = noise_image(np.random.default_rng(3), (30, 100))[:150, :180]  # not the model's size
    result = explain_image(patch_model.model_, photo, patch_model.labels_, image_size=SIDE)
    expected = patch_model.predict_proba([photo])[0]
    assert [result["probabilities"][label] for label in patch_model.labels_] == pytest.approx(expected, abs=1e-5)
    assert result["class_name"] == patch_model.labels_[int(np.argmax(expected))]
    assert result["overlay"].shape[:2] == (224, 269)  # drawn on the photo, enlarged to a 224-px short side
