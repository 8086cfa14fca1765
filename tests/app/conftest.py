"""Fixtures of the dashboard's AppTest tests; the helpers they share are in support.py.

Every test gets its own runs folder (QUASAR_RUNS_DIR). Training tests use the ImageNet
weights file named by QUASAR_VGG16_WEIGHTS, falling back to the shared copy next to the
repository, and train from random weights ("none") where neither exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.app.support import SHARED_WEIGHTS


@pytest.fixture(autouse=True)
def isolated_runs(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "runs"
    monkeypatch.setenv("QUASAR_RUNS_DIR", str(root))
    if not os.environ.get("QUASAR_VGG16_WEIGHTS") and SHARED_WEIGHTS.is_file():
        monkeypatch.setenv("QUASAR_VGG16_WEIGHTS", str(SHARED_WEIGHTS))
    return root


@pytest.fixture(scope="session")
def sample_run_template(tmp_path_factory) -> Path:
    """A real run trained on the sample dataset (32 px), read-only: copy it with `copy_run`."""
    from quasar_core import sample
    from quasar_core.config import TrainConfig
    from quasar_core.runs.pipeline import train_run
    from ui import resources

    weights = os.environ.get("QUASAR_VGG16_WEIGHTS") or (str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_file() else "")
    with pytest.MonkeyPatch.context() as patch:
        if weights:
            patch.setenv("QUASAR_VGG16_WEIGHTS", weights)
        choice = "imagenet" if weights else "none"
        config = TrainConfig(image_size=32, weights=choice, seed=0)
        folder = tmp_path_factory.mktemp("sample-run") / "20260101-120000-5a5a5a5a"
        train_run(sample.load_sample(), config, folder, base_loader=resources.base_loader(choice))  # the pages' base
    return folder
