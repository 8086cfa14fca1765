"""The Present page's support: one screen that shows a model to a room, in words anyone reads.

Everything comes from the run folder (its evaluation, data report, status and comparison) and
the app's own paths: "where it looked" from ui.explaining, the live answers from ui.predicting
(the familiar / unusual / unknown answers of "none of these"). Overlays are kept per server
(st.cache_data), so the next person to present the same model waits for none of them.
Nothing here imports TensorFlow: the model loads when an overlay or an answer is first asked for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from quasar_core.errors import QuasarError
from quasar_core.runs.folder import Run
from quasar_core.runs.pipeline import comparison_of
from quasar_core.wording import confidence, duration, join_words, plural, right_of_100
from ui import explaining, predicting

EXAMPLES = 3
MISTAKES = 4


@dataclass(frozen=True)
class Summary:
    """What the Present page shows for one model, all in words (and the photos to show)."""

    headline: str  # "Right on about 93 of 100 photos it had never seen (90–96)"
    headline_note: str  # what the numbers in brackets mean
    learned: list[str] = field(default_factory=list)  # photos per class, time taken, against a blank start
    counts: dict[str, int] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)  # right answers with a saved photo, one class each
    mistakes: list[dict] = field(default_factory=list)  # wrong answers with a saved photo, surest first
    fair: list[str] = field(default_factory=list)  # why its mistakes are fair


def summary(run: Run) -> Summary:
    metrics = run.metrics
    if metrics is None:
        return Summary("Its accuracy was not measured", "It came from a file without a test: try it on photos "
                       "you know below.", _learned(run))
    interval = tuple(metrics.accuracy_interval) if metrics.accuracy_interval else None
    note = (f"Each of its {plural(metrics.n_images, 'photo')} was answered by a model that had not learned from it. "
            "The numbers in brackets are the range the true score very likely lies in, given that many photos.")
    return Summary(right_of_100(metrics.accuracy, interval, metrics.n_images), note, _learned(run),
                   dict(run.report.counts) if run.report else {}, _examples(run), _mistakes(run), _fair(metrics))


def _learned(run: Run) -> list[str]:
    lines = []
    counts = dict(run.report.counts) if run.report else {}
    if counts:
        sizes = set(counts.values())
        each = (f"{plural(sizes.pop(), 'photo')} each of {join_words(list(counts))}" if len(sizes) == 1
                else join_words([f"{label} ({count})" for label, count in counts.items()]))
        lines.append(f"It learned from {plural(sum(counts.values()), 'photo')}: {each}.")
    if run.status.seconds and not run.opened_from_file:
        start = ("a blank network" if run.config.weights == "none"
                 else "a network that had already learned to see from 1.2 million photos")
        lines.append(f"It took {duration(run.status.seconds)} on this computer, starting from {start}.")
    compared = _against_a_blank_start(run)
    if compared:
        lines.append(compared)
    return lines


def _against_a_blank_start(run: Run) -> str | None:
    """The comparison with training from scratch on the same photos, where the run has one: the small network
    trained from scratch against this model on the photos neither learned from; a comparison saved before it
    (VGG16 frozen at random weights) named as what it was."""
    saved = comparison_of(run) or {}
    results = saved.get("results") or []
    full = {kind: max((r for r in results if r["weights"] == kind), key=lambda r: r["fraction"], default=None)
            for kind in ("imagenet", "scratch", "none")}

    def score(accuracy: float, interval) -> str:
        low, high = interval or (accuracy, accuracy)
        return f"about {accuracy * 100:.0f} of 100 ({low * 100:.0f}–{high * 100:.0f})"

    scratch, transfer, frozen = full["scratch"], full["imagenet"], full["none"]
    if scratch is not None and "against" in scratch:
        return (f"A small network trained from scratch on the same photos got "
                f"{score(scratch['accuracy'], scratch.get('accuracy_interval'))} right, against "
                f"{score(scratch['against'], scratch.get('against_interval'))} for this one, on "
                f"{scratch['test_images']} photos neither had learned from.")
    if transfer is None or frozen is None:
        return None
    return (f"VGG16 without its ImageNet knowledge (random weights, frozen) got "
            f"{score(frozen['accuracy'], frozen.get('accuracy_interval'))} right on the same photos, against "
            f"{score(transfer['accuracy'], transfer.get('accuracy_interval'))} when it starts from what it already "
            "knew.")


def _examples(run: Run) -> list[dict]:
    """Up to EXAMPLES right answers with a saved photo, each of another class, the surest of its class first."""
    chosen, classes = [], set()
    right = sorted((p for p in run.metrics.predictions if p["true"] == p["predicted"] and run.example_path(p)),
                   key=lambda p: -p["confidence"])
    for prediction in right:
        if prediction["true"] not in classes:
            chosen.append(prediction)
            classes.add(prediction["true"])
        if len(chosen) == EXAMPLES:
            break
    return chosen


def _mistakes(run: Run) -> list[dict]:
    """Its most common kind of mistake first (the two classes it mixes up most), then the others; surest first."""
    wrong = [p for p in run.metrics.mistakes() if run.example_path(p)]
    pair = _most_mixed(run.metrics.mistakes())
    return sorted(wrong, key=lambda p: frozenset((p["true"], p["predicted"])) != pair)[:MISTAKES]


def _most_mixed(wrong: list[dict]) -> frozenset | None:
    pairs = Counter(frozenset((p["true"], p["predicted"])) for p in wrong)
    return pairs.most_common(1)[0][0] if pairs else None


def _fair(metrics) -> list[str]:
    """Why its mistakes are fair, in checkable sentences: which classes they are between, and how sure it was."""
    wrong = metrics.mistakes()
    if not wrong:
        return [f"It made no mistakes on these {plural(metrics.n_images, 'photo')}."]
    lines = []
    pair = _most_mixed(wrong)
    count = sum(frozenset((p["true"], p["predicted"])) == pair for p in wrong)
    a, b = sorted(pair)
    share = ("Its one mistake is" if len(wrong) == 1 else f"All {len(wrong)} of its mistakes are" if count == len(wrong)
             else f"{count} of its {len(wrong)} mistakes are")
    if count >= 2 or len(wrong) == 1:
        lines.append(f"{share} between {a} and {b}: two classes that can look alike.")
    else:
        lines.append(f"Its {len(wrong)} mistakes are spread over different classes: it mixes up no two of them often.")
    right = [p["confidence"] for p in metrics.predictions if p["true"] == p["predicted"]]
    unsure, sure = float(np.mean([p["confidence"] for p in wrong])), float(np.mean(right)) if right else 0.0
    if right and unsure < sure:
        lines.append(f"When it is wrong it is usually less sure: {confidence(unsure, 0)} on average, against "
                     f"{confidence(sure, 0)} when it is right.")
    return lines


def mistake_caption(prediction: dict) -> str:
    return (f"Really {prediction['true']}; it said {prediction['predicted']} "
            f"({confidence(prediction['confidence'], 0)} sure)")


def example_caption(prediction: dict) -> str:
    return f"{prediction['true']} ({confidence(prediction['confidence'], 0)} sure): where it looked, red mattered most"


def picture(run: Run, prediction: dict) -> str | None:
    path = run.example_path(prediction)
    return str(path) if path is not None else None


def overlay(run: Run, prediction: dict):
    """Where the model looked for its answer on a saved photo (None when it cannot be shown), kept per server."""
    try:
        return _overlay(str(run.path), str(run.status.finished), prediction.get("example", ""), prediction["predicted"],
                        run, prediction)
    except QuasarError:
        return None


@st.cache_data(max_entries=96, show_spinner=False)
def _overlay(run_path: str, finished: str, example: str, predicted: str, _run: Run, _prediction: dict):
    return explaining.example_overlay(_run, _prediction)


# --- try it ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    kind: str  # "familiar" | "unusual" | "unknown"
    text: str
    name: str  # the photo's name


def answer(result: dict, labels: list[str]) -> Answer:
    """The three answers of "none of these", in words a room reads (never "100 %")."""
    label = result["label"]
    sure = confidence(result["probabilities"][label])
    if result.get("unknown"):
        return Answer("unknown", f"This doesn't look like any of your classes ({join_words(list(labels))}).",
                      result["image"])
    if result.get("unusual"):
        return Answer("unusual", f"Not sure: this photo looks unusual for your classes; the closest is {label} "
                                 f"({sure} sure).", result["image"])
    return Answer("familiar", f"It says {label} ({sure} sure).", result["image"])


def try_it(run: Run, uploads: list[tuple[str, bytes]]) -> tuple[list[Answer], list[str]]:
    """Answers for the photos shown to it, through the app's one prediction path, and a message per unreadable one."""
    results, problems = predicting.classify(run, uploads)
    return [answer(result, run.labels) for result in results], problems
