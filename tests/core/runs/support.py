"""Helpers shared by the run tests (tests/core/runs/) and the tests of the modules that use runs
(jobs, predicting, the CLI): the tiny training settings and run-folder copies.

Every model here trains from random weights ("none") at 32 px on the 24 shapes of
tests/conftest.py: a feature-extraction training takes a few seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from quasar_core.config import TrainConfig


def small_config(**changes) -> TrainConfig:
    """The tiny settings every run test trains with."""
    return TrainConfig(weights="none", image_size=32, seed=0).replace(**changes)


def train_small(dataset, run_dir, base, config: TrainConfig | None = None, **kwargs):
    """A run trained with the tiny settings on the shared random VGG16 base."""
    from quasar_core.runs.pipeline import train_run

    return train_run(dataset, config or small_config(), run_dir, base_loader=lambda: base, **kwargs)


def copy_run(run, destination: Path):
    """A writable copy of a shared run folder (tests that change a run change their copy)."""
    from quasar_core.runs.folder import Run

    shutil.copytree(run.path, destination)
    return Run.open(destination)


def dead_pid() -> int:
    """The process id of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
