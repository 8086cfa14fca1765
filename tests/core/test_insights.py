"""Plain-language hints are computed from the numbers, and only when the numbers say so."""

from quasar_core.evaluation import Evaluation
from quasar_core.insights import all_hints, confusion_hints, curve_hints, imbalance_hints


def rows(losses, val_losses, accuracies=None, val_accuracies=None):
    accuracies = accuracies or [0.9] * len(losses)
    val_accuracies = val_accuracies or [0.9] * len(losses)
    return [{"epoch": i + 1, "phase": "head", "loss": l, "val_loss": v, "accuracy": a, "val_accuracy": va}
            for i, (l, v, a, va) in enumerate(zip(losses, val_losses, accuracies, val_accuracies))]


def test_overfitting_is_named_when_validation_loss_rises_while_training_loss_falls():
    history = rows([1.0, 0.6, 0.4, 0.3, 0.2, 0.1], [0.9, 0.5, 0.6, 0.7, 0.8, 0.9])
    [hint] = curve_hints(history)
    assert hint.kind == "overfitting" and "after epoch 2" in hint.text and "rose for 4 epochs" in hint.text


def test_healthy_curves_give_no_hint_and_a_short_rise_is_not_overfitting():
    assert curve_hints(rows([1.0, 0.6, 0.4, 0.3], [0.9, 0.6, 0.5, 0.45])) == []
    assert curve_hints(rows([1.0, 0.6, 0.4, 0.3], [0.9, 0.5, 0.55, 0.6])) == []  # 2 epochs up: too soon to say
    assert curve_hints([]) == []


def test_underfitting_and_a_large_train_validation_gap():
    [hint] = curve_hints(rows([1.5, 1.4], [1.5, 1.4], accuracies=[0.3, 0.45]))
    assert hint.kind == "underfitting" and "45%" in hint.text
    [gap] = curve_hints(rows([0.5, 0.1], [0.6, 0.5], accuracies=[0.9, 1.0], val_accuracies=[0.7, 0.75]))
    assert gap.kind == "overfitting" and "100%" in gap.text and "75%" in gap.text


def evaluation(matrix, labels=("cat", "dog", "fox")):
    per_class = {label: {"precision": 0, "recall": 0, "f1": 0, "support": sum(row)}
                 for label, row in zip(labels, matrix)}
    return Evaluation(accuracy=0.8, labels=list(labels), confusion_matrix=matrix, per_class=per_class)


def test_a_class_often_taken_for_another_is_named_with_counts():
    [hint] = confusion_hints(evaluation([[6, 4, 0], [0, 10, 0], [1, 0, 9]]))
    assert hint.kind == "confusion" and "'cat' is often taken for 'dog' (4 of 10 images)" in hint.text
    assert confusion_hints(evaluation([[1, 1, 0], [0, 2, 0], [0, 0, 2]])) == []  # one image proves nothing


def test_imbalance_and_all_hints_together():
    [hint] = imbalance_hints({"cat": 60, "dog": 15, "fox": 30})
    assert hint.kind == "imbalance" and "'cat' has 60" in hint.text and "'dog' only 15" in hint.text
    assert imbalance_hints({"cat": 20, "dog": 15}) == []
    kinds = [h.kind for h in all_hints(rows([1.5], [1.4], accuracies=[0.3]),
                                       evaluation([[6, 4, 0], [0, 10, 0], [0, 0, 10]]), {"cat": 60, "dog": 10})]
    assert kinds == ["underfitting", "confusion", "imbalance"]
