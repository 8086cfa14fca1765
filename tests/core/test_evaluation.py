"""Evaluation against numbers worked out by hand (and by scikit-learn): scores, the Wilson interval,
calibration, and the words that carry them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from quasar_core.evaluation import Evaluation, evaluate_predictions, reliability, wilson_interval

LABELS = ["ant", "bee", "cat"]
Y_TRUE = [0, 0, 1, 1, 2, 2, 2]
# Predicted: ant, bee, bee, bee, cat, ant, cat -> two mistakes (#2 ant->bee at 0.6, #6 cat->ant at 0.9).
PROBABILITIES = [
    [0.70, 0.20, 0.10],
    [0.30, 0.60, 0.10],
    [0.10, 0.80, 0.10],
    [0.05, 0.55, 0.40],
    [0.10, 0.10, 0.80],
    [0.90, 0.05, 0.05],
    [0.20, 0.30, 0.50],
]
NAMES = [f"pic{i}.png" for i in range(7)]


@pytest.fixture
def evaluation() -> Evaluation:
    return evaluate_predictions(Y_TRUE, PROBABILITIES, LABELS, NAMES)


def test_accuracy_and_confusion_matrix_by_hand(evaluation):
    assert evaluation.accuracy == pytest.approx(5 / 7)
    assert evaluation.confusion_matrix == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert evaluation.n_images == 7
    assert evaluation.labels == LABELS


def test_per_class_scores_by_hand(evaluation):
    expected = {
        "ant": {"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2},
        "bee": {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2},
        "cat": {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3},
    }
    assert evaluation.per_class.keys() == expected.keys()
    for label, scores in expected.items():
        got = evaluation.per_class[label]
        for key, value in scores.items():
            assert got[key] == pytest.approx(value), (label, key)
        assert isinstance(got["support"], int)


def test_scores_agree_with_scikit_learn(evaluation):
    from sklearn.metrics import classification_report

    report = classification_report(Y_TRUE, np.argmax(PROBABILITIES, axis=1), target_names=LABELS, output_dict=True)
    assert evaluation.accuracy == pytest.approx(report["accuracy"])
    for label in LABELS:
        for key, sk_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"),
                            ("support", "support")):
            assert evaluation.per_class[label][key] == pytest.approx(report[label][sk_key])


def test_predictions_per_image(evaluation):
    first, second = evaluation.predictions[:2]
    assert first == {"name": "pic0.png", "true": "ant", "predicted": "ant", "confidence": pytest.approx(0.7),
                     "probabilities": {"ant": pytest.approx(0.7), "bee": pytest.approx(0.2),
                                       "cat": pytest.approx(0.1)}}
    with_folds = evaluate_predictions(Y_TRUE, PROBABILITIES, LABELS, NAMES, extra=[{"fold": i % 2} for i in range(7)])
    assert [p["fold"] for p in with_folds.predictions] == [0, 1, 0, 1, 0, 1, 0]
    assert (second["true"], second["predicted"], second["confidence"]) == ("ant", "bee", pytest.approx(0.6))
    assert [p["name"] for p in evaluation.predictions] == NAMES


def test_default_names_count_from_one():
    evaluation = evaluate_predictions([0, 1], [[0.9, 0.1], [0.2, 0.8]], ["x", "y"])
    assert [p["name"] for p in evaluation.predictions] == ["image 1", "image 2"]


def test_mistakes_most_confidently_wrong_first(evaluation):
    assert [p["name"] for p in evaluation.mistakes()] == ["pic5.png", "pic1.png"]  # 0.9 before 0.6
    assert [p["name"] for p in evaluation.mistakes(true_label="cat")] == ["pic5.png"]
    assert [p["name"] for p in evaluation.mistakes(predicted_label="bee")] == ["pic1.png"]
    assert evaluation.mistakes(true_label="bee") == []
    assert evaluation.mistakes(true_label="cat", predicted_label="bee") == []


def test_cell_holds_right_and_wrong_answers_most_confident_first(evaluation):
    assert [p["name"] for p in evaluation.cell("bee", "bee")] == ["pic2.png", "pic3.png"]  # 0.8, 0.55
    assert [p["name"] for p in evaluation.cell("cat", "cat")] == ["pic4.png", "pic6.png"]  # 0.8, 0.5
    assert [p["name"] for p in evaluation.cell("cat", "ant")] == ["pic5.png"]
    assert evaluation.cell("ant", "cat") == []
    for t, true_label in enumerate(LABELS):  # the cells add up to the confusion matrix
        for p, predicted_label in enumerate(LABELS):
            assert len(evaluation.cell(true_label, predicted_label)) == evaluation.confusion_matrix[t][p]


def test_interval_method_and_calibration_are_filled_in(evaluation):
    assert evaluation.accuracy_interval == pytest.approx(list(wilson_interval(5, 7)))
    assert evaluation.method == "held-out photos"
    bands, error = reliability([0.7, 0.6, 0.8, 0.55, 0.8, 0.9, 0.5], [1, 0, 1, 1, 1, 0, 1])
    assert evaluation.reliability == bands and evaluation.calibration_error == pytest.approx(error)
    measured = evaluate_predictions(Y_TRUE, PROBABILITIES, LABELS, method="5-fold cross-validation over 7 photos")
    assert measured.method == "5-fold cross-validation over 7 photos"


def test_summary_and_headline_in_plain_words(evaluation):
    assert evaluation.headline() == "about 71 % (36–92 %), measured by held-out photos"
    assert evaluation.summary() == ("It named 5 of 7 photos correctly that the model testing them had never seen: "
                                    "about 71 % (36–92 %), measured by held-out photos.")
    evaluation.accuracy_interval = None  # a model from outside, measured without one
    assert evaluation.headline() == "71 %, measured by held-out photos"


def test_round_trip_through_json(evaluation):
    data = json.loads(json.dumps(evaluation.to_dict()))
    restored = Evaluation.from_dict(data)
    assert restored == evaluation
    assert restored.mistakes() == evaluation.mistakes()
    # Older metrics files without per-image predictions, intervals or calibration still load; unknown keys are ignored.
    for key in ("predictions", "accuracy_interval", "method", "calibration_error", "reliability"):
        del data[key]
    data["something_new"] = 1
    old = Evaluation.from_dict(data)
    assert old.predictions == [] and old.accuracy_interval is None and old.reliability == []
    assert old.calibration_sentence() == ""


def test_a_class_never_predicted_scores_zero_not_nan():
    evaluation = evaluate_predictions([0, 1, 2], [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]], LABELS)
    cat = evaluation.per_class["cat"]
    assert cat == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert not any(math.isnan(v) for scores in evaluation.per_class.values() for v in scores.values())
    assert evaluation.confusion_matrix == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]


def test_a_class_absent_from_the_test_set_keeps_its_row():
    evaluation = evaluate_predictions([0, 0], [[0.9, 0.1, 0.0], [0.4, 0.6, 0.0]], LABELS)
    assert evaluation.confusion_matrix == [[1, 1, 0], [0, 0, 0], [0, 0, 0]]
    assert evaluation.per_class["cat"]["support"] == 0


@pytest.mark.parametrize(
    ("y_true", "probabilities"),
    [
        ([0, 1], [0.9, 0.1]),  # 1-D
        ([0, 1], [[0.9, 0.1], [0.2, 0.8]]),  # 2 columns for 3 labels
        ([0, 1, 2], [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]]),  # fewer rows than images
        ([0], [[[0.9, 0.05, 0.05]]]),  # 3-D
    ],
)
def test_bad_shapes_are_a_value_error_naming_the_shapes(y_true, probabilities):
    with pytest.raises(ValueError, match=r"shape \(") as raised:
        evaluate_predictions(y_true, probabilities, LABELS)
    assert repr(np.asarray(probabilities).shape) in str(raised.value)


def test_nothing_to_evaluate_is_a_value_error():
    with pytest.raises(ValueError, match="no held-out images"):
        evaluate_predictions([], np.zeros((0, 3)), LABELS)


# --------------------------------------------------------------------------- Wilson interval


@pytest.mark.parametrize("successes, n, low, high", [
    (8, 10, 0.4902, 0.9433),  # the textbook example
    (5, 7, 0.3589, 0.9178),
    (50, 100, 0.4038, 0.5962),
    (0, 10, 0.0, 0.2775),  # z^2 / (n + z^2)
    (10, 10, 0.7225, 1.0),  # n / (n + z^2)
    (1, 1, 0.2065, 1.0),
])
def test_wilson_interval_known_values(successes, n, low, high):
    got = wilson_interval(successes, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_at_the_ends_contains_the_estimate():
    assert wilson_interval(0, 7)[0] == 0.0 and wilson_interval(7, 7)[1] == 1.0
    for n in (1, 3, 24, 1000):
        for k in range(0, n + 1, max(1, n // 7)):
            low, high = wilson_interval(k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0
            assert (low, high) == pytest.approx((1 - wilson_interval(n - k, n)[1], 1 - wilson_interval(n - k, n)[0]))
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing tested: nothing known


def test_wilson_interval_narrows_with_more_photos():
    widths = [np.subtract(*wilson_interval(round(0.8 * n), n)[::-1]) for n in (10, 40, 160, 640)]
    assert widths == sorted(widths, reverse=True)
    assert widths[0] / widths[-1] == pytest.approx(8, rel=0.3)  # about 1 / sqrt(n)


# --------------------------------------------------------------------------- calibration


def test_reliability_bands_and_expected_calibration_error_by_hand():
    confidence = [0.95, 0.92, 0.91, 0.65, 0.62, 0.15]
    correct = [1, 1, 0, 1, 0, 0]
    bands, error = reliability(confidence, correct)
    assert [(b["low"], b["high"], b["count"]) for b in bands] == [
        (pytest.approx(0.1), pytest.approx(0.2), 1), (pytest.approx(0.6), pytest.approx(0.7), 2),
        (pytest.approx(0.9), pytest.approx(1.0), 3)]
    assert bands[2]["confidence"] == pytest.approx(2.78 / 3) and bands[2]["accuracy"] == pytest.approx(2 / 3)
    expected = (1 * 0.15 + 2 * abs(0.635 - 0.5) + 3 * abs(2.78 / 3 - 2 / 3)) / 6
    assert error == pytest.approx(expected)
    perfect, zero = reliability([1.0, 1.0, 0.0], [1, 1, 0])
    assert zero == pytest.approx(0.0) and perfect[0]["low"] == 0.0  # a confidence of 0 falls in the first band


def test_calibration_sentence_from_the_busiest_hedged_band():
    rows = [{"low": 0.8, "high": 0.9, "confidence": 0.86, "accuracy": 0.8, "count": 30},
            {"low": 0.9, "high": 1.0, "confidence": 0.97, "accuracy": 0.96, "count": 90},
            {"low": 0.5, "high": 0.6, "confidence": 0.55, "accuracy": 0.5, "count": 5}]
    evaluation = Evaluation(accuracy=0.9, labels=["a", "b"], confusion_matrix=[[1, 0], [0, 1]], per_class={},
                            calibration_error=0.031, reliability=rows)
    assert evaluation.calibration_sentence() == ("When it says about 90 %, it is right about 8 times in 10 "
                                                 "(on average its confidence is off by 3.1 %).")


# --------------------------------------------------------------------------- labels in doubt: the other end


def doubts_problem(flipped: int, *, seed: int = 0, hard: int = 6):
    """200 photos of 3 classes the model knows well: `flipped` labels moved to another class (the model, sure,
    still names the true one) and `hard` genuine mistakes it is unsure of."""
    rng = np.random.default_rng(seed)
    true = np.repeat(np.arange(3), [70, 70, 60])
    probabilities = np.full((len(true), 3), 0.02)
    probabilities[np.arange(len(true)), true] = 0.96
    probabilities += rng.uniform(0, 0.02, probabilities.shape)
    unsure = rng.choice(len(true), hard, replace=False)
    for i in unsure:  # a genuine mistake: leaning to the next class, unsure
        probabilities[i] = 0.05
        probabilities[i, true[i]], probabilities[i, (true[i] + 1) % 3] = 0.40, 0.55
    given = true.copy()
    moved = rng.choice(np.setdiff1d(np.arange(len(true)), unsure), flipped, replace=False)
    given[moved] = (true[moved] + 1 + rng.integers(0, 2, flipped)) % 3
    probabilities /= probabilities.sum(1, keepdims=True)
    return evaluate_predictions(given, probabilities, LABELS), true, probabilities


def test_wrong_labels_read_low_and_the_other_end_counts_them():
    from quasar_core.evaluation import with_label_doubts

    evaluation, true, probabilities = doubts_problem(12)
    assert evaluation.accuracy == pytest.approx((200 - 12 - 6) / 200)  # every wrong label counted as a mistake
    with_label_doubts(evaluation)
    assert 9 <= evaluation.doubted_labels <= 18  # cleanlab's estimate: near the 12 moved, never above the mistakes
    truly = float((probabilities.argmax(1) == true).mean())  # 97 %: what the model gets right by the true labels
    assert abs(evaluation.accuracy_if_doubted_wrong - truly) <= 0.02
    assert evaluation.accuracy_if_doubted_wrong == pytest.approx(
        evaluation.accuracy + evaluation.doubted_labels / 200)
    note = evaluation.doubt_note()
    assert note.startswith("The number counts its answers against your labels. About ")
    assert f"it was right about {round(evaluation.accuracy_if_doubted_wrong * 100)} % of the time." in note
    assert note in evaluation.summary()
    assert Evaluation.from_dict(json.loads(json.dumps(evaluation.to_dict()))).doubt_note() == note


def test_clean_labels_leave_little_in_doubt_and_say_nothing():
    from quasar_core.evaluation import with_label_doubts

    evaluation, _, _ = doubts_problem(0)
    with_label_doubts(evaluation)
    assert evaluation.doubted_labels <= 2  # the unsure mistakes are the model's, not the labels'
    assert evaluation.doubt_note() == "" and "look wrong" not in evaluation.summary()


def test_too_few_photos_to_doubt_any_label(evaluation):
    from quasar_core.evaluation import with_label_doubts

    assert with_label_doubts(evaluation).doubted_labels is None  # 7 photos: nothing is said
    assert evaluation.doubt_note() == ""
