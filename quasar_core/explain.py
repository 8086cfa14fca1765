"""Grad-CAM: where in the picture the model looked when it chose a class.

Selvaraju et al. (2017): weight each channel of the last convolutional block by the mean
gradient of the class score with respect to it, sum, keep the positive part.
"""

from __future__ import annotations

import numpy as np

from quasar_core.data.images import resize, resize_square

LAST_CONV_LAYER = "block5_conv3"


def grad_cam(model, image: np.ndarray, *, class_index: int | None = None, layer: str = LAST_CONV_LAYER):
    """Heatmap (H, W) in 0..1 at the image's own resolution, the class explained, and all probabilities.

    `image` is one uint8 RGB array of any size; `model` a run's model (raw RGB in). With
    class_index None, the predicted class is explained.
    """
    import keras
    import tensorflow as tf

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be an (H, W, 3) RGB array, got shape {image.shape!r}.")
    # The class score is the logit before softmax: a confident softmax output has almost no gradient.
    predictions = model.get_layer("predictions")
    grad_model = keras.Model(model.inputs, [model.get_layer(layer).output, predictions.input])
    batch = tf.convert_to_tensor(image[None].astype(np.float32))
    with tf.GradientTape() as tape:
        activations, head_input = grad_model(batch, training=False)
        logits = tf.matmul(head_input, predictions.kernel) + predictions.bias
        probabilities = tf.nn.softmax(logits)
        if class_index is None:
            class_index = int(tf.argmax(probabilities[0]))
        if not 0 <= class_index < probabilities.shape[-1]:
            raise ValueError(f"class_index must be from 0 to {probabilities.shape[-1] - 1}, got {class_index!r}.")
        score = logits[:, class_index]
    gradients = tape.gradient(score, activations)[0]
    channel_weights = tf.reduce_mean(gradients, axis=(0, 1))
    cam = tf.nn.relu(tf.reduce_sum(activations[0] * channel_weights, axis=-1)).numpy()
    if cam.max() > 0:
        cam = cam / cam.max()
    heatmap = resize(cam[:, :, None], image.shape[0], image.shape[1])[:, :, 0]
    return np.clip(heatmap, 0.0, 1.0), class_index, np.asarray(probabilities[0])


def _jet(values: np.ndarray) -> np.ndarray:
    """The 'jet' colour map (blue -> cyan -> yellow -> red) for values in 0..1, as uint8 RGB."""
    v = np.clip(values, 0, 1)[..., None]
    rgb = np.clip(1.5 - np.abs(4 * v - np.array([3.0, 2.0, 1.0])), 0, 1)
    return (rgb * 255).astype(np.uint8)


def overlay(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """The heatmap blended over the image (uint8 RGB, same size as the image)."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}.")
    if heatmap.shape != image.shape[:2]:
        raise ValueError(f"heatmap shape {heatmap.shape!r} does not match image shape {image.shape[:2]!r}.")
    colours = _jet(heatmap).astype(np.float32)
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colours
    return np.clip(blended, 0, 255).astype(np.uint8)


def explain_image(model, image: np.ndarray, labels: list[str], *, class_name: str | None = None,
                  min_side: int = 224, image_size: int | None = None) -> dict:
    """Everything a page or the CLI shows: the overlay, the class explained, all probabilities.

    With `image_size` (the run's), the model sees the photo resized by THE resize, as every
    prediction does, so these probabilities are the prediction itself and one pass through
    VGG16 both classifies and explains. Small images (28 px Fashion-MNIST) are enlarged for
    display so the overlay is legible. With class_name None, the predicted class is explained.
    """
    if class_name is not None and class_name not in labels:
        raise ValueError(f"class {class_name!r} is not one of this model's classes: {', '.join(labels)}.")
    shown = np.asarray(image, dtype=np.uint8)
    if min(shown.shape[:2]) < min_side:
        scale = min_side / min(shown.shape[:2])
        enlarged = resize(shown, round(shown.shape[0] * scale), round(shown.shape[1] * scale))
        shown = np.clip(np.rint(enlarged), 0, 255).astype(np.uint8)
    model_input = resize_square(np.asarray(image), image_size) if image_size is not None else shown
    index = labels.index(class_name) if class_name is not None else None
    heatmap, index, probabilities = grad_cam(model, model_input, class_index=index)
    if heatmap.shape != shown.shape[:2]:
        heatmap = np.clip(resize(heatmap[:, :, None], *shown.shape[:2])[:, :, 0], 0.0, 1.0)
    return {"overlay": overlay(shown, heatmap), "heatmap": heatmap, "class_name": labels[index],
            "probability": float(probabilities[index]),
            "probabilities": {label: float(p) for label, p in zip(labels, probabilities)}}
