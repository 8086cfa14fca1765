"""The confident band: the unlabelled photos whose pre-labels are sure enough to accept in bulk, and how often
those are expected to be wrong.

How (measured in bench/bench_label_assist.py; see bench/README.md):

1. **Neighbours agree.** A photo's probabilities are averaged with those of its nearest unlabelled photos
   (cosine distance on square-rooted, unit-length features; up to SMOOTHING of them, fewer in a small pool).
   Photos that look alike usually share a class, so a pre-label its look-alikes agree with is right more
   often: on flowers-full after one round this lifts the top 40 %'s pre-labels from about 95.5 to 98 % right.
2. **Recalibrated out of fold.** The same averaging is done for each labelled photo (tested ones only: the
   photos labelled before label assist), with the probabilities of a model that never saw it (its fold's);
   a temperature fitted on those makes the averaged probabilities say how often they are right.
3. **The band** is the largest set of familiar photos, surest first, whose expected share of mistakes (the mean
   of one minus each photo's recalibrated confidence) stays at most 1 - right (3 % by default): that mean is
   the rate stated to the person ("about 3 in 100 of these may be wrong").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SMOOTHING = 20  # nearest unlabelled photos averaged (bench: 10, 15, 20 compared; 20 covers the most)
PHOTOS_PER_NEIGHBOUR = 50  # a pool of m photos averages over at most m / 50 (a small pool: little or none)
_CHUNK = 512
_BLOCK = 1024


@dataclass(frozen=True)
class BandRule:
    """Where the confident band starts and how often its pre-labels are expected to be wrong."""

    threshold: float  # the (recalibrated) confidence of the band's least sure photo
    stated_error: float  # the share of the band's pre-labels expected to be wrong
    checked_on: int  # labelled photos, answered out of fold, at or above the threshold
    wrong_there: int  # of which the model got wrong

    def words(self) -> str:
        """"about 2 in 100 of these may be wrong" (never "0 in 100": at least 1)."""
        return f"about {max(1, round(self.stated_error * 100))} in 100 of these may be wrong"


def smoothing_k(pool_size: int) -> int:
    return int(min(SMOOTHING, max(1, pool_size // PHOTOS_PER_NEIGHBOUR)))


def neighbours(query_view: np.ndarray, pool_view: np.ndarray, k: int) -> np.ndarray:
    """(n, k) positions in `pool_view` of each query row's k most similar rows (by dot product), compared a block
    at a time (float32; float16 rows are widened per block), so memory stays bounded whatever the pool's size."""
    k = int(min(k, len(pool_view)))
    out = np.empty((len(query_view), k), dtype=np.int64)
    for start in range(0, len(query_view), _CHUNK):
        query = np.asarray(query_view[start:start + _CHUNK], dtype=np.float32)
        best = np.empty((len(query), 0), dtype=np.float32)
        where = np.empty((len(query), 0), dtype=np.int64)
        for first in range(0, len(pool_view), _BLOCK):
            block = np.asarray(pool_view[first:first + _BLOCK], dtype=np.float32)
            similarity = np.concatenate([best, query @ block.T], axis=1)
            kept = where.shape[1]  # the best so far come first, then this block's rows
            keep = np.argpartition(-similarity, min(k, similarity.shape[1]) - 1, axis=1)[:, :k]
            best = np.take_along_axis(similarity, keep, axis=1)
            earlier = np.take_along_axis(where, np.minimum(keep, kept - 1), axis=1) if kept else keep
            where = np.where(keep < kept, earlier, first + keep - kept)
        out[start:start + _CHUNK] = where
    return out


def with_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): probabilities made sharper (T < 1) or softer (T > 1)."""
    from quasar_core.head import softmax

    return softmax(np.log(np.clip(probabilities, 1e-9, 1.0)) / temperature).astype(np.float64)


def recalibration(oof_probabilities: np.ndarray, targets: np.ndarray) -> float:
    """The temperature that makes out-of-fold (averaged) probabilities best calibrated on these photos."""
    from quasar_core.head import fit_temperature

    if not len(targets):
        return 1.0
    return fit_temperature(np.log(np.clip(oof_probabilities, 1e-9, 1.0)), targets)


def confident_band(confidence, eligible, *, right: float, oof_confidence=None, oof_correct=None
                   ) -> tuple[np.ndarray, BandRule | None]:
    """(mask of the band's photos, its rule) — see the module docstring; (all False, None) when no photo is
    sure enough. `oof_confidence`/`oof_correct` (the labelled photos' out-of-fold answers) only count how many
    of them were at or above the threshold and wrong there, for the specialists."""
    confidence = np.asarray(confidence, dtype=np.float64)
    eligible = np.asarray(eligible, bool)
    mask = np.zeros(len(confidence), bool)
    candidates = np.flatnonzero(eligible)
    if not len(candidates):
        return mask, None
    order = candidates[np.argsort(-confidence[candidates], kind="stable")]
    expected = np.cumsum(1 - confidence[order]) / np.arange(1, len(order) + 1)
    fits = np.flatnonzero(expected <= 1 - right + 1e-12)
    if not len(fits):
        return mask, None
    last = int(fits[-1])
    mask[order[: last + 1]] = True
    threshold = float(confidence[order[last]])
    oof_confidence = np.asarray([] if oof_confidence is None else oof_confidence, dtype=np.float64)
    oof_correct = np.asarray([] if oof_correct is None else oof_correct, bool)
    above = oof_confidence >= threshold
    return mask, BandRule(threshold=threshold, stated_error=float(expected[last]), checked_on=int(above.sum()),
                          wrong_there=int((~oof_correct[above]).sum()))
