"""learning_story_figure and leaderboard_figure (the Train page's picture) and the history readers beside them."""

from __future__ import annotations

import copy
import json
import re

import plotly.graph_objects as go
import pytest

from quasar_core import charts

BANNED = (" C ", "C =", "log loss", "fold", "hold-out", "int8", "float32", "regularis", "regulariz", "e-0", "100 %")


def learning(share, accuracy, photos=None, low=None, high=None, tested=300):
    return {"phase": "learning", "share": share, "photos": photos if photos is not None else int(240 * share),
            "accuracy": accuracy, "low": accuracy - 0.06 if low is None else low,
            "high": accuracy + 0.04 if high is None else high, "tested": tested}


def candidate(setting, accuracy, *, size=224, augment=False, photos=245, seconds=42.0):
    return {"phase": "candidate", "setting": setting, "image_size": size, "augment": augment, "accuracy": accuracy,
            "low": accuracy - 0.05, "high": min(1.0, accuracy + 0.04), "photos": photos, "seconds": seconds}


REASON = "352 px named the most photos correctly; fine-tuning was not clearly better, so the simpler model was kept."


def choice(setting="352 px", accuracy=0.925, low=0.89, high=0.955, reason=REASON):
    return {"phase": "choice", "setting": setting, "accuracy": accuracy, "low": low, "high": high, "reason": reason}


@pytest.fixture
def story():
    # given out of order: the chart sorts by photos
    return [learning(0.5, 0.86), learning(0.25, 0.80), learning(1.0, 0.93), learning(0.75, 0.90)]


@pytest.fixture
def tried():
    return [candidate("128 px", 0.869, size=128), candidate("224 px", 0.922),
            candidate("224 px, 1 augmented copy of each photo", 0.915, augment=True),
            candidate("352 px", 0.935, size=352, seconds=95.0),
            candidate("224 px, fine-tuning the top block", 0.92)]


def words_of(fig: go.Figure) -> list[str]:
    """Every string a person can read in the figure: titles, axes, tick text, trace names, text, hovers."""
    data = fig.to_plotly_json()
    found: list[str] = []

    def walk(value, key=""):
        if isinstance(value, str):
            if key not in ("tickformat", "hoverformat", "uirevision", "type", "mode", "orientation", "xref", "yref"):
                found.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)

    walk(data["data"])
    walk(data["layout"].get("title", {}))
    walk([a.get("text", "") for a in data["layout"].get("annotations", [])])
    for axis in ("xaxis", "yaxis"):
        walk(data["layout"].get(axis, {}).get("title", {}))
        walk(list(data["layout"].get(axis, {}).get("ticktext", [])))
    return found


def assert_plain(fig: go.Figure) -> None:
    text = "\n".join(words_of(fig))
    for word in BANNED:
        assert word not in text, (word, text)
    assert not re.search(r"\d%", text), text  # one percent style: "93.5 %"


# --------------------------------------------------------------------------- learning_story_figure


def test_learning_story_points_with_intervals_against_photos(story):
    before = copy.deepcopy(story)
    fig = charts.learning_story_figure(story)
    json.loads(fig.to_json())
    assert story == before  # pure
    [line] = fig.data
    assert line.name == "Photos it never saw" and line.mode == "lines+markers+text"
    assert list(line.x) == [60, 120, 180, 240]
    assert list(line.y) == [0.80, 0.86, 0.90, 0.93]
    assert list(line.error_y.array) == pytest.approx([0.04] * 4)
    assert list(line.error_y.arrayminus) == pytest.approx([0.06] * 4)
    assert [t.strip("\u2003") for t in line.text] == ["80 %", "86 %", "90 %", "93 %"]
    assert fig.layout.title.text == "Accuracy on photos it never saw, as it learns from more of your photos"
    assert fig.layout.xaxis.title.text == "Photos it learned from"
    assert fig.layout.yaxis.title.text == "Share of unseen photos it named correctly"
    assert tuple(fig.layout.yaxis.range) == (0, 1.05)
    assert list(fig.layout.yaxis.ticktext)[-1] == "all"  # never "100 %"
    assert not fig.layout.annotations  # no empty-state message
    assert_plain(fig)


def test_learning_story_hover_in_plain_words(story):
    [line] = charts.learning_story_figure(story).data
    assert [c[0] for c in line.customdata] == ["a quarter", "half", "three quarters", "all"]
    assert list(line.customdata[-1]) == ["all", "93.0 %", "300 photos", "likely 87–97 %"]
    assert "it never saw" in line.hovertemplate and "%{x} photos" in line.hovertemplate


@pytest.mark.parametrize("last, says", [(0.93, "Still rising at the end"), (0.905, "Levelling off")])
def test_learning_story_subtitle_tells_the_finding(last, says):
    rows = [learning(0.25, 0.80), learning(0.5, 0.86), learning(0.75, 0.90), learning(1.0, last)]
    subtitle = charts.learning_story_figure(rows).layout.title.subtitle.text
    assert subtitle.startswith("Learning from 60 photos it named 80 % of new photos correctly; from 240, ")
    assert says in subtitle


def test_learning_story_takes_a_whole_history(story):
    history = [{"phase": "head", "strength": 0.1, "accuracy": 0.8, "log_loss": 0.5, "train_accuracy": 0.9,
                "chosen": True}, *story, candidate("224 px", 0.9)]
    assert list(charts.learning_story_figure(history).data[0].x) == [60, 120, 180, 240]


def test_learning_story_never_says_100_percent():
    rows = [learning(0.25, 0.97, low=0.9, high=1.0), learning(1.0, 1.0, low=0.988, high=1.0)]
    fig = charts.learning_story_figure(rows)
    [line] = fig.data
    assert [c[3] for c in line.customdata] == ["likely 90 % or more", "likely 99 % or more"]
    assert line.customdata[-1][1] == "more than 99 %"
    assert_plain(fig)


def test_learning_story_empty_state():
    for rows in ([], [{"phase": "head", "strength": 0.1, "accuracy": 0.8, "log_loss": 0.5, "train_accuracy": 0.9,
                       "chosen": True}]):
        fig = charts.learning_story_figure(rows)
        assert fig.data == ()
        assert [a.text for a in fig.layout.annotations] == [charts.NO_LEARNING_TEXT]
        assert fig.layout.title.text == charts.LEARNING_TITLE
        assert_plain(fig)


# --------------------------------------------------------------------------- leaderboard_figure


def test_leaderboard_fills_in_as_settings_finish(tried):
    fig = charts.leaderboard_figure(tried[:2], None)
    [bars] = fig.data
    assert bars.name == "Tried so far" and bars.orientation == "h" and bars.type == "bar"
    assert list(bars.x) == [0.869, 0.922] and list(bars.y) == [0, 1]
    assert list(fig.layout.yaxis.ticktext) == ["128 px", "224 px"]
    assert tuple(fig.layout.yaxis.range) == (1.5, -0.5)  # the first finished on top
    assert list(bars.error_x.array) == pytest.approx([0.04, 0.04])
    assert list(bars.error_x.arrayminus) == pytest.approx([0.05, 0.05])
    assert "kept" not in " ".join(bars.text)
    assert fig.layout.title.subtitle.text.startswith("Each bar is one setting")
    assert not fig.layout.annotations
    assert_plain(fig)

    more = charts.leaderboard_figure(tried, None)
    assert list(more.data[0].y) == [0, 1, 2, 3, 4] and more.layout.height > fig.layout.height


def test_leaderboard_marks_the_winner_and_says_why(tried):
    before = copy.deepcopy(tried)
    fig = charts.leaderboard_figure(tried, choice())
    json.loads(fig.to_json())
    assert tried == before
    others, kept, expected = fig.data
    assert (others.name, kept.name, expected.name) == ("Not kept", "Kept", "Expected on new photos")
    assert list(kept.y) == [3] and list(kept.x) == [0.935]
    assert list(others.y) == [0, 1, 2, 4]
    assert kept.text[0].strip("\u2003") == "93.5 % · kept"
    assert not any("kept" in t for t in others.text)
    assert kept.marker.color != others.marker.color
    assert list(expected.x) == [0.925] and list(expected.y) == [3]
    assert fig.layout.title.subtitle.text.replace("<br>", " ") == REASON
    [said] = [a.text for a in fig.layout.annotations]
    assert said == "Kept: 352 px. Expected on new photos: about 92 % (likely 89–96 %)."
    assert kept.customdata[0][0] == "352 px" and kept.customdata[0][-1] == "1 min 35 s"
    assert_plain(fig)


def test_leaderboard_colours_are_the_colour_blind_safe_ones(tried):
    from quasar_core.charts import _style

    palette = {_style.BLUE, _style.SKY_BLUE, _style.LIGHT_GREY, _style.GREY, _style.BLACK}
    for fig in (charts.leaderboard_figure(tried), charts.leaderboard_figure(tried, choice())):
        for trace in fig.data:
            assert trace.marker.color in palette


def test_leaderboard_takes_a_whole_history_and_a_winner_it_cannot_find(tried):
    history = [learning(1.0, 0.9), *tried, choice()]
    fig = charts.leaderboard_figure(history, charts.choice_row(history))
    assert [t.name for t in fig.data] == ["Not kept", "Kept", "Expected on new photos"]
    lost = charts.leaderboard_figure(tried, choice(setting="512 px"))
    assert [t.name for t in lost.data] == ["Not kept"]  # no bar is marked kept when none has the winner's words
    assert lost.layout.title.subtitle.text.replace("<br>", " ") == REASON


def test_leaderboard_never_says_100_percent():
    rows = [candidate("96 px", 0.995), candidate("128 px", 1.0)]
    fig = charts.leaderboard_figure(rows, choice("128 px", 0.995, 0.97, 1.0, reason="128 px named every photo."))
    assert_plain(fig)
    assert "more than 99 %" in fig.layout.annotations[0].text and "97 % or more" in fig.layout.annotations[0].text


def test_a_long_reason_wraps_and_the_chart_makes_room_for_it(tried):
    reason = ("Best accuracy tried 2 settings; 96 px won with 97.0 % on 300 photos it was tested on (next best: 96 px, "
              "1 augmented copy of each photo, 96.3 %). Picking the best of 2 flatters the winner a little: expect "
              "about 97 % on new photos.")
    short = charts.leaderboard_figure(tried, choice())
    long = charts.leaderboard_figure(tried, choice(reason=reason))
    lines = long.layout.title.subtitle.text.split("<br>")
    assert len(lines) == 3 and " ".join(lines) == reason and all(len(line) <= 110 for line in lines)
    assert long.layout.margin.t > short.layout.margin.t and long.layout.height > short.layout.height


def test_leaderboard_empty_state():
    fig = charts.leaderboard_figure([], None)
    assert fig.data == ()
    assert [a.text for a in fig.layout.annotations] == [charts.NO_SETTINGS_TEXT]
    assert fig.layout.title.text == charts.LEADERBOARD_TITLE
    assert_plain(fig)


# --------------------------------------------------------------------------- reading the history


def test_rows_and_the_choice_are_read_from_a_history(story, tried):
    history = [*tried[:2], *story, *tried[2:], choice()]
    assert [r["share"] for r in charts.learning_rows(history)] == [0.25, 0.5, 0.75, 1.0]
    assert [r["setting"] for r in charts.candidate_rows(history)] == [r["setting"] for r in tried]
    assert charts.choice_row(history)["setting"] == "352 px"
    assert charts.choice_row(tried) is None


def epoch(n, label):
    return {"phase": "fine-tune", "epoch": n, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7,
            "seconds": 1.0, "label": label}


def test_kept_model_history_drops_the_fine_tuning_of_a_model_not_kept(tried):
    tuned = [epoch(1, "hold-out"), epoch(2, "hold-out"), epoch(1, "kept model")]
    head = {"phase": "head", "strength": 0.1, "accuracy": 0.8, "log_loss": 0.5, "train_accuracy": 0.9, "chosen": True}
    before = [*tried, head, *tuned]  # a head row after every candidate: the kept model's
    assert charts.kept_model_history(before) == before  # no choice yet: everything
    plain = [*before, choice("352 px")]
    assert charts.kept_model_history(plain) == [*tried, head, choice("352 px")]
    winner = choice("224 px, fine-tuning the top block")
    assert charts.kept_model_history([*before, winner]) == [*before, winner]
    by_setting = [epoch(1, "224 px, fine-tuning the top block"), epoch(1, "352 px, fine-tuning the top block")]
    assert charts.kept_model_history([*by_setting, winner]) == [by_setting[0], winner]


def test_kept_model_history_keeps_only_the_winners_search_for_the_strength():
    def head(strength, chosen=False):
        return {"phase": "head", "strength": strength, "accuracy": 0.8, "log_loss": 0.5, "train_accuracy": 0.9,
                "chosen": chosen}

    first = [head(0.1), head(1.0, chosen=True)]  # each candidate's search, just before its row
    second = [head(0.1, chosen=True), head(1.0)]
    third = [head(10.0, chosen=True)]
    a, b, c = candidate("128 px", 0.8), candidate("352 px", 0.9), candidate("224 px", 0.85)
    learned = [learning(1.0, 0.9)]  # the kept model's, after every candidate
    history = [*first, a, *second, b, *third, c, *learned]
    assert charts.kept_model_history(history) == history  # not chosen yet
    assert charts.kept_model_history([*history, choice("352 px")]) == [a, *second, b, c, *learned, choice("352 px")]
    assert charts.kept_model_history([*history, choice("128 px")]) == [*first, a, b, c, *learned, choice("128 px")]
    assert charts.head_rows(charts.kept_model_history([*history, choice("224 px")])) == third


def test_status_line_is_the_latest_message_in_plain_words():
    assert charts.status_line([]) is None
    assert charts.status_line(["Trying setting 1 of 5: 128 px.", "Trying setting 2 of 5: 224 px."]) == (
        "Trying setting 2 of 5: 224 px.")
    assert charts.status_line(["Fine-tuning VGG16's top 1 block(s) (hold-out)."]) == (
        "Fine-tuning VGG16's top 1 block(s) (trial run).")


def test_accuracy_words():
    assert charts.accuracy_words(0.934, 0.9, 0.96) == "about 93 % (likely 90–96 %)"
    assert charts.accuracy_words(1.0, 0.95, 1.0) == "more than 99 % (likely 95 % or more)"
    assert charts.accuracy_words(0.5) == "about 50 %"
