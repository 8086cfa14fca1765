"""Set-up shared by the tests of quasar_core.data (one test file per module of the package)."""

from __future__ import annotations

import pytest

LIMIT_VARIABLES = ("QUASAR_MAX_UPLOAD_MB", "QUASAR_MAX_IMAGES", "QUASAR_MAX_IMAGE_PIXELS", "QUASAR_MAX_EXTRACTED_MB")


@pytest.fixture(autouse=True)
def default_limits(monkeypatch):
    """Loaders read the QUASAR_* limits from the environment; tests start from the defaults."""
    for var in LIMIT_VARIABLES:
        monkeypatch.delenv(var, raising=False)
