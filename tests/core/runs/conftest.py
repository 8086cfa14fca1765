"""Set-up shared by the tests of quasar_core.runs: one tiny run trained once per session, read-only.

Fixtures of tests/conftest.py used here: `dataset` (the 24 shapes), `base` (VGG16 with random
weights), `shapes`.
"""

from __future__ import annotations

import pytest

from tests.core.runs.support import small_config


@pytest.fixture(scope="session")
def base_loader(base):
    """What the engine calls for the shared VGG16 base."""
    return lambda: base


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory):
    """One on-disk feature cache for the run tests: after the first training, the photos' features are hits."""
    from quasar_core.features.cache import FeatureCache

    return FeatureCache(tmp_path_factory.mktemp("features"), max_bytes=256 * 1024**2)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, dataset, base_loader, feature_cache):
    """A finished feature-extraction run of the 24 shapes, shared by read-only tests: copy it to change it."""
    from quasar_core.runs.pipeline import train_run

    return train_run(dataset, small_config(), tmp_path_factory.mktemp("tiny-run") / "run", base_loader=base_loader,
                     cache=feature_cache)
