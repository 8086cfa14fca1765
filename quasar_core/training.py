"""Transfer learning from VGG16, estimator-style: configure, `fit`, predict, save.

Why it is fast: the frozen part of VGG16 costs ~99 % of the arithmetic, so it runs once per
image (and once per augmented view); its outputs are cached and every epoch trains only
the layers above them. Fine-tuning does the same at a lower boundary: the activations
entering the first unfrozen block are cached, and only the top blocks and the head train.
The maths is that of training the whole stacked model with those layers frozen.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np

from .backbone import (
    BLOCKS,
    IMAGENET_BGR_MEAN,
    apply_stack,
    boundary_layer,
    copy_weights,
    feature_network,
    load_vgg16,
    resolve_precision,
)
from .config import TrainConfig
from .distribute import make_strategy
from .progress import PhaseTimer, Progress, TrainingHooks, is_cancelled, make_progress_callback

# Activation memory of one image in the feature pass is ~2 block1 tensors (H*W*64 float32 each);
# batches are sized to keep that under this budget, which is what bounds the pass's peak RSS.
FEATURE_PASS_BUDGET_BYTES = 192 * 1024**2
MAX_FEATURE_BATCH = 32
CHECKPOINT_INFO = "checkpoint.json"
CHECKPOINT_SUFFIX = ".weights.h5"
# Smallest feature variance the head's normalization divides by, as a share of the mean variance.
VARIANCE_FLOOR = 1e-2


def feature_batch_size(image_size: int) -> int:
    per_image = 2 * image_size * image_size * 64 * 4
    return int(max(1, min(MAX_FEATURE_BATCH, FEATURE_PASS_BUDGET_BYTES // per_image)))


def make_augmenter(config: TrainConfig):
    """Keras' random-augmentation layers as one model (applied to 0..255 RGB batches)."""
    import keras

    aug = config.augmentation
    seed = config.seed
    layers = []
    if aug.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if aug.rotation:
        layers.append(keras.layers.RandomRotation(aug.rotation, fill_mode="reflect", seed=seed + 1))
    if aug.zoom:
        layers.append(keras.layers.RandomZoom(aug.zoom, fill_mode="reflect", seed=seed + 2))
    if aug.contrast:
        layers.append(keras.layers.RandomContrast(aug.contrast, value_range=(0, 255), seed=seed + 3))
    return keras.Sequential(layers, name="augmentation") if layers else None


def run_network(network, images, *, batch_size, phase, hooks, cancel, augmenter=None, preprocess=True,
                strategy=None):
    """Apply `network` in batches to uint8 images (optionally augmented, then VGG16-preprocessed)
    or to cached activations (preprocess=False); returns float32 outputs.

    Returns None when cancelled. The network is traced once per batch shape by tf.function.
    Under a distribution strategy each batch is split across its replicas (distribute.py).
    """
    import tensorflow as tf

    from .distribute import distributed_forward, is_distributed

    @tf.function(reduce_retracing=True)
    def forward(batch):
        if augmenter is not None:
            batch = augmenter(batch, training=True)
        if preprocess:
            batch = tf.reverse(batch, axis=[-1]) - IMAGENET_BGR_MEAN
        return network(batch, training=False)

    total = len(images)
    timer = PhaseTimer(total)
    if is_distributed(strategy):
        if augmenter is not None:  # random layers keep state: augment here, shard the result
            images = np.concatenate([augmenter(np.asarray(images[i : i + batch_size], np.float32), training=True)
                                     for i in range(0, total, batch_size)])
            augmenter = None

        def report(done):
            hooks.progress(Progress(phase, done, total, elapsed_seconds=timer.elapsed(), eta_seconds=timer.eta(done)))

        return distributed_forward(strategy, forward, np.asarray(images, np.float32),
                                   global_batch=batch_size * strategy.num_replicas_in_sync, on_batch=report,
                                   cancelled=lambda: is_cancelled(cancel))
    outputs = []
    for start in range(0, total, batch_size):
        if is_cancelled(cancel):
            return None
        batch = tf.convert_to_tensor(np.asarray(images[start : start + batch_size], dtype=np.float32))
        outputs.append(forward(batch).numpy())
        done = min(total, start + batch_size)
        hooks.progress(
            Progress(phase, done, total, elapsed_seconds=timer.elapsed(), eta_seconds=timer.eta(done))
        )
    if not outputs:
        return np.zeros((0,), dtype=np.float32)
    return np.concatenate(outputs).astype(np.float32, copy=False)


class TransferClassifier:
    """An image classifier trained by transfer learning from VGG16.

    Learned state (after `fit`): `model_` (a Keras model taking raw RGB images of any size),
    `labels_`, `history_` (one dict per epoch), `cancelled_`, `timings_` (seconds per phase),
    `precision_` (of the feature pass).
    """

    def __init__(self, config: TrainConfig | None = None, *, base=None, **settings):
        self.config = (config or TrainConfig()).replace(**settings) if settings else (config or TrainConfig())
        self.base = base  # a shared, read-only VGG16 base (see backbone.load_vgg16); loaded on demand

    # --- training -------------------------------------------------------------------------
    def fit(self, dataset, split, *, hooks: TrainingHooks | None = None, cancel: threading.Event | None = None,
            checkpoint_dir=None):
        """Train on `split.train`, watching `split.val`. Returns self.

        With `checkpoint_dir`, the trained layers' weights are saved there after every epoch, so
        `recover_model` can rebuild the model if the process dies mid-training.
        """
        import keras

        config = self.config
        hooks = hooks or TrainingHooks()
        if len(split.train) == 0:
            raise ValueError("The training split is empty; there are no images to learn from.")
        # First: a multi-worker strategy must be set up before TensorFlow runs anything.
        self._strategy = make_strategy(config.strategy)
        base = self.base if self.base is not None else load_vgg16(config.weights)
        self.base = base
        keras.utils.set_random_seed(config.seed)
        self.labels_ = list(dataset.labels)
        self.history_ = []
        self.timings_ = {}
        self.cancelled_ = False
        self.precision_ = resolve_precision(config.precision)
        size = config.image_size
        n_classes = len(self.labels_)

        def record(row):
            self.history_.append(row)
            hooks.epoch_end(row)

        epoch_hooks = TrainingHooks(hooks.on_progress, record, hooks.on_message)

        train_images = dataset.images(split.train, size=size)
        val_images = dataset.images(split.val, size=size) if len(split.val) else None
        y_train = dataset.targets(split.train)
        y_val = dataset.targets(split.val) if len(split.val) else None
        class_weight = _balanced_class_weights(y_train, n_classes) if config.class_weights else None

        # The frozen part runs once per image: up to the fine-tuning boundary when the top blocks
        # will train (their inputs are then cached), else up to block5_pool.
        boundary = boundary_layer(BLOCKS - config.fine_tune_blocks) if config.fine_tunes else "block5_pool"
        started = time.perf_counter()
        a_train, y_train_views, a_val = self._cached_inputs(
            base, None, boundary, train_images, y_train, val_images, hooks=hooks, cancel=cancel
        )
        if a_train is not None and boundary != "block5_pool":
            # Phase 1 needs block5_pool features: finish the frozen stack on the cached activations.
            x_train, _, x_val = self._cached_inputs(
                base, boundary, "block5_pool", a_train, None, a_val, hooks=hooks, cancel=cancel
            )
        else:
            x_train, x_val = a_train, a_val
        self.timings_["features"] = time.perf_counter() - started
        if x_train is None:
            return self._stopped_before_training()
        x_train, x_val = _pool(x_train, config), _pool(x_val, config)

        # Phase 1: the head alone, on pooled features.
        started = time.perf_counter()
        with self._strategy.scope():  # variables and optimizer state mirrored across replicas
            head_model, head_layers = head_network(config, n_classes, x_train.shape[1:], features=x_train)
            self._start_checkpoint(checkpoint_dir, "head", x_train.shape[1:], None)
            self._fit_phase(
                head_model, config.learning_rate, config.epochs, "head", x_train, y_train_views, x_val, y_val,
                class_weight, epoch_hooks, cancel,
            )
        self.timings_["head"] = time.perf_counter() - started
        tuned_layers = {}

        # Phase 2 (fine-tune): the top blocks and the head train on the cached boundary activations.
        if config.fine_tunes and not is_cancelled(cancel):
            started = time.perf_counter()
            with self._strategy.scope():
                tune_model, pairs = tune_network(base, config, boundary, a_train.shape[1:], head_layers)
                copy_weights(pairs)
                self._start_checkpoint(checkpoint_dir, "fine-tune", x_train.shape[1:], a_train.shape[1:])
                self._fit_phase(
                    tune_model, config.fine_tune_learning_rate, config.fine_tune_epochs, "fine-tune",
                    a_train, y_train_views, a_val, y_val, class_weight, epoch_hooks, cancel,
                    epoch_offset=len(self.history_),
                )
            self.timings_["fine-tune"] = time.perf_counter() - started
            tuned_layers = {clone.name: clone for clone, _ in pairs}
        self.cancelled_ = is_cancelled(cancel)
        self.model_ = assemble_model(base, config, head_layers, n_classes, tuned_layers=tuned_layers)
        return self

    def _start_checkpoint(self, checkpoint_dir, phase, feature_shape, activation_shape):
        """Say which phase the per-epoch weight files belong to (recover_model reads it)."""
        self._checkpoint = None
        if checkpoint_dir is None:
            return
        path = Path(checkpoint_dir)
        path.mkdir(parents=True, exist_ok=True)
        info = {"phase": phase, "feature_shape": list(feature_shape),
                "activation_shape": list(activation_shape) if activation_shape else None}
        (path / CHECKPOINT_INFO).write_text(json.dumps(info), encoding="utf-8")
        self._checkpoint = path / f"{phase}{CHECKPOINT_SUFFIX}"

    def _stopped_before_training(self):
        """Cancelled during the first feature pass: nothing was learned, say so plainly."""
        self.cancelled_ = True
        self.model_ = None
        return self

    def _cached_inputs(self, base, start_after, stop_at, train_inputs, y_train, val_inputs, *, hooks, cancel):
        """Outputs of the frozen layers after `start_after` up to `stop_at`, for the training views and
        the validation inputs: (train outputs, their labels, validation outputs), or Nones if cancelled.

        From pixels (start_after None) the training images go through `augmentation.views` times
        when augmenting (view 0 unaugmented); from cached activations they go through once.
        """
        config = self.config
        network = feature_network(base, start_after=start_after, stop_at=stop_at, precision=self.precision_)
        from_pixels = start_after is None
        views = config.augmentation.views if (config.augment and from_pixels) else 1
        augmenter = make_augmenter(config) if (config.augment and from_pixels) else None
        batch = feature_batch_size(config.image_size) if from_pixels else MAX_FEATURE_BATCH
        total = len(train_inputs) * views + (0 if val_inputs is None else len(val_inputs))
        done = [0]

        def shifted(progress: Progress):  # one progress bar across all views and the validation set
            finished = done[0] + progress.step
            hooks.progress(Progress("features", finished, total, elapsed_seconds=timer.elapsed(),
                                    eta_seconds=timer.eta(finished)))

        timer = PhaseTimer(total)
        sub_hooks = TrainingHooks(on_progress=shifted)
        run = dict(batch_size=batch, phase="features", hooks=sub_hooks, cancel=cancel, preprocess=from_pixels,
                   strategy=self._strategy)
        parts = []
        for view in range(views):
            out = run_network(network, train_inputs, augmenter=augmenter if view > 0 else None, **run)
            if out is None:
                return None, None, None
            parts.append(out)
            done[0] += len(train_inputs)
        val_out = None
        if val_inputs is not None:
            val_out = run_network(network, val_inputs, **run)
            if val_out is None:
                return None, None, None
        labels = None if y_train is None else np.tile(y_train, views)
        return np.concatenate(parts), labels, val_out

    def _fit_phase(self, model, learning_rate, epochs, phase, x, y, x_val, y_val, class_weight, hooks, cancel,
                   epoch_offset=0):
        import keras

        if self.config.strategy == "multi-worker":
            return self._fit_phase_multi_worker(model, learning_rate, epochs, phase, x, y, x_val, y_val,
                                                class_weight, hooks, cancel, epoch_offset)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        callbacks = [make_progress_callback(phase, hooks, cancel, epoch_offset=epoch_offset)]
        if getattr(self, "_checkpoint", None) is not None:
            callbacks.append(keras.callbacks.ModelCheckpoint(str(self._checkpoint), save_weights_only=True))
        if self.config.early_stopping and x_val is not None:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=self.config.patience, restore_best_weights=True
                )
            )
        model.fit(
            x, y,
            validation_data=(x_val, y_val) if x_val is not None else None,
            epochs=epochs,
            batch_size=self.config.batch_size,
            class_weight=class_weight,
            shuffle=True,
            verbose=0,
            callbacks=callbacks,
        )
        if len(self.history_) - epoch_offset < epochs and not is_cancelled(cancel):
            hooks.message(
                f"Stopped {phase} early after {len(self.history_) - epoch_offset} of {epochs} epochs: "
                "the validation loss had stopped improving, so the best epoch was kept."
            )

    def _fit_phase_multi_worker(self, model, learning_rate, epochs, phase, x, y, x_val, y_val, class_weight,
                                hooks, cancel, epoch_offset):
        """The same phase through distribute.fit_distributed (Keras' fit does not run multi-worker)."""
        import keras

        from .distribute import fit_distributed

        if self.config.early_stopping:
            hooks.message("Early stopping is not available with the multi-worker strategy; all epochs run.")
        timer = PhaseTimer(epochs)
        started = [time.perf_counter()]

        def on_batch(step, steps, epoch, logs):
            hooks.progress(Progress(phase, step, steps, epoch=epoch, total_epochs=epochs,
                                    elapsed_seconds=timer.elapsed(), eta_seconds=timer.eta(epoch - 1 + step / steps),
                                    logs=logs))

        def on_epoch(epoch, logs):
            hooks.epoch_end({"epoch": epoch_offset + epoch, "phase": phase, "loss": logs.get("loss"),
                             "accuracy": logs.get("accuracy"), "val_loss": logs.get("val_loss"),
                             "val_accuracy": logs.get("val_accuracy"), "seconds": time.perf_counter() - started[0]})
            started[0] = time.perf_counter()

        optimizer = keras.optimizers.Adam(learning_rate)  # created inside the caller's strategy scope
        fit_distributed(self._strategy, model, optimizer, x, y, epochs=epochs, global_batch=self.config.batch_size,
                        seed=self.config.seed, x_val=x_val, y_val=y_val, class_weight=class_weight,
                        on_batch=on_batch, on_epoch=on_epoch, cancelled=lambda: is_cancelled(cancel))

    # --- using the model ------------------------------------------------------------------
    def predict_proba(self, images, *, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities for RGB uint8 images: an (n, H, W, 3) array or a list of arrays."""
        self._check_fitted()
        batch = resize_batch(images, self.config.image_size)
        step = batch_size or feature_batch_size(self.config.image_size)
        out = [np.asarray(self.model_(batch[i : i + step], training=False)) for i in range(0, len(batch), step)]
        return np.concatenate(out) if out else np.zeros((0, len(self.labels_)), dtype=np.float32)

    def predict(self, images) -> list[str]:
        return [self.labels_[i] for i in self.predict_proba(images).argmax(axis=1)]

    def _check_fitted(self):
        if getattr(self, "model_", None) is None:
            raise ValueError("This classifier has no trained model yet: call fit() or load a run first.")


def resize_batch(images, size: int) -> np.ndarray:
    """A float32 (n, size, size, 3) batch from uint8 RGB images of any sizes (Pillow bilinear)."""
    from PIL import Image

    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[1:3] == (size, size):
        return images.astype(np.float32, copy=False)
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    resized = [
        np.asarray(Image.fromarray(np.asarray(img, dtype=np.uint8)).resize((size, size), Image.BILINEAR))
        for img in images
    ]
    return np.stack(resized).astype(np.float32) if resized else np.zeros((0, size, size, 3), np.float32)


def build_head(config: TrainConfig, n_classes: int, *, features=None) -> list:
    """The classifier's own layers, applied after the pooled features.

    VGG16's features range over hundreds; a Normalization layer adapted to the training
    features (a fixed shift and scale, saved in the model) lets Adam start well-conditioned.
    """
    import keras

    seed = config.seed
    regularizer = keras.regularizers.L2(config.l2) if config.l2 else None
    layers = []
    if config.pooling == "flatten":
        layers.append(keras.layers.Flatten(name="flatten"))
    normalization = keras.layers.Normalization(axis=-1, name="feature_normalization")
    if features is not None:
        flat = features.reshape(len(features), -1) if config.pooling == "flatten" else features
        normalization.adapt(flat)
        # A feature that (almost) never fires in training has ~0 variance, and Keras divides by
        # max(std, 1e-7): a held-out image that fires it got logits ~1e7 times too large (confidently
        # wrong). Floor the variance at a small share of the typical one.
        variance = np.asarray(normalization.adapt_variance)
        normalization.adapt_variance.assign(np.maximum(variance, VARIANCE_FLOOR * float(variance.mean())))
        normalization.finalize_state()
    layers.append(normalization)
    if config.dropout:
        layers.append(keras.layers.Dropout(config.dropout, seed=seed, name="head_dropout"))
    if config.dense_units:
        layers.append(
            keras.layers.Dense(
                config.dense_units, activation="relu",
                kernel_initializer=keras.initializers.GlorotUniform(seed=seed), kernel_regularizer=regularizer,
                name="head_dense",
            )
        )
        if config.dropout:
            layers.append(keras.layers.Dropout(config.dropout, seed=seed + 1, name="head_dense_dropout"))
    layers.append(
        keras.layers.Dense(
            n_classes, activation="softmax",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2), kernel_regularizer=regularizer,
            name="predictions",
        )
    )
    return layers


def head_network(config: TrainConfig, n_classes: int, feature_shape, *, features=None):
    """The head as a model on cached features: (model, its layers)."""
    import keras

    head_input = keras.Input(shape=tuple(feature_shape), name="features")
    head_layers = build_head(config, n_classes, features=features)
    return keras.Model(head_input, _apply(head_layers, head_input), name="head"), head_layers


def tune_network(base, config: TrainConfig, boundary: str, activation_shape, head_layers):
    """The unfrozen top blocks + the head on cached boundary activations: (model, (clone, original) pairs)."""
    import keras

    inputs = keras.Input(shape=tuple(activation_shape), name="activations")
    tensor, pairs = apply_stack(base, inputs, start_after=boundary, stop_at=None, trainable=True)
    if config.pooling == "avg":
        tensor = keras.layers.GlobalAveragePooling2D(name="pool")(tensor)
    return keras.Model(inputs, _apply(head_layers, tensor), name="fine_tune"), pairs


def recover_model(base, config: TrainConfig, n_classes: int, checkpoint_dir):
    """The deployable model from the last epoch checkpointed in `checkpoint_dir` (after a crash)."""
    import keras

    path = Path(checkpoint_dir)
    info = json.loads((path / CHECKPOINT_INFO).read_text(encoding="utf-8"))
    head_model, head_layers = head_network(config, n_classes, info["feature_shape"])
    tuned_layers = {}
    if info["phase"] == "fine-tune":
        boundary = boundary_layer(BLOCKS - config.fine_tune_blocks)
        trained, pairs = tune_network(base, config, boundary, info["activation_shape"], head_layers)
        tuned_layers = {clone.name: clone for clone, _ in pairs}
    else:
        trained = head_model
    trained.load_weights(path / f"{info['phase']}{CHECKPOINT_SUFFIX}")
    for layer in head_layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()  # derive mean/variance from the loaded statistics
    return assemble_model(base, config, head_layers, n_classes, tuned_layers=tuned_layers)


def assemble_model(base, config: TrainConfig, head_layers, n_classes: int, *, tuned_layers=None):
    """The deployable model: raw RGB (any size) -> resize -> VGG16 preprocessing -> VGG16 -> head.

    Built only from stock Keras layers, so it loads with safe_mode=True anywhere TensorFlow runs.
    """
    import keras

    size = config.image_size
    inputs = keras.Input(shape=(None, None, 3), name="image")
    tensor = keras.layers.Resizing(size, size, interpolation="bilinear", name="resize")(inputs)
    preprocess_layer = keras.layers.Conv2D(3, 1, name="vgg16_preprocess", trainable=False)
    tensor = preprocess_layer(tensor)
    tensor, pairs = apply_stack(base, tensor, start_after=None, stop_at=None, trainable=False)
    if config.pooling == "avg":
        tensor = keras.layers.GlobalAveragePooling2D(name="pool")(tensor)
    trained_head = head_layers
    head_copies = [layer.__class__.from_config(layer.get_config()) for layer in trained_head]
    outputs = _apply(head_copies, tensor)
    model = keras.Model(inputs, outputs, name="quasar_vgg16_classifier")
    preprocess_layer.set_weights(_preprocess_weights())
    tuned_layers = tuned_layers or {}
    for clone, original in pairs:
        clone.set_weights((tuned_layers.get(original.name) or original).get_weights())
    for copy, trained in zip(head_copies, trained_head):
        copy.set_weights(trained.get_weights())
        if isinstance(copy, keras.layers.Normalization):
            copy.finalize_state()  # derive mean/variance from the copied adapt statistics
    return model


def _preprocess_weights():
    """1x1 convolution that equals vgg16.preprocess_input: swap RGB to BGR, subtract the mean."""
    kernel = np.zeros((1, 1, 3, 3), dtype=np.float32)
    for out_channel in range(3):
        kernel[0, 0, 2 - out_channel, out_channel] = 1.0
    return [kernel, -IMAGENET_BGR_MEAN.copy()]


def _apply(layers, tensor):
    for layer in layers:
        tensor = layer(tensor)
    return tensor


def _pool(features, config: TrainConfig):
    """Global average pooling is parameter-free, so the cache can hold pooled features (512 floats)."""
    if features is not None and config.pooling == "avg":
        return features.mean(axis=(1, 2))
    return features


def _balanced_class_weights(y, n_classes):
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    weights = compute_class_weight("balanced", classes=present, y=y)
    result = {int(c): 1.0 for c in range(n_classes)}
    result.update({int(c): float(w) for c, w in zip(present, weights)})
    return result
