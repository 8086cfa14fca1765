"""The new top of the network: a softmax regression on VGG16's pooled features, and the full model.

The head square-roots the pooled features of block4_pool and block5_pool (a power
normalisation: a few strong channels no longer drown the rest), standardises them and applies
scikit-learn's LogisticRegression, fitted by L-BFGS to its optimum: on cached features a fit
takes tens of milliseconds, so the folds can choose its regularisation instead of a guess
(the kept head against a plain LogisticRegression(): bench/README.md, "Why the engine is built
as it is").

``assemble_model`` turns a head (and fine-tuned blocks) into the deployable Keras model from
stock layers only — resize (antialiased, like data.images.resize), VGG16's preprocessing as a
fixed 1x1 convolution, VGG16, average pooling of each feature layer, the square root (a Keras
operation, serialised as such), Normalization, Dense — so it loads with ``safe_mode=True``
anywhere TensorFlow runs. Runs saved before the richer features (block5_pool alone, no square
root) load and rebuild as they were: a head records its layers and whether it roots.
"""

from __future__ import annotations

import numpy as np

from quasar_core import head_at_scale
from quasar_core.backbone import IMAGENET_BGR_MEAN, apply_stack
# The head's arrays and their numbers live below both ways of fitting one; named here too, as before.
from quasar_core.head_arrays import (LEGACY_LAYERS, LOGITS_CHUNK, MAX_ITER, ROOT_EPSILON, STRENGTHS,  # noqa: F401
                                     VARIANCE_FLOOR, Head, rooted, softmax)

def fit_head(features, targets, *, n_classes: int, strength: float, class_weights: bool = True,
             warm: "Head | None" = None) -> Head:
    """A head learned from (n, d) pooled features (FEATURE_LAYERS', not yet rooted) and their class ids
    (every class must appear)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    if len(features) > head_at_scale.SCALE_ROWS:  # many photos: the same head, in memory that does not grow with them
        return head_at_scale.fit_head_at_scale(features, targets, n_classes=n_classes, strength=strength,
                                               class_weights=class_weights)
    x = rooted(features)
    y = np.asarray(targets, dtype=np.int64)
    present = np.unique(y)
    if len(present) < 2:
        raise ValueError(f"A head needs photos of at least 2 classes, got classes {present.tolist()!r}.")
    mean = x.mean(axis=0)
    variance = x.var(axis=0)
    scale = np.sqrt(np.maximum(variance, VARIANCE_FLOOR * float(variance.mean()) + 1e-12)).astype(np.float32)
    model = LogisticRegression(C=strength, max_iter=MAX_ITER, class_weight="balanced" if class_weights else None)
    # One BLAS thread: these fits are tiny, and on two busy cores BLAS threads spin against each other.
    with threadpool_limits(1):
        model.fit((x - mean) / scale, y)
    kernel = np.zeros((x.shape[1], n_classes), dtype=np.float32)
    bias = np.zeros(n_classes, dtype=np.float32)
    if len(model.classes_) == 2:  # scikit-learn keeps one logit for two classes: split it between both
        # Halves of opposite sign give the same softmax and sum to zero like the multi-class solution, so
        # each class's own logit moves with the photo (a logit fixed at 0 left its Grad-CAM blank).
        kernel[:, model.classes_[1]], kernel[:, model.classes_[0]] = model.coef_[0] / 2, -model.coef_[0] / 2
        bias[model.classes_[1]], bias[model.classes_[0]] = model.intercept_[0] / 2, -model.intercept_[0] / 2
    else:
        kernel[:, model.classes_] = model.coef_.T
        bias[model.classes_] = model.intercept_
    # A class absent from these photos must never win: a very low bias.
    absent = np.setdiff1d(np.arange(n_classes), model.classes_)
    bias[absent] = -1e4
    return Head(mean.astype(np.float32), scale, kernel, bias)


def fit_temperature(logits, targets) -> float:
    """The temperature that makes softmax(logits / T) best calibrated (least log loss) on these photos."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if len(targets) == 0:
        return 1.0

    def loss(log_t):
        p = softmax(logits / np.exp(log_t)).astype(np.float64)
        return -np.mean(np.log(np.clip(p[np.arange(len(targets)), targets], 1e-12, None)))

    result = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


# --------------------------------------------------------------------------- Keras models


def feature_layers(tapped: dict, head: Head):
    """The features tensor of a Keras graph (each of the head's layers averaged, side by side) and the
    head's input (rooted). `tapped` maps layer names to tensors (backbone.apply_stack)."""
    import keras

    pools = [keras.layers.GlobalAveragePooling2D(name="pool" if len(head.layers) == 1 else f"{layer}_average")(
        tapped[layer]) for layer in head.layers]
    features = pools[0] if len(pools) == 1 else keras.layers.Concatenate(name="features")(pools)
    # A Keras operation, not a Lambda: it is saved by name and loads under safe_mode.
    return features, (keras.ops.sqrt(keras.ops.relu(features) + float(ROOT_EPSILON)) if head.root else features)


def feature_output(model):
    """The layer whose output is a model's pooled features ("features"; "pool" in runs saved before them)."""
    names = {layer.name for layer in model.layers}
    return model.get_layer("features" if "features" in names else "pool").output


def head_layers(head: Head, *, prefix: str = ""):
    """Normalization + Dense(softmax) holding the head, temperature folded into the Dense layer."""
    import keras

    normalization = keras.layers.Normalization(axis=-1, mean=head.mean, variance=head.scale**2,
                                               name=f"{prefix}feature_normalization")
    dense = keras.layers.Dense(len(head.bias), activation="softmax", name=f"{prefix}predictions")
    return normalization, dense


def set_head_weights(dense, head: Head) -> None:
    # Dividing kernel and bias by T divides the logits by T: calibrated probabilities, same argmax.
    dense.set_weights([head.kernel / head.temperature, head.bias / head.temperature])


def preprocess_weights():
    """1x1 convolution that equals vgg16.preprocess_input: swap RGB to BGR, subtract the mean."""
    kernel = np.zeros((1, 1, 3, 3), dtype=np.float32)
    for out_channel in range(3):
        kernel[0, 0, 2 - out_channel, out_channel] = 1.0
    return [kernel, -IMAGENET_BGR_MEAN.copy()]


def assemble_model(base, head: Head, *, image_size: int, tuned: dict | None = None):
    """The deployable model: raw RGB (any size) -> resize -> preprocess -> VGG16 -> pool -> head.

    `tuned` maps layer names of fine-tuned blocks to their weights (lists of arrays).
    """
    import keras

    inputs = keras.Input(shape=(None, None, 3), name="image")
    tensor = keras.layers.Resizing(image_size, image_size, interpolation="bilinear", antialias=True,
                                   name="resize")(inputs)
    preprocess = keras.layers.Conv2D(3, 1, name="vgg16_preprocess", trainable=False)
    tensor = preprocess(tensor)
    tapped: dict = {}
    tensor, pairs = apply_stack(base, tensor, start_after=None, stop_at=None, trainable=False, tapped=tapped)
    _, tensor = feature_layers(tapped, head)
    normalization, dense = head_layers(head)
    outputs = dense(normalization(tensor))
    model = keras.Model(inputs, outputs, name="quasar_vgg16_classifier")
    preprocess.set_weights(preprocess_weights())
    tuned = tuned or {}
    for clone, original in pairs:
        clone.set_weights(tuned.get(original.name) or original.get_weights())
    set_head_weights(dense, head)
    return model


def with_features(model):
    """The same model answering (probabilities, pooled features): one pass for "none of these" too."""
    import keras

    return keras.Model(model.inputs[0], [model.outputs[0], feature_output(model)], name="with_features")
