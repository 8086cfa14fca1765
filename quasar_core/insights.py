"""Reading the curves and the confusion matrix for people: plain-language hints from numbers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hint:
    kind: str  # overfitting | underfitting | confusion | imbalance | poor | good
    text: str


def curve_hints(history: list[dict], *, rising_epochs: int = 3) -> list[Hint]:
    """Over-fitting (validation loss rising for several epochs while training loss falls) and under-fitting."""
    hints = []
    rows = [r for r in history if r.get("loss") is not None]
    val = [r for r in rows if r.get("val_loss") is not None]
    if len(val) > rising_epochs:
        best = min(range(len(val)), key=lambda i: val[i]["val_loss"])
        tail = val[best:]
        if len(tail) > rising_epochs and tail[-1]["loss"] < tail[0]["loss"]:
            hints.append(Hint(
                "overfitting",
                f"Over-fitting: after epoch {val[best]['epoch']} the validation loss rose for {len(tail) - 1} epochs "
                "while the training loss kept falling — the model started memorising its training images. "
                "More images, augmentation, or fewer epochs would help.",
            ))
    if rows:
        last = rows[-1]
        if last.get("accuracy") is not None and last["accuracy"] < 0.7:
            hints.append(Hint(
                "underfitting",
                f"Under-fitting: even on its training images the model is right only {last['accuracy']:.0%} of the "
                "time. Train for more epochs, use a larger image size, or fine-tune.",
            ))
        elif (last.get("val_accuracy") is not None and last.get("accuracy") is not None
              and last["accuracy"] - last["val_accuracy"] > 0.15):
            hints.append(Hint(
                "overfitting",
                f"The model is right {last['accuracy']:.0%} of the time on training images but "
                f"{last['val_accuracy']:.0%} on validation images: it generalises less well than it memorises. "
                "More images or augmentation would help.",
            ))
    return hints


def confusion_hints(evaluation, *, share: float = 0.2, min_images: int = 2) -> list[Hint]:
    """A class mistaken for one other class in at least `share` of its images (and `min_images`)."""
    hints = []
    labels, matrix = evaluation.labels, evaluation.confusion_matrix
    for i, row in enumerate(matrix):
        total = sum(row)
        if not total:
            continue
        for j, count in enumerate(row):
            if i != j and count >= min_images and count / total >= share:
                hints.append(Hint(
                    "confusion",
                    f"'{labels[i]}' is often taken for '{labels[j]}' ({count} of {total} images). Look at those "
                    "images: if they really look alike, more examples of each help most.",
                ))
    return hints


def imbalance_hints(counts: dict[str, int], *, ratio: float = 3.0) -> list[Hint]:
    if len(counts) < 2:
        return []
    largest = max(counts, key=counts.get)
    smallest = min(counts, key=counts.get)
    if counts[smallest] and counts[largest] / counts[smallest] >= ratio:
        return [Hint(
            "imbalance",
            f"Imbalanced classes: '{largest}' has {counts[largest]} images but '{smallest}' only {counts[smallest]}. "
            "The training weighs classes equally to compensate, but more images of the small class help most.",
        )]
    return []


POOR_ACCURACY = 0.6


def accuracy_hint(evaluation, config=None, *, poor: float = POOR_ACCURACY) -> Hint | None:
    """When held-out accuracy is below `poor`, say so and what to try next (None when it is not).

    With the run's `config`, the advice quotes the epochs and image size it used.
    """
    if evaluation is None or evaluation.accuracy >= poor:
        return None
    epochs = f" than {config.epochs}" if config is not None else ""
    size = f" than {config.image_size} px" if config is not None else ""
    return Hint(
        "poor",
        f"It named only {evaluation.accuracy:.0%} of the held-out photos correctly, so it is not ready to use "
        f"yet. To do better: train for more epochs{epochs}, use bigger images{size}, and add more photos of "
        "each class.",
    )


def all_hints(history, evaluation=None, counts=None, config=None) -> list[Hint]:
    poor = accuracy_hint(evaluation, config)
    hints = ([poor] if poor is not None else []) + curve_hints(history)
    if evaluation is not None:
        hints += confusion_hints(evaluation)
    if counts:
        hints += imbalance_hints(counts)
    return hints
