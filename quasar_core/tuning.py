"""Fine-tuning: VGG16's top blocks and the head learn together, on cached boundary activations.

The frozen blocks' output (the activations entering the first unfrozen block) is cached, so an
epoch costs only the unfrozen blocks: the same maths as training the stacked model with those
layers frozen. The head starts from the learned softmax regression; Keras' Adam does the
rest, through ``model.fit`` (or TensorFlow's distribution loop for several workers), with the
progress seam's callback reporting each batch and epoch and honouring Stop.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from quasar_core.backbone import apply_stack, copy_weights
from quasar_core.config import TrainConfig
from quasar_core.distribute import fit_distributed, make_strategy
from quasar_core.head import Head, feature_layers, feature_output, head_layers, set_head_weights
from quasar_core.progress import PhaseTimer, Progress, TrainingHooks, is_cancelled, make_progress_callback

CHECKPOINT_INFO = "checkpoint.json"
# What a person reads of each fine-tuning: the trial on the photos set aside, then the model that is kept.
TRIAL_WORDS = {"hold-out": "a trial run on most of the photos, checked on the rest", "kept model": "the kept model"}
CHECKPOINT_WEIGHTS = "fine-tune.weights.h5"


@dataclass
class TunedModel:
    head: Head  # same standardisation, fine-tuned linear layer (temperature 1)
    tuned: dict[str, list[np.ndarray]]  # VGG16 layer name -> fine-tuned weights
    network: object  # the Keras model on boundary activations

    def features(self, activations: np.ndarray) -> np.ndarray:
        """The pooled features the fine-tuned model computes from boundary activations (the deployed model's
        "features" output for the same photos: the space "none of these" must compare in)."""
        import keras

        pooled = keras.Model(self.network.inputs[0], feature_output(self.network))
        return np.concatenate([np.asarray(pooled(activations[i : i + 32], training=False))
                               for i in range(0, len(activations), 32)])

    def logits(self, activations: np.ndarray) -> np.ndarray:
        probabilities = np.concatenate([np.asarray(self.network(activations[i : i + 32], training=False))
                                        for i in range(0, len(activations), 32)])
        return np.log(np.clip(probabilities, 1e-30, None))  # softmax's logits up to a per-row constant


def class_weights(targets, n_classes: int) -> dict[int, float]:
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(targets)
    weights = compute_class_weight("balanced", classes=present, y=targets)
    result = {int(c): 1.0 for c in range(n_classes)}
    result.update({int(c): float(w) for c, w in zip(present, weights)})
    return result


def tune_network(base, boundary: str, activation_shape, head: Head):
    """The unfrozen top blocks + the head on boundary activations: (model, (clone, original) pairs, dense)."""
    import keras

    inputs = keras.Input(shape=tuple(activation_shape), name="activations")
    tapped: dict = {}
    _, pairs = apply_stack(base, inputs, start_after=boundary, stop_at=None, trainable=True, tapped=tapped)
    _, tensor = feature_layers(tapped, head)
    normalization, dense = head_layers(head)
    normalization.trainable = False
    model = keras.Model(inputs, dense(normalization(tensor)), name="fine_tune")
    copy_weights(pairs)
    set_head_weights(dense, replace(head, temperature=1.0))
    return model, pairs, dense


class FineTuner:
    def __init__(self, config: TrainConfig, base, boundary: str, *, hooks: TrainingHooks, cancel=None):
        self.config, self.base, self.boundary = config, base, boundary
        self.hooks, self.cancel = hooks, cancel

    def fit(self, activations, targets, indices, *, start: Head, validation=None, checkpoint_dir=None,
            label: str = "") -> TunedModel | None:
        """Fine-tune from `start` on the photos at `indices` (all their views); None when stopped."""
        import keras

        config = self.config
        x = activations[:, indices].reshape(-1, *activations.shape[2:])
        y = np.tile(np.asarray(targets)[indices], activations.shape[0])
        validation_data = None
        if validation is not None and len(validation):
            validation_data = (activations[0, validation], np.asarray(targets)[validation])
        strategy = make_strategy(config.strategy)
        with strategy.scope():  # variables and optimizer state mirrored across replicas
            model, pairs, dense = tune_network(self.base, self.boundary, x.shape[1:], start)
            self.hooks.message(f"Fine-tuning VGG16's top {config.fine_tune_blocks} block(s) "
                               f"({TRIAL_WORDS.get(label, label)}).")
            weights = class_weights(y, len(start.bias)) if config.class_weights else None
            if config.strategy == "multi-worker":
                self._fit_multi_worker(strategy, model, x, y, validation_data, weights)
            else:
                model.compile(optimizer=keras.optimizers.Adam(config.fine_tune_learning_rate),
                              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
                callbacks = [make_progress_callback("fine-tune", self.hooks, self.cancel, label=label)]
                if checkpoint_dir is not None:
                    callbacks.append(self._checkpoint(checkpoint_dir, x.shape[1:]))
                model.fit(x, y, validation_data=validation_data, epochs=config.fine_tune_epochs,
                          batch_size=config.batch_size, class_weight=weights, shuffle=True, verbose=0,
                          callbacks=callbacks)
        if is_cancelled(self.cancel):
            return None
        kernel, bias = dense.get_weights()
        head = replace(start, kernel=kernel, bias=bias, temperature=1.0)
        return TunedModel(head, {original.name: clone.get_weights() for clone, original in pairs}, model)

    def _checkpoint(self, checkpoint_dir, activation_shape):
        """Per-epoch weights, so a run cut off mid-fine-tuning keeps its last finished epoch."""
        import keras

        path = Path(checkpoint_dir)
        path.mkdir(parents=True, exist_ok=True)
        info = {"boundary": self.boundary, "activation_shape": list(activation_shape)}
        (path / CHECKPOINT_INFO).write_text(json.dumps(info), encoding="utf-8")
        return keras.callbacks.ModelCheckpoint(str(path / CHECKPOINT_WEIGHTS), save_weights_only=True)

    def _fit_multi_worker(self, strategy, model, x, y, validation_data, weights):
        """The same fit through distribute.fit_distributed (Keras' fit does not run multi-worker)."""
        import keras

        epochs = self.config.fine_tune_epochs
        timer = PhaseTimer(epochs)
        started = [time.perf_counter()]

        def on_batch(step, steps, epoch, logs):
            self.hooks.progress(Progress("fine-tune", step, steps, epoch=epoch, total_epochs=epochs,
                                         elapsed_seconds=timer.elapsed(),
                                         eta_seconds=timer.eta(epoch - 1 + step / steps), logs=logs))

        def on_epoch(epoch, logs):
            self.hooks.epoch_end({"epoch": epoch, "phase": "fine-tune", "loss": logs.get("loss"),
                                  "accuracy": logs.get("accuracy"), "val_loss": logs.get("val_loss"),
                                  "val_accuracy": logs.get("val_accuracy"),
                                  "seconds": time.perf_counter() - started[0]})
            started[0] = time.perf_counter()

        x_val, y_val = validation_data if validation_data is not None else (None, None)
        fit_distributed(strategy, model, keras.optimizers.Adam(self.config.fine_tune_learning_rate), x, y,
                        epochs=epochs, global_batch=self.config.batch_size, seed=self.config.seed, x_val=x_val,
                        y_val=y_val, class_weight=weights, on_batch=on_batch, on_epoch=on_epoch,
                        cancelled=lambda: is_cancelled(self.cancel))


def recover_tuned(base, head: Head, checkpoint_dir) -> tuple[Head, dict[str, list[np.ndarray]]] | None:
    """(head, fine-tuned layers) of the last epoch checkpointed in `checkpoint_dir` (after a crash), or None."""
    path = Path(checkpoint_dir)
    try:
        info = json.loads((path / CHECKPOINT_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (path / CHECKPOINT_WEIGHTS).is_file():
        return None
    model, pairs, dense = tune_network(base, info["boundary"], info["activation_shape"], head)
    model.load_weights(path / CHECKPOINT_WEIGHTS)
    kernel, bias = dense.get_weights()
    return (replace(head, kernel=kernel, bias=bias),
            {original.name: clone.get_weights() for clone, original in pairs})
