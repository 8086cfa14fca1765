"""Training beyond one device through TensorFlow's own tf.distribute (no home-made parallelism).

- "default": one device, TensorFlow's default strategy.
- "mirrored": MirroredStrategy over this machine's GPUs, or its CPU devices when it has none.
- "multi-worker": MultiWorkerMirroredStrategy over the cluster in the standard TF_CONFIG variable;
  the chief (or worker 0) writes the run folder.

Models are built and compiled inside the strategy's scope; Keras splits each global batch
across replicas. The feature pass is sharded the same way: every replica runs VGG16 on its
slice of each global batch and the outputs are gathered back in order.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .errors import QuasarError


_STRATEGIES: dict = {}


def make_strategy(name: str = "default"):
    """The process's strategy of that kind, created once: collective ops are keyed per strategy
    instance, and a second MirroredStrategy reusing the first one's keys with other shapes fails."""
    if name not in _STRATEGIES:
        _STRATEGIES[name] = _new_strategy(name)
    return _STRATEGIES[name]


def _new_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG", "").strip():
            raise QuasarError(
                "The multi-worker strategy needs the TF_CONFIG environment variable describing the cluster "
                "(see the README's 'Bigger data' section)."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be 'default', 'mirrored' or 'multi-worker', got {name!r}.")


def is_distributed(strategy) -> bool:
    import tensorflow as tf

    return strategy is not None and strategy is not tf.distribute.get_strategy()


def is_chief() -> bool:
    """True for the process that writes results: the chief, else worker 0, else a lone process."""
    try:
        config = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except ValueError:
        raise QuasarError("TF_CONFIG is not valid JSON.") from None
    task = config.get("task") or {}
    cluster = config.get("cluster") or {}
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def distributed_forward(strategy, forward, inputs: np.ndarray, *, global_batch: int, on_batch=None,
                        cancelled=None) -> np.ndarray | None:
    """forward(batch) over `inputs`, each global batch split across the strategy's replicas.

    Every element carries its index, so results are put back in input order whatever the
    sharding. Inputs are padded to whole global batches (every worker must take the same
    number of steps) and the padding is dropped. Returns None when `cancelled()` says so.
    """
    import tensorflow as tf

    total = len(inputs)
    replicas = strategy.num_replicas_in_sync
    global_batch = max(global_batch, replicas) // replicas * replicas
    padded_total = -(-total // global_batch) * global_batch
    indices = np.arange(padded_total, dtype=np.int64)
    padding = np.repeat(inputs[-1:], padded_total - total, axis=0) if padded_total > total else inputs[:0]
    data = tf.data.Dataset.from_tensor_slices((indices, np.concatenate([inputs, padding])))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = data.batch(global_batch).with_options(options)

    @tf.function
    def step(batch_indices, batch):
        def replica_fn(i, x):
            return i, forward(x)

        i, out = strategy.run(replica_fn, args=(batch_indices, batch))
        return strategy.gather(i, axis=0), strategy.gather(out, axis=0)

    outputs = None
    done = 0
    for batch_indices, batch in strategy.experimental_distribute_dataset(dataset):
        if cancelled is not None and cancelled():
            return None
        got_indices, got = step(batch_indices, batch)
        got_indices, got = got_indices.numpy(), got.numpy()
        if outputs is None:
            outputs = np.zeros((padded_total,) + got.shape[1:], dtype=np.float32)
        outputs[got_indices] = got
        done += len(got_indices)
        if on_batch is not None:
            on_batch(min(total, done))
    return np.zeros((0,), np.float32) if outputs is None else outputs[:total]


def fit_distributed(strategy, model, optimizer, x, y, *, epochs: int, global_batch: int, seed: int,
                    x_val=None, y_val=None, class_weight=None, on_batch=None, on_epoch=None, cancelled=None):
    """Train `model` (built in strategy.scope()) on arrays with a tf.distribute training loop.

    Keras 3's model.fit does not run under MultiWorkerMirroredStrategy (keras-team/keras#20585),
    so this is the loop the TensorFlow guide describes: each replica computes the loss of its
    slice scaled by the global batch size, and the optimizer all-reduces the gradients. The
    last batch is padded with zero-weight copies so every worker takes the same steps.
    on_batch(step, steps, epoch, logs) and on_epoch(epoch, logs) report progress.
    """
    import keras
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync
    global_batch = max(global_batch, replicas) // replicas * replicas
    n = len(x)
    steps = -(-n // global_batch)
    weights = np.ones(n, np.float32) if not class_weight else np.array([class_weight[int(c)] for c in y], np.float32)
    pad = steps * global_batch - n

    @tf.function
    def train_step(batch):
        def replica_step(xb, yb, wb):
            with tf.GradientTape() as tape:
                probabilities = model(xb, training=True)
                per_example = keras.losses.sparse_categorical_crossentropy(yb, probabilities) * wb
                loss = tf.reduce_sum(per_example) / global_batch
                if model.losses:
                    loss += tf.add_n(model.losses) / replicas
            gradients = tape.gradient(loss, model.trainable_variables)
            # Keras' optimizer all-reduces (sums) the replicas' gradients inside apply_gradients.
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            real = tf.cast(wb > 0, tf.float32)
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probabilities, axis=1), yb), tf.float32) * real)
            return loss, correct, tf.reduce_sum(real)

        loss, correct, count = strategy.run(replica_step, args=batch)
        reduce = tf.distribute.ReduceOp.SUM
        return (strategy.reduce(reduce, loss, axis=None), strategy.reduce(reduce, correct, axis=None),
                strategy.reduce(reduce, count, axis=None))

    def predict(inputs):
        return distributed_forward(strategy, lambda batch: model(batch, training=False), inputs,
                                   global_batch=global_batch)

    rng = np.random.default_rng(seed)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    for epoch in range(epochs):
        order = rng.permutation(n)  # same seed on every worker: the same order everywhere
        order = np.concatenate([order, order[:pad]]) if pad else order
        batch_weights = weights[order].copy()
        if pad:
            batch_weights[n:] = 0.0
        data = tf.data.Dataset.from_tensor_slices((x[order], y[order].astype(np.int64), batch_weights))
        dataset = strategy.experimental_distribute_dataset(data.batch(global_batch).with_options(options))
        total_loss = total_correct = total_count = 0.0
        for step, batch in enumerate(dataset):
            if cancelled is not None and cancelled():
                return
            loss, correct, count = (float(v) for v in train_step(batch))
            total_loss += loss
            total_correct += correct
            total_count += count
            logs = {"loss": total_loss / (step + 1), "accuracy": total_correct / max(total_count, 1.0)}
            if on_batch is not None:
                on_batch(step + 1, steps, epoch + 1, logs)
        if x_val is not None and len(x_val):
            probabilities = predict(x_val)
            logs["val_loss"] = float(np.mean(keras.losses.sparse_categorical_crossentropy(y_val, probabilities)))
            logs["val_accuracy"] = float((probabilities.argmax(axis=1) == y_val).mean())
        if on_epoch is not None:
            on_epoch(epoch + 1, logs)
