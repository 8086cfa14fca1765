"""Nothing learned is lost: a run cut off mid-training is rebuilt from its last saved epoch."""

import json
import threading

import numpy as np
import pytest

from quasar_core import runs
from quasar_core.config import TrainConfig
from quasar_core.errors import QuasarError
from quasar_core.progress import TrainingHooks


@pytest.mark.parametrize("mode", ["feature-extraction", "fine-tune"])
def test_a_run_cut_off_after_some_epochs_is_recovered_with_the_last_epochs_model(tmp_path, mode, monkeypatch,
                                                                                 dataset, base):
    from quasar_core.data import split_dataset

    config = TrainConfig(image_size=32, epochs=3, mode=mode, fine_tune_epochs=2, weights="none")
    run_dir = tmp_path / "run"
    saved = {}

    # The process "dies" while saving the final model: everything up to the last epoch is on disk.
    def crash(self, *args, **kwargs):
        saved["model"] = self
        raise KeyboardInterrupt

    import keras

    monkeypatch.setattr(keras.Model, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        runs.train_run(dataset, config, run_dir, base=base)
    monkeypatch.undo()

    run = runs.Run.open(run_dir)
    assert run.state == "failed" and not run.has_model
    assert len(run.history) == (5 if mode == "fine-tune" else 3)
    assert runs.recoverable(run)
    info = json.loads((run_dir / runs.CHECKPOINT_DIR / "checkpoint.json").read_text())
    assert info["phase"] == ("fine-tune" if mode == "fine-tune" else "head")

    recovered = runs.recover_run(run_dir, base=base)
    assert recovered.has_model and recovered.state == "interrupted"
    assert not (run_dir / runs.CHECKPOINT_DIR).exists()
    split = split_dataset(dataset, seed=config.seed)
    images = dataset.images(split.test, size=32)
    expected = np.asarray(saved["model"].predict(images, verbose=0))
    np.testing.assert_allclose(recovered.classifier().predict_proba(images), expected, atol=1e-5)


def test_a_finished_run_keeps_no_checkpoint_and_a_run_without_epochs_cannot_be_recovered(tmp_path, dataset,
                                                                                         base):
    run = runs.train_run(dataset, TrainConfig(image_size=32, epochs=1, weights="none"), tmp_path / "done",
                         base=base)
    assert run.has_model and not (run.path / runs.CHECKPOINT_DIR).exists()
    assert not runs.recoverable(run)

    cancel = threading.Event()
    cancel.set()  # stopped before the first epoch: nothing to recover
    stopped = runs.train_run(dataset, TrainConfig(image_size=32, epochs=1, weights="none"), tmp_path / "stop",
                             base=base, cancel=cancel, hooks=TrainingHooks())
    assert not runs.recoverable(stopped)
    with pytest.raises(QuasarError, match="no saved epoch"):
        runs.recover_run(stopped.path, base=base)
