"""Reading the numbers for people: plain-language hints, never stronger than the photos behind them.

A hint drawn from fewer than ``FEW_PHOTOS`` photos is worded as a possibility, not a finding.
"""

from __future__ import annotations

from dataclasses import dataclass

from quasar_core.data.assembly import imbalance_warning
from quasar_core.wording import percent

FEW_PHOTOS = 30
POOR_ACCURACY = 0.6
MEMORISING_GAP = 0.15


@dataclass(frozen=True)
class Hint:
    kind: str  # overfitting | underfitting | confusion | imbalance | poor
    text: str


def fit_hints(history: list[dict], *, rising_epochs: int = 3) -> list[Hint]:
    """Over- and under-fitting, from the chosen head (photos learned vs photos never seen) and fine-tuning."""
    hints = []
    chosen = next((r for r in history if r.get("phase") == "head" and r.get("chosen")), None)
    if chosen is not None:
        if chosen["train_accuracy"] < 0.7:
            hints.append(Hint("underfitting", f"Under-fitting: even on the photos it learned from, the model is right "
                                              f"only {percent(chosen['train_accuracy'], 0)} of the time. Use a larger "
                                              "image size, fine-tuning, or clearer photos of each class."))
        elif chosen["train_accuracy"] - chosen["accuracy"] > MEMORISING_GAP:
            hints.append(Hint("overfitting", f"The model is right {percent(chosen['train_accuracy'], 0)} of the time "
                                             f"on photos it learned from but {percent(chosen['accuracy'], 0)} on "
                                             "photos it never saw: it memorises more than it generalises. More "
                                             "photos, or augmentation, would help most."))
    tuned = [r for r in history if r.get("phase") == "fine-tune" and r.get("val_loss") is not None]
    if len(tuned) > rising_epochs:
        best = min(range(len(tuned)), key=lambda i: tuned[i]["val_loss"])
        tail = tuned[best:]
        if len(tail) > rising_epochs and tail[-1]["loss"] < tail[0]["loss"]:
            hints.append(Hint("overfitting", f"Over-fitting while fine-tuning: after epoch {tuned[best]['epoch']} the "
                                             f"loss on the hold-out photos rose for {len(tail) - 1} epochs while the "
                                             "training loss kept falling. Fewer fine-tuning epochs would do better."))
    return hints


def confusion_hints(evaluation, *, share: float = 0.2, min_images: int = 2) -> list[Hint]:
    """A class mistaken for one other class in at least `share` of its photos (and `min_images`)."""
    hints = []
    labels, matrix = evaluation.labels, evaluation.confusion_matrix
    for i, row in enumerate(matrix):
        total = sum(row)
        for j, count in enumerate(row):
            if i == j or not total or count < min_images or count / total < share:
                continue
            if total < FEW_PHOTOS:
                text = (f"'{labels[i]}' may often be taken for '{labels[j]}' ({count} of its {total} photos; with "
                        "this few photos that is a hint, not a finding). Look at those photos.")
            else:
                text = (f"'{labels[i]}' is often taken for '{labels[j]}' ({count} of {total} photos). Look at those "
                        "photos: if they really look alike, more examples of each help most.")
            hints.append(Hint("confusion", text))
    return hints


def imbalance_hints(counts: dict[str, int]) -> list[Hint]:
    warning = imbalance_warning(counts)
    if warning is None:
        return []
    return [Hint("imbalance", warning[0].upper() + warning[1:] + " Training weighs the classes equally to make up "
                                                                 "for it.")]


def accuracy_hint(evaluation, config=None, *, poor: float = POOR_ACCURACY) -> Hint | None:
    """When accuracy is below `poor`, say so and what to try next (None when it is not).

    With the run's `config`, the advice quotes the image size it used.
    """
    if evaluation is None or evaluation.accuracy >= poor:
        return None
    size = f" than {config.image_size} px" if config is not None else ""
    sure = "" if evaluation.n_images >= FEW_PHOTOS else " (measured on few photos, so it may be better or worse)"
    return Hint(
        "poor",
        f"It named only {percent(evaluation.accuracy, 0)} of the photos correctly{sure}, so it is not ready to use "
        f"yet. To do better: use bigger images{size}, check the photos' labels on the Check my photos page, and add "
        "more photos of each class.",
    )


def all_hints(history, evaluation=None, counts=None, config=None) -> list[Hint]:
    poor = accuracy_hint(evaluation, config)
    hints = ([poor] if poor is not None else []) + fit_hints(history or [])
    if evaluation is not None:
        hints += confusion_hints(evaluation)
    if counts:
        hints += imbalance_hints(counts)
    return hints
