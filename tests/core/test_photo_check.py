"""The photo check's progress counts every photo, from the first moment, cached or not."""

from __future__ import annotations

from quasar_core.photo_check import every_photo, starting_progress
from quasar_core.progress import Progress, TrainingHooks


def test_progress_counts_every_photo_from_the_start():
    seen = []
    hooks = every_photo(TrainingHooks(on_progress=seen.append), 245)
    assert seen == [starting_progress(245)] and (seen[0].step, seen[0].total_steps) == (0, 245)
    hooks.progress(Progress("features", 10, 237, rate=3.0))  # 8 photos were cached: the pass reads 237
    assert (seen[-1].step, seen[-1].total_steps, seen[-1].rate) == (18, 245, 3.0)
    hooks.progress(Progress("features", 237, 237))
    assert (seen[-1].step, seen[-1].total_steps) == (245, 245)
    hooks.progress(Progress("head", 2, 30))  # the other phases as they come
    assert (seen[-1].phase, seen[-1].step, seen[-1].total_steps) == ("head", 2, 30)
