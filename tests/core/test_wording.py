"""Numbers and lists in words, one style everywhere (pages, CLI, model card, charts)."""

from __future__ import annotations

import pytest

from quasar_core.wording import (calibration_claim, confidence, duration, estimate, join_words, percent, percent_range,
                                 plural, right_of_100)


@pytest.mark.parametrize("fraction, digits, text", [(0.9474, 1, "94.7 %"), (1.0, 1, "100.0 %"), (0.0, 0, "0 %"),
                                                    (0.12345, 2, "12.35 %"), (0.995, 0, "100 %")])
def test_percent_has_a_space_before_the_sign(fraction, digits, text):
    assert percent(fraction, digits) == text


@pytest.mark.parametrize("fraction, digits, text", [
    (1.0, 1, "more than 99 %"), (0.9996, 1, "more than 99 %"), (0.995, 0, "more than 99 %"), (0.991, 1, "more than 99 %"),
    (0.99, 1, "99.0 %"), (0.873, 1, "87.3 %"), (0.5, 0, "50 %"), (0.01, 1, "1.0 %"),
    (0.0099, 1, "less than 1 %"), (0.0, 0, "less than 1 %")])
def test_a_confidence_never_reads_100_or_0_percent(fraction, digits, text):
    assert confidence(fraction, digits) == text
    assert "100" not in confidence(fraction, digits) and confidence(fraction, digits) not in ("0 %", "0.0 %")


def test_percent_range_and_estimate():
    assert percent_range(0.901, 0.953) == "90–95 %"
    assert percent_range(0.5, 0.625, 1) == "50.0–62.5 %"
    assert estimate(0.93, (0.901, 0.953)) == "about 93 % (90–95 %)"
    assert estimate(0.93, None) == "93 %"


def test_plural():
    assert plural(1, "photo") == "1 photo"
    assert plural(0, "photo") == "0 photos" and plural(3, "photo") == "3 photos"
    assert plural(2, "copy", "copies") == "2 copies" and plural(1, "copy", "copies") == "1 copy"


def test_join_words():
    assert join_words([]) == "" and join_words(["a"]) == "a"
    assert join_words(["a", "b"]) == "a and b" and join_words(["a", "b", "c"]) == "a, b and c"
    assert join_words(word for word in ("x", "y")) == "x and y"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (-3, "0 s"), (59.4, "59 s"), (59.6, "1 min 00 s"), (60, "1 min 00 s"), (125, "2 min 05 s"),
     (3600, "1 h 00 min"), (3725, "1 h 02 min")],
)
def test_duration(seconds, text):
    assert duration(seconds) == text


def band(low, mean, accuracy, count):
    return {"low": low, "high": low + 0.1, "confidence": mean, "accuracy": accuracy, "count": count}


def test_the_calibration_claim_is_one_checkable_sentence_from_the_band_nearest_90():
    bands = [band(0.5, 0.56, 0.5, 12), band(0.8, 0.877, 0.85, 40), band(0.9, 0.98, 0.97, 200)]
    assert calibration_claim(bands) == ("When it says about 88 %, it was right 85 times in 100 on photos it had not "
                                        "seen (34 of 40 such photos).")
    few = [band(0.8, 0.9, 1.0, 3), band(0.9, 0.97, 0.95, 60)]  # 3 photos say little: the band with enough
    assert calibration_claim(few).startswith("When it says about 97 %, it was right 95 times in 100")
    sure = [band(0.9, 0.9996, 1.0, 280)]
    assert calibration_claim(sure) == ("When it says more than 99 %, it was right every time on photos it had not "
                                       "seen (280 of 280 such photos).")
    assert calibration_claim([]) == ""
    assert "off by" not in calibration_claim(bands) and "100 %" not in calibration_claim(sure)


def test_the_headline_a_room_reads():
    assert right_of_100(0.93, (0.901, 0.957), 245) == "Right on about 93 of 100 photos it had never seen (90–96)"
    assert right_of_100(0.93, None, 245) == "Right on about 93 of 100 photos it had never seen"
    assert right_of_100(1.0, (0.988, 1.0), 300) == ("Right on all 300 photos it had never seen (on photos like them, "
                                                    "at least 99 of 100)")
