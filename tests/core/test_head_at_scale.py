"""The head on many photos (quasar_core.head_at_scale): the same Head as scikit-learn's path, from features read a
chunk at a time (an array or a memory-mapped file), in memory that does not grow with the rows; fit_head hands
over above SCALE_ROWS; Head.logits works a chunk at a time on many rows and gives the same numbers.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from quasar_core import head, head_at_scale
from quasar_core.head import Head, fit_head
from quasar_core.head_at_scale import fit_head_at_scale


def pooled(n: int, d: int, classes: int, *, seed: int = 0, absent: int | None = None):
    """Features like pooled activations (>= 0, a class-dependent pattern, noise) and their classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    if absent is not None:
        y[y == absent] = (absent + 1) % classes
    centres = rng.normal(0, 1, (classes, d))
    return (np.maximum(centres[y] + rng.normal(0, 2.0, (n, d)), 0) ** 2).astype(np.float32), y


@pytest.mark.parametrize("classes, class_weights, absent", [(4, True, None), (2, True, None), (5, False, 2)])
@pytest.mark.parametrize("strength", [0.003, 0.3])
def test_the_same_head_as_scikit_learns_path(classes, class_weights, absent, strength):
    x, y = pooled(2000, 40, classes, absent=absent)
    small = fit_head(x, y, n_classes=classes, strength=strength, class_weights=class_weights)
    large = fit_head_at_scale(x, y, n_classes=classes, strength=strength, class_weights=class_weights, chunk=300)
    assert isinstance(large, Head) and large.kernel.shape == small.kernel.shape and large.kernel.dtype == np.float32
    np.testing.assert_allclose(large.mean, small.mean, rtol=1e-4)
    np.testing.assert_allclose(large.scale, small.scale, rtol=1e-4)
    np.testing.assert_allclose(large.probabilities(x), small.probabilities(x), atol=2e-4)
    assert (large.logits(x).argmax(1) == small.logits(x).argmax(1)).mean() > 0.999
    if absent is not None:
        assert large.bias[absent] == small.bias[absent] == -1e4
    if classes == 2:  # scikit-learn's one logit split between both classes, as fit_head does
        np.testing.assert_allclose(large.kernel[:, 0], -large.kernel[:, 1])


def test_rows_of_a_memory_mapped_file_a_chunk_at_a_time(tmp_path):
    x, y = pooled(20_000, 128, 6, seed=1)
    path = tmp_path / "features.f32"
    x.tofile(path)
    on_disk = np.memmap(path, dtype=np.float32, mode="r", shape=x.shape)
    rows = np.arange(0, len(x), 2)  # a fold's learning rows, never copied out as a whole

    tracemalloc.start()
    fitted = fit_head_at_scale(on_disk, y[rows], rows=rows, n_classes=6, strength=0.1, chunk=1024)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    learning_rows = len(rows) * 128 * 4
    assert peak < 0.5 * learning_rows  # a chunk and (d x classes) arrays: not a copy of the rows
    reference = fit_head(x[rows], y[rows], n_classes=6, strength=0.1)
    np.testing.assert_allclose(fitted.probabilities(x[:500]), reference.probabilities(x[:500]), atol=1e-3)


def test_fit_head_hands_over_above_the_stated_size(monkeypatch):
    assert head_at_scale.SCALE_ROWS == 50_000
    x, y = pooled(900, 24, 3)
    calls = []
    original = head_at_scale.fit_head_at_scale
    monkeypatch.setattr(head_at_scale, "fit_head_at_scale",
                        lambda *a, **k: calls.append(len(a[0])) or original(*a, **k))
    fit_head(x, y, n_classes=3, strength=0.1)
    assert calls == []  # below SCALE_ROWS: scikit-learn, as before
    monkeypatch.setattr(head_at_scale, "SCALE_ROWS", 500)
    fit_head(x, y, n_classes=3, strength=0.1)
    assert calls == [900]


def test_logits_of_many_rows_a_chunk_at_a_time(monkeypatch):
    x, y = pooled(1000, 24, 3)
    fitted = fit_head(x, y, n_classes=3, strength=0.1)
    whole = fitted.logits(x)
    monkeypatch.setattr(head, "LOGITS_CHUNK", 128)
    np.testing.assert_array_equal(fitted.logits(x), whole)
