"""Reading the numbers for people: plain-language hints, never stronger than the photos behind them.

A hint drawn from fewer than ``FEW_PHOTOS`` photos is worded as a possibility, not a finding.
"""

from __future__ import annotations

from dataclasses import dataclass

from quasar_core.data.assembly import imbalance_warning
from quasar_core.wording import join_words, percent

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


# --- the photo check (photo_findings.Findings): advice only where its evidence holds ---------------------
GOOD_ENOUGH = 0.97  # as class_advice.GOOD_ENOUGH: a class this well recognised needs no more photos
MAX_GROWTH = 3  # more than 3x the photos a class has is not advice anyone can follow
ERROR_CUT = 0.75  # "cut its mistakes by a quarter", as class_advice's more-photos advice
LIKELY_WRONG = 0.9  # a flagged photo whose own class got under 10 % from models that never saw it
# How often each of the page's two lists held a photo whose label had been moved on purpose, as (moved, listed):
# bench_photo_check.py on flowers-full and weather4 together, 1 in 20 labels moved (bench/README.md, "photo check").
MOVED_AMONG_LIKELY_WRONG = (25, 42)
MOVED_AMONG_UNSURE = (9, 32)


def _agresti_caffo(first: float, last: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % interval of the rise last - first, two shares of the same n photos (Agresti-Caffo: +1 right, +1 wrong
    each, so 0 % and 100 % still have a width; treating them as independent makes it wider, never narrower)."""
    a, b = (first * n + 1) / (n + 2), (last * n + 1) / (n + 2)
    half = z * (a * (1 - a) / (n + 2) + b * (1 - b) / (n + 2)) ** 0.5
    return (last - first) - half, (last - first) + half


def _photos_for(curve, rise: float, count: int) -> int | None:
    """Photos to add for a quarter fewer mistakes, if its mistakes fall as a power of the photos with this rise
    from the curve's first to its last point (None: more than MAX_GROWTH x the class has, or no fall)."""
    import math

    (first_photos, first), (last_photos, _) = curve[0], curve[-1]
    error_first = max(1 - first, 0.5 / count)
    error_last = max(error_first - rise, 0.5 / count)
    if rise <= 0 or last_photos <= first_photos or error_last >= error_first:
        return None
    alpha = math.log(error_first / error_last) / math.log(last_photos / first_photos)
    needed = last_photos * (ERROR_CUT ** (-1 / alpha) - 1)
    return None if needed > MAX_GROWTH * count else int(max(5, 5 * round(needed / 5)))


def more_photos_hints(classes) -> list[Hint]:
    """"More photos of X would likely help" for each class whose learning curve still rises at its end and whose
    rise from the first to the last point is above zero by its 95 % interval; with the rise and the photos it
    would take as ranges. `classes`: class_advice.ClassAdvice (each class's recall learning from 25..100 % of its photos).
    """
    hints = []
    for advice in classes:
        curve = [(int(p), float(a)) for p, a in advice.curve]
        if advice.accuracy >= GOOD_ENOUGH or len(curve) < 2 or advice.count < 1 or curve[-1][1] <= curve[-2][1]:
            continue  # already good, or flat or falling at its end: more of the same photos may not help
        low, high = _agresti_caffo(curve[0][1], curve[-1][1], advice.count)
        if low <= 0:
            continue  # the rise could be chance
        learned = join_words([str(p) for p, _ in curve[:-1]]).replace(" and ", ", ") + f" and then {curve[-1][0]}"
        recognised = join_words([percent(a, 0) for _, a in curve])
        least = f"{low * 100:.0f}" if low >= 0.005 else "just above 0"
        few, many = _photos_for(curve, high, advice.count), _photos_for(curve, low, advice.count)
        if few is None:
            amount = ""
        elif many is None:
            amount = f" It would likely take at least {few} more to cut its mistakes by a quarter."
        elif few == many:
            amount = f" About {few} more would likely cut its mistakes by a quarter."
        else:
            amount = f" Somewhere between {few} and {many} more would likely cut its mistakes by a quarter."
        hints.append(Hint("more-photos", (
            f"More photos of '{advice.label}' would likely help. Learning from {learned} of its photos, the model "
            f"recognised {recognised} of them: still rising at the end (a rise of {least} to {high * 100:.0f} "
            f"points, with 95 % confidence).{amount}")))
    return hints


def more_photos_summary(classes) -> str:
    """One sentence when no class clearly needs more photos (more_photos_hints is empty)."""
    if all(advice.accuracy >= GOOD_ENOUGH for advice in classes):
        return "Every class is already recognised well; more photos are unlikely to change much."
    return ("No class clearly needs more photos: no learning curve below is still rising by more than chance. "
            "Clearer or more varied photos, or checking the labels, are more likely to help.")


def likely_wrong(issue) -> bool:
    """A flagged photo (label_issues.LabelIssue) its own class hardly fits: models that never saw it gave its class under
    10 %. The others are photos the model is merely unsure of: often the label is right and the photo is hard."""
    return issue.score >= LIKELY_WRONG


def list_track_record(likely: bool) -> str:
    """How often such a listing was right when we knew the answer: the measured share of moved labels among the
    photos the "likely wrong" (or the "unsure") list named."""
    moved, listed = MOVED_AMONG_LIKELY_WRONG if likely else MOVED_AMONG_UNSURE
    return (f"When we moved 1 in 20 labels of real flower and weather photos on purpose, about "
            f"{round(10 * moved / listed)} in 10 of the photos listed this way were ones we had moved "
            f"({moved} of {listed}).")


def all_hints(history, evaluation=None, counts=None, config=None) -> list[Hint]:
    poor = accuracy_hint(evaluation, config)
    hints = ([poor] if poor is not None else []) + fit_hints(history or [])
    if evaluation is not None:
        hints += confusion_hints(evaluation)
    if counts:
        hints += imbalance_hints(counts)
    return hints
