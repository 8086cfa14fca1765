"""tf.distribute strategies give the single-device result (tests need no extra hardware).

Each case runs in fresh processes: logical CPU devices and multi-worker collectives must be
configured before TensorFlow starts, once per process.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from quasar_core.distribute import is_chief

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data" / "fashion"
TIMEOUT = 240

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from quasar_core.config import TrainConfig
    from quasar_core.data import load_folder, split_dataset
    from quasar_core.training import TransferClassifier

    dataset = load_folder(sys.argv[1])
    split = split_dataset(dataset, seed=0)
    out = {}
    for strategy in ("default", "mirrored"):
        config = TrainConfig(image_size=32, epochs=3, weights="none", dropout=0.0, precision="float32",
                             mode="fine-tune", fine_tune_epochs=1, strategy=strategy)
        classifier = TransferClassifier(config).fit(dataset, split)
        out[strategy] = {"replicas": classifier._strategy.num_replicas_in_sync,
                         "loss": [row["loss"] for row in classifier.history_],
                         "probabilities": classifier.predict_proba(dataset.images(split.test, size=32)).tolist()}
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """3 classes x 10 images of the bundled sample: enough to train, quick to push through VGG16."""
    import shutil

    root = tmp_path_factory.mktemp("small")
    for class_dir in sorted(SAMPLE.iterdir())[:3]:
        (root / class_dir.name).mkdir()
        for image in sorted(class_dir.glob("*.png"))[:10]:
            shutil.copy(image, root / class_dir.name / image.name)
    return root


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}


def _result(stdout: str) -> dict:
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_mirrored_over_two_cpu_devices_matches_the_default_strategy(tmp_path, small_data):
    done = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(small_data)], capture_output=True, text=True,
                          env=_env(), timeout=TIMEOUT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = _result(done.stdout)
    assert result["default"]["replicas"] == 1
    assert result["mirrored"]["replicas"] == 2
    # Without dropout the maths is the same; only summation order differs between replicas.
    np.testing.assert_allclose(result["mirrored"]["loss"], result["default"]["loss"], rtol=1e-4)
    np.testing.assert_allclose(result["mirrored"]["probabilities"], result["default"]["probabilities"], atol=1e-4)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_on_two_local_processes_writes_the_chiefs_run(tmp_path, small_data):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        env = {**_env(), "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        command = [sys.executable, "-m", "quasar_core", "train", str(small_data), "--out", str(tmp_path / f"run{index}"),
                   "--epochs", "2", "--image-size", "32", "--weights", "none", "--precision", "float32",
                   "--strategy", "multi-worker"]
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env=env, cwd=tmp_path))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=TIMEOUT))
    finally:
        for process in processes:
            process.kill()
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    assert (tmp_path / "run0" / "model.keras").is_file()
    assert not (tmp_path / "run1").exists()  # only the chief writes
    assert "chief" in outputs[1][0]

    # The chief's run folder loads and predicts like any run, and both workers learned the same model.
    from quasar_core.runs import Run

    run = Run.open(tmp_path / "run0")
    assert run.state == "done" and len(run.history) == 2
    chief_accuracy = run.metrics.accuracy
    assert f"({chief_accuracy:.1%})" in outputs[0][0]
    predicted = run.classifier().predict(np.full((1, 28, 28, 3), 200, dtype=np.uint8))
    assert predicted[0] in run.labels


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
