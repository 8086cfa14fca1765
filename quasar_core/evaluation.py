"""Held-out evaluation: the numbers come from scikit-learn, the plain words from here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Evaluation:
    accuracy: float
    labels: list[str]
    confusion_matrix: list[list[int]]  # rows = true labels, columns = predicted, in `labels` order
    per_class: dict[str, dict]  # label -> precision, recall, f1, support
    predictions: list[dict] = field(default_factory=list)  # per image: name, true, predicted, confidence, probabilities

    @property
    def n_images(self) -> int:
        return int(sum(sum(row) for row in self.confusion_matrix))

    def mistakes(self, *, true_label: str | None = None, predicted_label: str | None = None) -> list[dict]:
        """Misclassified images, most confidently wrong first, optionally for one confusion cell."""
        wrong = [
            p for p in self.predictions
            if p["true"] != p["predicted"]
            and (true_label is None or p["true"] == true_label)
            and (predicted_label is None or p["predicted"] == predicted_label)
        ]
        return sorted(wrong, key=lambda p: -p["confidence"])

    def cell(self, true_label: str, predicted_label: str) -> list[dict]:
        """Every image of one confusion-matrix cell (right or wrong), most confident first."""
        chosen = [p for p in self.predictions if p["true"] == true_label and p["predicted"] == predicted_label]
        return sorted(chosen, key=lambda p: -p["confidence"])

    def summary(self) -> str:
        right = int(round(self.accuracy * self.n_images))
        return (
            f"The model named {right} of {self.n_images} images it had never seen correctly "
            f"({self.accuracy:.1%})."
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Evaluation":
        return cls(**{k: data[k] for k in ("accuracy", "labels", "confusion_matrix", "per_class")},
                   predictions=list(data.get("predictions", [])))


def evaluate_predictions(y_true, probabilities, labels, names=None) -> Evaluation:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of predicted probabilities."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

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
    predictions = [
        {
            "name": names[i],
            "true": labels[y_true[i]],
            "predicted": labels[y_pred[i]],
            "confidence": float(probabilities[i, y_pred[i]]),
            "probabilities": {label: float(probabilities[i, j]) for j, label in enumerate(labels)},
        }
        for i in range(len(y_true))
    ]
    return Evaluation(
        accuracy=float(accuracy_score(y_true, y_pred)),
        labels=list(labels),
        confusion_matrix=matrix.astype(int).tolist(),
        per_class=per_class,
        predictions=predictions,
    )
