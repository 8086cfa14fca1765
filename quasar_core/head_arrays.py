"""The head as arrays: the square-rooted, standardised softmax regression a trained run keeps (``Head``), and the
numbers every way of fitting one shares. No scikit-learn, no Keras: head.py fits and assembles heads,
head_at_scale.py fits them on many photos; both build on this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quasar_core.backbone import FEATURE_LAYERS

# Candidate values of LogisticRegression's C (inverse regularisation), weakest last.
STRENGTHS = (0.003, 0.01, 0.03, 0.1, 0.3)
# Smallest feature variance divided by, as a share of the mean variance: a feature that (almost)
# never fires in training would otherwise blow up a held-out photo that fires it.
VARIANCE_FLOOR = 1e-2
MAX_ITER = 500
LEGACY_LAYERS = ("block5_pool",)  # runs saved before the richer features
# Added under the square root: its slope at 0 stays finite (a channel that never fires while fine-tuning).
ROOT_EPSILON = np.float32(1e-6)
LOGITS_CHUNK = 16384  # rows whose logits are computed at once (head_at_scale: memory that does not grow with photos)


def rooted(features, root: bool = True) -> np.ndarray:
    """The head's view of pooled features: their square root (they are >= 0 after ReLU and max pooling)."""
    x = np.asarray(features, dtype=np.float32)
    return np.sqrt(np.maximum(x, 0) + ROOT_EPSILON) if root else x


@dataclass
class Head:
    """Square root, standardise, then a linear layer; probabilities are softmax(logits / temperature)."""

    mean: np.ndarray  # (d,) of the rooted features
    scale: np.ndarray  # (d,) standard deviation, floored
    kernel: np.ndarray  # (d, classes)
    bias: np.ndarray  # (classes,)
    temperature: float = 1.0
    layers: tuple[str, ...] = FEATURE_LAYERS  # whose averages, side by side, are the features
    root: bool = True

    def logits(self, features: np.ndarray) -> np.ndarray:
        if len(features) > LOGITS_CHUNK:  # many photos: a chunk's copies at a time, not the whole features' (x3)
            return np.concatenate([self.logits(features[start : start + LOGITS_CHUNK])
                                   for start in range(0, len(features), LOGITS_CHUNK)])
        x = (rooted(features, self.root) - self.mean) / self.scale
        return x @ self.kernel + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.logits(features) / self.temperature)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale, "kernel": self.kernel, "bias": self.bias,
                "temperature": np.float32(self.temperature), "layers": np.array(self.layers),
                "root": np.bool_(self.root)}

    @classmethod
    def from_arrays(cls, arrays) -> "Head":
        keys = set(arrays.keys()) if hasattr(arrays, "keys") else set(arrays)
        legacy = "layers" not in keys  # saved before the richer features
        return cls(*(np.asarray(arrays[k], dtype=np.float32) for k in ("mean", "scale", "kernel", "bias")),
                   temperature=float(arrays["temperature"]),
                   layers=LEGACY_LAYERS if legacy else tuple(str(name) for name in np.asarray(arrays["layers"])),
                   root=False if legacy else bool(arrays["root"]))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = shifted - shifted.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
