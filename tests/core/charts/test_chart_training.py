"""training_curves (fine-tuning epochs) and selection_figure (the classifier's candidate settings)."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest

from quasar_core import charts


def epoch(n, label="hold-out", loss=1.0, acc=0.5, val_loss=1.1, val_acc=0.45, seconds=2.5):
    return {"phase": "fine-tune", "epoch": n, "loss": loss, "accuracy": acc, "val_loss": val_loss,
            "val_accuracy": val_acc, "seconds": seconds, "label": label}


def candidate(strength, acc, train_acc, log_loss, chosen=False):
    return {"phase": "head", "strength": strength, "accuracy": acc, "log_loss": log_loss,
            "train_accuracy": train_acc, "chosen": chosen}


@pytest.fixture
def candidates():
    # given out of order: the chart sorts by strength
    return [
        candidate(1.0, 0.78, 0.97, 0.61),
        candidate(0.01, 0.60, 0.62, 0.90),
        candidate(0.1, 0.8123, 0.85, 0.50, chosen=True),
        candidate(10.0, 0.70, 1.0, 0.80),
    ]


@pytest.fixture
def history(candidates):
    """A whole run: candidates, 3 hold-out epochs (epoch 2 without hold-out values), 2 kept-model epochs."""
    return candidates + [
        epoch(1, loss=1.2, acc=0.40, val_loss=1.3, val_acc=0.35),
        epoch(2, loss=0.9, acc=0.55, val_loss=None, val_acc=None),
        epoch(3, loss=0.7, acc=0.65, val_loss=0.8, val_acc=0.60),
        epoch(1, "kept model", loss=0.8, acc=0.6, val_loss=None, val_acc=None, seconds=75),
        epoch(2, "kept model", loss=0.5, acc=0.8, val_loss=None, val_acc=None),
    ]


def texts(fig):
    return [a.text for a in fig.layout.annotations]


# --------------------------------------------------------------------------- training_curves


def test_training_curves_one_pair_of_lines_per_label(history):
    fig = charts.training_curves(history)
    json.loads(fig.to_json())
    assert [(t.name, t.xaxis) for t in fig.data] == [
        ("Trial run: photos it learned from", "x"),
        ("Trial run: photos set aside", "x"),
        ("Trial run: photos it learned from", "x2"),
        ("Trial run: photos set aside", "x2"),
        # the kept model learns from every photo: nothing set aside, no empty legend entry
        ("Kept model: photos it learned from", "x"),
        ("Kept model: photos it learned from", "x2"),
    ]
    trial_loss, trial_val_loss, trial_acc, trial_val_acc, kept_loss, kept_acc = fig.data
    # only the fine-tune rows are drawn; epochs restart at 1 for the kept model
    assert list(trial_loss.x) == [1, 2, 3] and list(kept_loss.x) == [1, 2]
    assert list(trial_loss.y) == [1.2, 0.9, 0.7]
    assert list(trial_val_loss.y) == [1.3, None, 0.8]  # a gap, not a drop to zero
    assert list(trial_val_acc.y) == [0.35, None, 0.60]
    assert list(kept_acc.y) == [0.6, 0.8]
    assert trial_loss.line.dash == "solid" and trial_val_loss.line.dash == "dash"
    assert trial_loss.line.color != kept_loss.line.color
    assert [t.showlegend for t in fig.data] == [True, True, False, False, True, False]


def test_training_curves_hover_has_exact_numbers_in_one_percent_style(history):
    fig = charts.training_curves(history)
    trial_loss, _, trial_acc, trial_val_acc, kept_loss, _ = fig.data
    assert [c[0] for c in trial_acc.customdata] == ["40.0 %", "55.0 %", "65.0 %"]
    assert [c[0] for c in trial_val_acc.customdata] == ["35.0 %", "–", "60.0 %"]
    assert trial_loss.customdata[0][0] == "1.2000"
    assert kept_loss.customdata[0][1] == "epoch took 1 min 15 s"
    assert "%{customdata[0]}" in trial_acc.hovertemplate
    assert "%{customdata[1]}" in trial_loss.hovertemplate  # the time on the solid line
    assert "%{customdata[1]}" not in trial_val_acc.hovertemplate  # ...once per epoch


def test_training_curves_no_text_over_the_lines(history):
    """A user found the "Fine-tuning" band label covering the curves: no shapes, no text in the plot."""
    fig = charts.training_curves(history)
    assert len(fig.layout.shapes) == 0
    # the only annotations are the two subplot titles, above the plots
    assert texts(fig) == ["Loss (lower is better)", "Accuracy (higher is better)"]
    assert all(a.yanchor == "bottom" and a.y >= 1 for a in fig.layout.annotations)
    assert "photos set aside" in fig.layout.title.subtitle.text
    assert fig.layout.legend.y < 0  # the legend under the plot


def test_training_curves_latest_label_only(history):
    fig = charts.training_curves(history, latest_only=True)
    assert [t.name for t in fig.data] == ["Photos it learned from", "Photos it learned from"]
    assert list(fig.data[1].y) == [0.6, 0.8]
    # the kept model keeps its colour when drawn alone
    assert fig.data[0].line.color == charts.training_curves(history).data[4].line.color
    assert "set aside and never" not in fig.layout.title.subtitle.text


def test_training_curves_axes_and_uirevision(history):
    fig = charts.training_curves(history, title="Run 7")
    assert fig.layout.title.text == "Run 7"
    assert fig.layout.uirevision == "Run 7"
    assert tuple(fig.layout.xaxis.range) == (0.5, 3.5)
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == "d"
    assert "Epoch" in fig.layout.xaxis.title.text
    assert tuple(fig.layout.yaxis2.range) == (0, 1)
    assert fig.layout.yaxis2.tickformat == ".0%"


@pytest.mark.parametrize("history", [[], [candidate(1.0, 0.8, 0.9, 0.5, chosen=True)]])
def test_training_curves_without_epochs(history):
    fig = charts.training_curves(history)
    json.loads(fig.to_json())
    assert len(fig.data) == 0
    assert charts.NO_EPOCHS_TEXT == "No epochs yet"
    assert "No epochs yet" in texts(fig)
    assert fig.layout.uirevision == fig.layout.title.text


def test_training_curves_unlabelled_single_run_and_diverged_values():
    rows = [epoch(1, label="", loss=float("nan"), val_loss=float("inf")), epoch(2, label="")]
    del rows[1]["label"]  # rows written before runs had labels
    fig = charts.training_curves(rows)
    json.loads(fig.to_json())
    assert [t.name for t in fig.data] == ["Photos it learned from", "Photos set aside"] * 2
    assert list(fig.data[0].y) == [None, 1.0]
    assert list(fig.data[1].y) == [None, 1.1]
    assert fig.data[0].customdata[0][0] == "–"


def test_training_curves_many_epochs_thin_ticks_and_lone_point():
    assert charts.training_curves([epoch(i) for i in range(1, 51)]).layout.xaxis.dtick == 5
    lone = charts.training_curves([epoch(1)])
    assert "markers" in lone.data[0].mode and tuple(lone.layout.xaxis.range) == (0.5, 1.5)


def test_row_helpers_split_a_history(history):
    assert [r["strength"] for r in charts.head_rows(history)] == [1.0, 0.01, 0.1, 10.0]
    assert [r["label"] for r in charts.fine_tune_rows(history)] == ["hold-out"] * 3 + ["kept model"] * 2


# --------------------------------------------------------------------------- selection_figure


def test_selection_figure_lines_sorted_by_strength(history):
    fig = charts.selection_figure(history)
    json.loads(fig.to_json())
    unseen, learned, chosen = fig.data
    assert unseen.name == "Photos it had not seen (cross-validation)"
    assert learned.name == "Photos it learned from"
    assert list(unseen.x) == [0.01, 0.1, 1.0, 10.0]
    assert list(unseen.y) == [0.60, 0.8123, 0.78, 0.70]
    assert list(learned.y) == [0.62, 0.85, 0.97, 1.0]  # over-fitting: the gap widens to the right
    assert learned.line.dash == "dash" and unseen.line.dash in (None, "solid")
    # hover: exact numbers, one percent style, the log loss that chose the winner
    assert list(unseen.customdata[1]) == ["81.2 %", "0.5000"]
    assert learned.customdata[3][0] == "100.0 %"


def test_selection_figure_marks_the_chosen_setting(history):
    fig = charts.selection_figure(history)
    chosen = fig.data[2]
    assert chosen.name == "Chosen setting"
    assert (list(chosen.x), list(chosen.y)) == ([0.1], [0.8123])
    assert chosen.marker.symbol == "diamond"
    assert "C = 0.1" in fig.layout.title.subtitle.text and "81.2 %" in fig.layout.title.subtitle.text
    assert len(fig.layout.shapes) == 0 and not texts(fig)  # nothing written over the lines


def test_selection_figure_axes_in_plain_words(candidates):
    fig = charts.selection_figure(candidates, title="Live")
    assert fig.layout.xaxis.type == "log"
    assert fig.layout.xaxis.title.text.startswith("Weaker regularisation →")
    assert fig.layout.yaxis.tickformat == ".0%"
    assert fig.layout.uirevision == "Live"


def test_selection_figure_before_the_choice_and_empty(candidates):
    live = charts.selection_figure([dict(c, chosen=False) for c in candidates])
    assert [t.name for t in live.data] == ["Photos it had not seen (cross-validation)", "Photos it learned from"]
    assert "over-fitting" in live.layout.title.subtitle.text
    empty = charts.selection_figure([epoch(1)])
    assert isinstance(empty, go.Figure) and len(empty.data) == 0
    assert texts(empty) == [charts.NO_CANDIDATES_TEXT]
