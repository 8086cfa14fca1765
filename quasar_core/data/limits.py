"""Resource limits on photos and uploads, enforced before any pixel is decoded, and a rejected file's reason."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from quasar_core.errors import QuasarError

MB = 1024**2


class ImageRejected(QuasarError):
    """One file cannot be used as a training image; ``reason`` says why and what to do."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """Resource limits, all enforced before any pixel is decoded."""

    max_upload_bytes: int = 200 * MB
    max_extracted_bytes: int = 1024**3
    max_images: int = 3000
    max_image_pixels: int = 40_000_000
    min_image_side: int = 16
    min_images_per_class: int = 5

    def __post_init__(self):
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Limits.{name} must be a whole number of at least 1. Received: {name}={value!r}")

    @classmethod
    def from_env(cls, **overrides) -> "Limits":
        """Defaults overridden by QUASAR_MAX_UPLOAD_MB, QUASAR_MAX_IMAGES, QUASAR_MAX_IMAGE_PIXELS and
        QUASAR_MAX_EXTRACTED_MB when they are set, then by `overrides` (e.g. the CLI's --max-images)."""
        values = {}
        for var, field_name, scale in (
            ("QUASAR_MAX_UPLOAD_MB", "max_upload_bytes", MB),
            ("QUASAR_MAX_EXTRACTED_MB", "max_extracted_bytes", MB),
            ("QUASAR_MAX_IMAGES", "max_images", None),
            ("QUASAR_MAX_IMAGE_PIXELS", "max_image_pixels", None),
        ):
            raw = os.environ.get(var)
            if raw is not None and raw.strip():
                values[field_name] = _parse_env_number(var, raw, scale)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _parse_env_number(var: str, raw: str, scale: int | None) -> int:
    text = raw.strip().replace("_", "")
    try:
        # Megabytes may be fractional ("0.5"); counts must be whole numbers.
        number = float(text) if scale else int(text)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number <= 0:
        kind = "a number of megabytes above 0" if scale else "a whole number above 0"
        raise ValueError(f"{var}={raw!r} is not valid: expected {kind}.")
    value = int(number * scale) if scale else int(number)
    if value < 1:
        raise ValueError(f"{var}={raw!r} is not valid: it is less than one byte.")
    return value
