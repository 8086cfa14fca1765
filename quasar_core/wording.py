"""Numbers and lists as people read them, one style everywhere (pages, CLI, model card, charts)."""

from __future__ import annotations


def percent(fraction: float, digits: int = 1) -> str:
    """0.9474 -> "94.7 %" (a space before the sign, as in the model card and on every page)."""
    return f"{fraction * 100:.{digits}f} %"


SURE_TOP = 0.99  # a confidence shown to a person never reads "100 %": above this it is "more than 99 %"
SURE_BOTTOM = 0.01  # ...nor "0 %": below this it is "less than 1 %"


def confidence(fraction: float, digits: int = 1) -> str:
    """A prediction's confidence as a person reads it: "87.3 %", "more than 99 %", "less than 1 %".

    A model is never 100 % sure (nor 0 %); the numbers themselves stay as they are in JSON.
    """
    if fraction > SURE_TOP:
        return f"more than {SURE_TOP * 100:.0f} %"
    if fraction < SURE_BOTTOM:
        return f"less than {SURE_BOTTOM * 100:.0f} %"
    return percent(fraction, digits)


def calibration_claim(bands: list[dict], *, near: float = 0.9, min_photos: int = 10) -> str:
    """One checkable claim from a reliability table (evaluation.reliability: per band of stated confidence its mean
    "confidence", "accuracy" and "count"): "When it says about 88 %, it was right 85 times in 100 on photos it had
    not seen (34 of 40 such photos)." The band whose mean confidence is nearest `near`, among those of at least
    `min_photos` photos when there are any. "" without a table."""
    if not bands:
        return ""
    enough = [band for band in bands if band["count"] >= min_photos] or list(bands)
    band = min(enough, key=lambda b: (abs(b["confidence"] - near), -b["count"]))
    count, right = int(band["count"]), int(round(band["accuracy"] * band["count"]))
    said = confidence(band["confidence"], 0)
    said = said if said.startswith(("more", "less")) else f"about {said}"
    if right == count:
        times = "it was right every time"
    else:
        times = f"it was right {round(100 * right / count)} times in 100"
    return (f"When it says {said}, {times} on photos it had not seen ({right} of {plural(count, 'such photo')}).")


def right_of_100(accuracy: float, interval: tuple[float, float] | None, n: int) -> str:
    """The headline a room reads: "Right on about 93 of 100 photos it had never seen (90–96)"; on all of them,
    "Right on all 300 photos it had never seen (on photos like them, at least 99 of 100)"."""
    if n > 0 and round(accuracy * n) == n:
        low = f" (on photos like them, at least {interval[0] * 100:.0f} of 100)" if interval else ""
        return f"Right on all {n} photos it had never seen{low}"
    low_high = f" ({interval[0] * 100:.0f}–{interval[1] * 100:.0f})" if interval else ""
    return f"Right on about {accuracy * 100:.0f} of 100 photos it had never seen{low_high}"


def percent_range(low: float, high: float, digits: int = 0) -> str:
    """(0.901, 0.953) -> "90–95 %"."""
    return f"{low * 100:.{digits}f}–{high * 100:.{digits}f} %"


def estimate(accuracy: float, interval: tuple[float, float] | None) -> str:
    """"about 93 % (90–95 %)"; without an interval "93 %"."""
    if interval is None:
        return percent(accuracy, 0)
    return f"about {percent(accuracy, 0)} ({percent_range(*interval)})"


def plural(count: int, one: str, many: str | None = None) -> str:
    """(1, "photo") -> "1 photo"; (3, "photo") -> "3 photos"."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def join_words(words: list[str]) -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    words = list(words)
    if not words:
        return ""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
