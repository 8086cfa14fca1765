"""Plain-language hints are computed from the numbers, only when the numbers say so, and never worded
more strongly than the photos behind them allow (accuracy_hint included)."""

from __future__ import annotations

import pytest

from quasar_core import insights
from quasar_core.config import TrainConfig
from quasar_core.evaluation import Evaluation
from quasar_core.insights import FEW_PHOTOS, all_hints, confusion_hints, fit_hints, imbalance_hints


def head_rows(train_accuracy, accuracy, chosen_at=1):
    """The heads tried on the folds, one of them chosen (as TransferClassifier records them)."""
    return [{"phase": "head", "strength": s, "accuracy": accuracy if i == chosen_at else 0.1,
             "train_accuracy": train_accuracy if i == chosen_at else 0.1, "chosen": i == chosen_at}
            for i, s in enumerate((0.01, 0.1, 1.0))]


def tune_rows(losses, val_losses):
    return [{"phase": "fine-tune", "epoch": i + 1, "loss": loss, "val_loss": val, "label": "hold-out"}
            for i, (loss, val) in enumerate(zip(losses, val_losses))]


def test_underfitting_is_named_from_the_chosen_head():
    [hint] = fit_hints(head_rows(0.45, 0.4))
    assert hint.kind == "underfitting" and "only 45 %" in hint.text and "larger image size" in hint.text


def test_a_large_gap_between_learned_and_unseen_photos_is_memorising():
    [hint] = fit_hints(head_rows(1.0, 0.75))
    assert hint.kind == "overfitting" and "100 %" in hint.text and "75 %" in hint.text
    assert "augmentation" in hint.text


def test_healthy_heads_and_no_chosen_head_give_no_hint():
    assert fit_hints(head_rows(0.95, 0.9)) == []
    assert fit_hints(head_rows(0.95, 0.95 - insights.MEMORISING_GAP + 0.01)) == []  # a small gap is normal
    assert fit_hints([]) == []
    unchosen = [dict(row, chosen=False) for row in head_rows(0.3, 0.3)]
    assert fit_hints(unchosen) == []  # only the chosen head speaks for the model


def test_fine_tuning_overfitting_when_the_holdout_loss_rises_while_training_loss_falls():
    history = head_rows(0.95, 0.9) + tune_rows([1.0, 0.6, 0.4, 0.3, 0.2, 0.1], [0.9, 0.5, 0.6, 0.7, 0.8, 0.9])
    [hint] = fit_hints(history)
    assert hint.kind == "overfitting" and "after epoch 2" in hint.text and "rose for 4 epochs" in hint.text
    assert "Fewer fine-tuning epochs" in hint.text


def test_healthy_fine_tuning_and_a_short_rise_are_not_overfitting():
    assert fit_hints(tune_rows([1.0, 0.6, 0.4, 0.3], [0.9, 0.6, 0.5, 0.45])) == []
    assert fit_hints(tune_rows([1.0, 0.6, 0.4, 0.3, 0.2], [0.9, 0.5, 0.55, 0.6, 0.4])) == []  # it recovered
    assert fit_hints(tune_rows([1.0, 0.6, 0.4, 0.3], [0.9, 0.5, 0.55, 0.6])) == []  # 2 up: too soon to say
    [three] = fit_hints(tune_rows([1.0, 0.6, 0.4, 0.3, 0.2], [0.9, 0.5, 0.55, 0.6, 0.62]))  # 3 up: said
    assert "rose for 3 epochs" in three.text
    kept = [dict(row, val_loss=None, label="kept model") for row in tune_rows([1, 0.5, 0.4, 0.3, 0.2], [0] * 5)]
    assert fit_hints(kept) == []  # the kept model has no hold-out to judge by


def evaluation(matrix, labels=("cat", "dog", "fox"), accuracy=0.8):
    per_class = {label: {"precision": 0, "recall": 0, "f1": 0, "support": sum(row)}
                 for label, row in zip(labels, matrix)}
    return Evaluation(accuracy=accuracy, labels=list(labels), confusion_matrix=matrix, per_class=per_class)


def test_a_class_often_taken_for_another_is_named_with_counts():
    [hint] = confusion_hints(evaluation([[26, 14, 0], [0, 40, 0], [1, 0, 39]]))
    assert hint.kind == "confusion" and "'cat' is often taken for 'dog' (14 of 40 photos)" in hint.text
    assert confusion_hints(evaluation([[1, 1, 0], [0, 2, 0], [0, 0, 2]])) == []  # one photo proves nothing


def test_with_few_photos_a_confusion_is_a_possibility_not_a_finding():
    [hint] = confusion_hints(evaluation([[6, 4, 0], [0, 10, 0], [1, 0, 9]]))
    assert 10 < FEW_PHOTOS
    assert "'cat' may often be taken for 'dog' (4 of its 10 photos" in hint.text
    assert "a hint, not a finding" in hint.text


def test_imbalance():
    [hint] = imbalance_hints({"cat": 60, "dog": 15, "fox": 30})
    assert hint.kind == "imbalance" and "'cat' has 60" in hint.text and "'dog' only 15" in hint.text
    assert hint.text[0].isupper() and "weighs the classes equally" in hint.text
    assert imbalance_hints({"cat": 20, "dog": 15}) == []


# --------------------------------------------------------------------------- a poor score (accuracy_hint)


def scored(accuracy: float, photos: int = 10) -> Evaluation:
    right = round(accuracy * photos)
    return Evaluation(accuracy=accuracy, labels=["a", "b"], confusion_matrix=[[right, photos - right], [0, 0]],
                      per_class={})


@pytest.mark.parametrize("accuracy, poor", [(0.0, True), (0.599, True), (0.6, False), (0.95, False)])
def test_accuracy_hint_only_below_the_bar(accuracy, poor):
    hint = insights.accuracy_hint(scored(accuracy))
    assert (hint is not None) is poor
    if poor:
        assert hint.kind == "poor"
        assert f"only {accuracy * 100:.0f} % of the photos correctly" in hint.text
        assert "bigger images" in hint.text and "more photos" in hint.text and "Check my photos" in hint.text


def test_accuracy_hint_hedges_on_few_photos_and_quotes_the_settings_used():
    config = TrainConfig(image_size=32)
    few = insights.accuracy_hint(scored(0.2), config)
    assert "use bigger images than 32 px" in few.text
    assert "(measured on few photos, so it may be better or worse)" in few.text
    many = insights.accuracy_hint(scored(0.2, photos=FEW_PHOTOS), config)
    assert "few photos" not in many.text
    assert insights.accuracy_hint(None, config) is None


def test_all_hints_together_the_poor_score_first():
    history = head_rows(0.3, 0.2)
    kinds = [h.kind for h in all_hints(history, scored(0.2), {"a": 60, "b": 10}, TrainConfig(image_size=32))]
    assert kinds == ["poor", "underfitting", "confusion", "imbalance"]  # 8 of 10 "a" taken for "b"
    assert "poor" not in [h.kind for h in all_hints(history, scored(0.9), None)]
    assert [h.kind for h in all_hints(None)] == []


# --------------------------------------------------------------------------- the photo check's advice


def advice(label, curve, count=60):
    from quasar_core.class_advice import ClassAdvice

    return ClassAdvice(label, count, curve[-1][1], tuple(curve), 40)


def test_more_photos_only_where_the_curve_still_rises_beyond_chance():
    falling = advice("ants", [(30, 0.81), (60, 0.87), (90, 0.87), (120, 0.85)], 120)  # the issue's 81 -> 87 -> 85
    flat_end = advice("wasps", [(15, 0.3), (30, 0.5), (45, 0.6), (60, 0.6)])
    chance = advice("flies", [(3, 0.6), (6, 0.6), (9, 0.62), (12, 0.7)], 12)  # rises, but 12 photos cannot say so
    good = advice("moths", [(15, 0.97), (30, 0.98), (45, 0.98), (60, 0.99)])
    assert insights.more_photos_hints([falling, flat_end, chance, good]) == []
    rising = advice("bees", [(30, 0.62), (60, 0.70), (90, 0.75), (120, 0.81)], 125)
    [hint] = insights.more_photos_hints([falling, rising])
    assert hint.kind == "more-photos" and hint.text.startswith("More photos of 'bees' would likely help.")
    assert "62 %, 70 %, 75 % and 81 %" in hint.text and "with 95 % confidence" in hint.text
    assert "a rise of 8 to 30 points" in hint.text  # Agresti-Caffo: 19 points, give or take 11
    assert "'ants'" not in hint.text


def test_the_photos_it_would_take_are_a_range_or_a_floor():
    steep = advice("wasps", [(40, 0.5), (80, 0.65), (120, 0.74), (160, 0.8)], 200)
    [hint] = insights.more_photos_hints([steep])
    assert "Somewhere between 50 and 170 more would likely cut its mistakes by a quarter." in hint.text
    slow = advice("bees", [(30, 0.62), (60, 0.70), (90, 0.75), (120, 0.81)], 125)
    assert "at least 35 more" in insights.more_photos_hints([slow])[0].text  # the slow end: over 3x its photos


def test_the_summary_when_no_class_clearly_needs_more():
    good = advice("moths", [(15, 0.97), (30, 0.98), (45, 0.98), (60, 0.99)])
    assert insights.more_photos_summary([good]).startswith("Every class is already recognised well")
    falling = advice("ants", [(30, 0.81), (60, 0.87), (90, 0.87), (120, 0.85)], 120)
    assert insights.more_photos_summary([good, falling]).startswith("No class clearly needs more photos")


def test_unsure_is_not_wrong():
    from quasar_core.label_issues import LabelIssue

    assert insights.likely_wrong(LabelIssue("a.jpg", "ants", "bees", 0.95))
    assert not insights.likely_wrong(LabelIssue("b.jpg", "ants", "bees", 0.72))  # its class still got 28 %


def test_each_list_states_its_measured_track_record(monkeypatch):
    monkeypatch.setattr(insights, "MOVED_AMONG_LIKELY_WRONG", (13, 22))
    monkeypatch.setattr(insights, "MOVED_AMONG_UNSURE", (4, 12))
    assert insights.list_track_record(likely=True).endswith("about 6 in 10 of the photos listed this way were ones we "
                                                            "had moved (13 of 22).")
    assert "about 3 in 10" in insights.list_track_record(likely=False) and "(4 of 12)" in insights.list_track_record(
        likely=False)
