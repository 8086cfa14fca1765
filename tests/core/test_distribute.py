"""tf.distribute for fine-tuning: strategies are made once per process, the hand-written loop for several
workers is Keras' maths, and mirrored and multi-worker training give the single-device result
(no extra hardware: logical CPU devices and local worker processes).

Cases with several devices or workers run in fresh processes: logical CPU devices and multi-worker
collectives must be configured before TensorFlow starts, once per process. The feature pass is not
distributed any more (it is cached per photo); only fine-tuning goes through these strategies.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from quasar_core import distribute
from quasar_core.distribute import fit_distributed, is_chief, is_distributed, make_strategy
from quasar_core.errors import QuasarError

TIMEOUT = 300

# A tiny fine-tuning problem every process builds the same way: block5 on random block4_pool activations.
PROBLEM = textwrap.dedent("""
    import json, os, sys
    import numpy as np

    def problem():
        from quasar_core.backbone import load_vgg16
        from quasar_core.head import fit_head
        rng = np.random.default_rng(0)
        x = np.abs(rng.normal(0, 1, (1, 12, 2, 2, 512))).astype(np.float32)
        y = np.arange(12) % 3
        x[0, :, :, :, :8] += y[:, None, None, None] * 2.0
        pooled = x[0].mean(axis=(1, 2))  # block4_pool's averages; block5's stand-in: the same (only shapes matter)
        start = fit_head(np.concatenate([pooled, pooled], axis=1), y, n_classes=3, strength=0.1)
        return load_vgg16("none"), x, y, start

    def tune(strategy, base, x, y, start):
        import keras
        from quasar_core.config import TrainConfig
        from quasar_core.progress import TrainingHooks
        from quasar_core.tuning import FineTuner
        rows = []
        # 1e-4: the tiny problem learns smoothly (first epoch's loss 0.21). At 1e-3 it overshot (1.33), and from there
        # the replicas' other summation order moved the next epoch's loss by 4 % on an AVX2-only CPU.
        config = TrainConfig(weights="none", image_size=32, mode="fine-tune", fine_tune_epochs=2, batch_size=4,
                             fine_tune_learning_rate=1e-4, class_weights=False, strategy=strategy)
        keras.utils.set_random_seed(0)
        tuned = FineTuner(config, base, "block4_pool", hooks=TrainingHooks(on_epoch_end=rows.append)).fit(
            x, y, np.arange(12), start=start, validation=np.arange(4))
        return {"loss": [r["loss"] for r in rows], "val_accuracy": [r["val_accuracy"] for r in rows],
                "probabilities": np.asarray(tuned.network(x[0])).tolist(),
                "kernel": tuned.tuned["block5_conv3"][0].ravel()[:64].tolist()}
""")

MIRRORED_SCRIPT = PROBLEM + textwrap.dedent("""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from quasar_core.distribute import make_strategy
    base, x, y, start = problem()
    out = {name: {**tune(name, base, x, y, start), "replicas": make_strategy(name).num_replicas_in_sync}
           for name in ("default", "mirrored")}
    print("RESULT " + json.dumps(out))
""")

WORKER_SCRIPT = PROBLEM + textwrap.dedent("""
    from quasar_core.distribute import fit_distributed, is_chief, make_strategy
    strategy = make_strategy("multi-worker")  # first: collectives are configured at start-up
    import keras

    def dense_fit(chosen):
        keras.utils.set_random_seed(0)
        with chosen.scope():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
            optimizer = keras.optimizers.SGD(0.5)
        x = np.random.default_rng(1).random((22, 4)).astype(np.float32)
        y = (x[:, 0] * 3).astype(np.int64)
        fit_distributed(chosen, model, optimizer, x, y, epochs=2, global_batch=8, seed=0)
        return [w.tolist() for w in model.get_weights()]

    base, x, y, start = problem()
    out = {"chief": is_chief(), "replicas": strategy.num_replicas_in_sync,
           "tuned": tune("multi-worker", base, x, y, start),
           "dense_multi_worker": dense_fit(strategy), "dense_default": dense_fit(make_strategy("default"))}
    print("RESULT " + json.dumps(out), flush=True)
    os._exit(0)  # TensorFlow's multi-worker shutdown waits about a minute for its peers: the results are out
""")


def _result(stdout: str) -> dict:
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def processes(shapes, tmp_path_factory):
    """The mirrored process and the two workers, started together (they mostly wait for TensorFlow)."""
    folder = tmp_path_factory.mktemp("distribute")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    started = {"mirrored": subprocess.Popen([sys.executable, "-c", MIRRORED_SCRIPT], stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True, env=shapes.env(), cwd=folder)}
    for index in range(2):
        env = shapes.env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        started[f"worker{index}"] = subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT], stdout=subprocess.PIPE,
                                                     stderr=subprocess.PIPE, text=True, env=env, cwd=folder)
    finished = {}
    try:
        for name, process in started.items():
            stdout, stderr = process.communicate(timeout=TIMEOUT)
            finished[name] = (process.returncode, stdout, stderr)
    finally:
        for process in started.values():
            process.kill()
    return finished


def result_of(processes, name):
    returncode, stdout, stderr = processes[name]
    assert returncode == 0, stderr[-3000:]
    return _result(stdout)


def test_mirrored_over_two_cpu_devices_matches_the_default_strategy(processes):
    result = result_of(processes, "mirrored")
    assert result["default"]["replicas"] == 1 and result["mirrored"]["replicas"] == 2
    # The same maths; only the summation order differs between replicas. (4 hold-out photos: Keras under
    # MirroredStrategy fails on a batch that does not split evenly across the replicas, e.g. 3 photos.)
    np.testing.assert_allclose(result["mirrored"]["loss"], result["default"]["loss"], rtol=1e-3)
    assert result["mirrored"]["val_accuracy"] == result["default"]["val_accuracy"]
    np.testing.assert_allclose(result["mirrored"]["probabilities"], result["default"]["probabilities"], atol=1e-3)
    np.testing.assert_allclose(result["mirrored"]["kernel"], result["default"]["kernel"], atol=1e-5)
    assert len(result["default"]["loss"]) == 2


def test_two_local_workers_learn_the_single_process_model(processes):
    workers = [result_of(processes, f"worker{index}") for index in range(2)]
    assert [worker["chief"] for worker in workers] == [True, False]  # worker 0 writes the run
    assert all(worker["replicas"] == 2 for worker in workers)
    for worker in workers:  # the hand-written loop over 2 workers = the same loop on one device
        for got, expected in zip(worker["dense_multi_worker"], worker["dense_default"]):
            np.testing.assert_allclose(got, expected, atol=1e-5)
    first, second = (worker["tuned"] for worker in workers)  # fine-tuning through FineTuner: the same everywhere
    np.testing.assert_allclose(first["kernel"], second["kernel"], atol=1e-6)
    np.testing.assert_allclose(first["probabilities"], second["probabilities"], atol=1e-6)
    assert len(first["loss"]) == 2 and all(0 <= v <= 1 for v in first["val_accuracy"])


# --------------------------------------------------------------------------- in this process


def test_strategies_are_made_once_per_process_and_checked():
    assert make_strategy("default") is make_strategy("default")
    assert not is_distributed(make_strategy("default")) and not is_distributed(None)
    with pytest.raises(ValueError, match="'tpu'"):
        make_strategy("tpu")
    assert "tpu" not in distribute._STRATEGIES


def test_multi_worker_without_tf_config_says_what_is_missing(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(distribute, "_STRATEGIES", {})
    with pytest.raises(QuasarError, match="TF_CONFIG"):
        make_strategy("multi-worker")


def test_the_distributed_loop_is_keras_fit_on_the_same_batches():
    """fit_distributed on one device: each global batch's loss is Keras' mean, the padded tail weighs 0."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.random((20, 4)).astype(np.float32)
    y = (x[:, 0] * 3).astype(np.int64)

    def model():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])

    weights = {0: 1.0, 1: 2.0, 2: 0.5}
    distributed = model()
    batches, epochs = [], []
    fit_distributed(make_strategy("default"), distributed, keras.optimizers.SGD(0.3), x, y, epochs=2, global_batch=8,
                    seed=5, x_val=x[:6], y_val=y[:6], class_weight=weights,
                    on_batch=lambda step, steps, epoch, logs: batches.append((step, steps, epoch)),
                    on_epoch=lambda epoch, logs: epochs.append((epoch, dict(logs))))
    assert batches == [(s, 3, e) for e in (1, 2) for s in (1, 2, 3)]
    assert [epoch for epoch, _ in epochs] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epochs[0][1])

    reference = model()
    reference.compile(optimizer=keras.optimizers.SGD(0.3), loss="sparse_categorical_crossentropy")
    order_rng = np.random.default_rng(5)
    for _ in range(2):
        order = order_rng.permutation(20)
        order = np.concatenate([order, order[:4]])  # 3 batches of 8: the last 4 are padding
        sample_weight = np.array([weights[int(c)] for c in y[order]], np.float32)
        sample_weight[20:] = 0.0
        reference.fit(x[order], y[order], sample_weight=sample_weight, batch_size=8, shuffle=False, verbose=0)
    for got, expected in zip(distributed.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    probabilities = np.asarray(distributed(x[:6]))
    assert epochs[-1][1]["val_accuracy"] == pytest.approx((probabilities.argmax(1) == y[:6]).mean())


def test_the_distributed_loop_stops_when_cancelled():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    before = [w.copy() for w in model.get_weights()]
    batches = []
    fit_distributed(make_strategy("default"), model, keras.optimizers.SGD(0.1), np.ones((16, 4), np.float32),
                    np.zeros(16, np.int64), epochs=3, global_batch=4, seed=0,
                    on_batch=lambda *args: batches.append(args), cancelled=lambda: len(batches) >= 2)
    assert len(batches) == 2
    assert not np.allclose(model.get_weights()[0], before[0])


@pytest.mark.parametrize("tf_config, chief", [
    ("", True),
    (json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}), True),
    (json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}), False),
    (json.dumps({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}), False),
    (json.dumps({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}), True),
])
def test_is_chief_reads_tf_config(monkeypatch, tf_config, chief):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    assert is_chief() is chief


def test_tf_config_that_is_not_json_is_refused(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{cluster")
    with pytest.raises(QuasarError, match="TF_CONFIG"):
        is_chief()
