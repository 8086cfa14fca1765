"""How good a model is, with its uncertainty: the numbers from scikit-learn, the words from here.

An ``Evaluation`` is made from predictions on photos the model (or each fold's model) never
learned from. Accuracy comes with a 95 % Wilson interval over photos and the method that
measured it ("10-fold cross-validation over 245 photos, repeated 3 times"); calibration with the expected
calibration error and a reliability table (for each band of stated confidence, how often
the model was right).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from quasar_core.wording import estimate, percent

RELIABILITY_BINS = 10
DOUBTS_WORTH_SAYING = 3  # labels in doubt before the other end is said (one or two move a number little)


def wilson_interval(successes: int, n: int, *, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion (good at small n and near 0 or 1)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0/n and n/n the bound is exactly 0 or 1 (rounding would leave the estimate outside its interval).
    return (0.0 if successes <= 0 else max(0.0, centre - half)), (1.0 if successes >= n else min(1.0, centre + half))


def reliability(confidence, correct, *, bins: int = RELIABILITY_BINS) -> tuple[list[dict], float]:
    """Per confidence band: mean confidence, accuracy, count; and the expected calibration error."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    rows, error = [], 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        chosen = (confidence > low) & (confidence <= high) if low > 0 else (confidence <= high)
        count = int(chosen.sum())
        if count:
            mean_confidence, accuracy = float(confidence[chosen].mean()), float(correct[chosen].mean())
            error += count / len(confidence) * abs(mean_confidence - accuracy)
            rows.append({"low": float(low), "high": float(high), "confidence": mean_confidence,
                         "accuracy": accuracy, "count": count})
    return rows, float(error)


@dataclass
class Evaluation:
    accuracy: float
    labels: list[str]
    confusion_matrix: list[list[int]]  # rows = true labels, columns = predicted, in `labels` order
    per_class: dict[str, dict]  # label -> precision, recall, f1, support
    predictions: list[dict] = field(default_factory=list)  # per photo: name, true, predicted, confidence, probabilities
    accuracy_interval: list[float] | None = None  # [low, high], 95 %
    method: str = "held-out photos"
    calibration_error: float | None = None
    reliability: list[dict] = field(default_factory=list)
    # After the photo check moved or left out photos: how many, and the accuracy with each of them counted as
    # a mistake (the other end: the photos it flagged may be ones the model gets wrong). None: no such changes.
    check_changes: int | None = None
    accuracy_counting_changes: float | None = None
    # The photos' own labels that are probably wrong (confident learning on the out-of-fold answers), and the
    # accuracy if they are: the number above counts a right answer on a wrongly labelled photo as a mistake.
    doubted_labels: int | None = None
    accuracy_if_doubted_wrong: float | None = None

    @property
    def n_images(self) -> int:
        return int(sum(sum(row) for row in self.confusion_matrix))

    def mistakes(self, *, true_label: str | None = None, predicted_label: str | None = None) -> list[dict]:
        """Misclassified photos, most confidently wrong first, optionally for one confusion cell."""
        wrong = [
            p for p in self.predictions
            if p["true"] != p["predicted"]
            and (true_label is None or p["true"] == true_label)
            and (predicted_label is None or p["predicted"] == predicted_label)
        ]
        return sorted(wrong, key=lambda p: -p["confidence"])

    def cell(self, true_label: str, predicted_label: str) -> list[dict]:
        """Every photo of one confusion-matrix cell (right or wrong), most confident first."""
        chosen = [p for p in self.predictions if p["true"] == true_label and p["predicted"] == predicted_label]
        return sorted(chosen, key=lambda p: -p["confidence"])

    def headline(self) -> str:
        """"about 93 % (90–95 %), measured by 10-fold cross-validation over 245 photos, repeated 3 times"."""
        interval = tuple(self.accuracy_interval) if self.accuracy_interval else None
        return f"{estimate(self.accuracy, interval)}, measured by {self.method}"

    def check_note(self) -> str:
        """"Measured after 7 photos flagged by the check were moved or left out: it may read high (…)"; "" if none."""
        if not self.check_changes:
            return ""
        photos = "1 photo" if self.check_changes == 1 else f"{self.check_changes} photos"
        return (f"Measured after {photos} flagged by the photo check {'was' if self.check_changes == 1 else 'were'} "
                f"moved or left out: it may read high. Counting {'it' if self.check_changes == 1 else 'them'} as "
                f"mistakes, it would be {percent(self.accuracy_counting_changes or 0.0, 0)}.")

    def doubt_note(self) -> str:
        """"About 10 of the labels look wrong to it (…); if they are, it was right about 95 % of the time."; "" when
        too few labels are in doubt to move the number."""
        if not self.doubted_labels or self.doubted_labels < DOUBTS_WORTH_SAYING or self.accuracy_if_doubted_wrong is None:
            return ""
        return (f"The number counts its answers against your labels. About {self.doubted_labels} of them look wrong "
                f"to it (Check your photos lists them); if they are, it was right about "
                f"{percent(self.accuracy_if_doubted_wrong, 0)} of the time.")

    def summary(self) -> str:
        right = int(round(self.accuracy * self.n_images))
        text = (f"It named {right} of {self.n_images} photos correctly that the model testing them had never "
                f"seen: {self.headline()}.")
        notes = [note for note in (self.check_note(), self.doubt_note()) if note]
        return " ".join([text, *notes])

    def calibration_sentence(self) -> str:
        """"When it says 90 %, it is right about 9 times in 10" — from the band nearest 90 %."""
        if not self.reliability:
            return ""
        hedged = [r for r in self.reliability if r["high"] <= 0.95]  # "100 %" says little: prefer a hedged band
        band = max(hedged or self.reliability, key=lambda r: r["count"])
        stated = round(band["confidence"] * 10)
        right = round(band["accuracy"] * 10)
        gap = percent(self.calibration_error or 0.0)
        return (f"When it says about {stated * 10} %, it is right about {right} times in 10 "
                f"(on average its confidence is off by {gap}).")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Evaluation":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def with_label_doubts(evaluation: Evaluation) -> Evaluation:
    """The evaluation with how many of the photos' labels are probably wrong and the accuracy if they are.

    Confident learning (cleanlab's `num_label_issues`) on the out-of-fold probabilities estimates how many
    labels are wrong; at most that many of the mistakes, the most confident first, are counted as right
    answers for the other end. A wrong label among the photos learned from makes the number read low by about
    one photo: the model can learn past it, the count cannot.
    """
    labels, predictions = evaluation.labels, evaluation.predictions
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[p["true"]] for p in predictions], dtype=np.int64)
    if len(y) < 20 or len(np.unique(y)) < 2 or any("probabilities" not in p for p in predictions):
        return evaluation
    from cleanlab.count import num_label_issues

    probabilities = np.array([[p["probabilities"][label] for label in labels] for p in predictions], np.float64)
    probabilities /= np.maximum(probabilities.sum(1, keepdims=True), 1e-12)
    mistakes = int((probabilities.argmax(1) != y).sum())
    with warnings.catch_warnings():  # cleanlab warns about classes with few photos; the estimate still stands
        warnings.simplefilter("ignore")
        doubted = min(int(num_label_issues(y, probabilities)), mistakes)
    evaluation.doubted_labels = doubted
    evaluation.accuracy_if_doubted_wrong = (len(y) - mistakes + doubted) / len(y)
    return evaluation


def evaluate_predictions(y_true, probabilities, labels, names=None, *, method: str = "held-out photos",
                         extra: list[dict] | None = None) -> Evaluation:
    """Accuracy (with interval), per-class precision/recall/F1, confusion matrix and calibration.

    `extra`, one dict per photo, is merged into its prediction (e.g. its fold or thumbnail).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape != (len(y_true), len(labels)):
        raise ValueError(
            f"probabilities must have shape ({len(y_true)}, {len(labels)}), got {probabilities.shape!r}."
        )
    if len(y_true) == 0:
        raise ValueError("There are no held-out images to evaluate on.")
    names = list(names) if names is not None else [f"image {i + 1}" for i in range(len(y_true))]
    y_pred = probabilities.argmax(axis=1)
    indices = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=indices, zero_division=0
    )
    matrix = confusion_matrix(y_true, y_pred, labels=indices)
    per_class = {
        label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(support[i])}
        for i, label in enumerate(labels)
    }
    confidence = probabilities[np.arange(len(y_true)), y_pred]
    correct = y_pred == y_true
    predictions = [
        {"name": names[i], "true": labels[y_true[i]], "predicted": labels[y_pred[i]],
         "confidence": float(confidence[i]),
         "probabilities": {label: float(probabilities[i, j]) for j, label in enumerate(labels)},
         **(extra[i] if extra else {})}
        for i in range(len(y_true))
    ]
    bands, error = reliability(confidence, correct)
    right = int(correct.sum())
    return Evaluation(
        accuracy=right / len(y_true),
        labels=list(labels),
        confusion_matrix=matrix.astype(int).tolist(),
        per_class=per_class,
        predictions=predictions,
        accuracy_interval=list(wilson_interval(right, len(y_true))),
        method=method,
        calibration_error=error,
        reliability=bands,
    )
