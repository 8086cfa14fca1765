"""Using a trained run on new photos: the answer, its probabilities, and whether the photo looks like any class.

One pass through the model gives both the probabilities and the pooled features the
familiarity score needs ("none of these"). Each photo gets one of three answers (familiarity.py):
familiar (the label), unusual (the closest label, said with doubt) or unknown (none of the classes).
The CLI's ``predict`` and the dashboard's Predict page both call ``classify_photos`` and
``answer_words``, so they answer the same way; confidence reads as a person reads it, never "100 %".
"""

from __future__ import annotations

import numpy as np

from quasar_core.familiarity_drift import drift_summary
from quasar_core.runs.learned import classifier_of
from quasar_core.runs.serving import served_model
from quasar_core.wording import confidence as confidence_words, join_words


ANSWERS = ("familiar", "unusual", "unknown")


def classify_photos(run, photos, *, base_loader=None) -> list[dict]:
    """[(name, uint8 RGB pixels)] -> per photo {"image", "label", "probabilities", "familiarity", "unknown",
    "unusual", "answer"}; `answer` is "familiar", "unusual" or "unknown" (at most one of the flags is True).

    `familiarity` is None (`unknown` and `unusual` False, `answer` "familiar": the label, unchecked) for a model
    opened from a file without a familiarity reference.
    """
    if not photos:
        return []
    served = served_model(run, base_loader=base_loader)  # the feature pass (int8 where trained so) + the head
    probabilities, features = served.predict_proba([pixels for _, pixels in photos], with_features=True)
    familiarity = served.familiarity_
    scores = unknown = unusual = None
    if familiarity is not None and features is not None:
        scores, unknown, unusual = familiarity.answers(features)
    results = []
    for row, (name, _) in enumerate(photos):
        best = int(np.argmax(probabilities[row]))
        flags = (False, False) if unknown is None else (bool(unknown[row]), bool(unusual[row]))
        results.append({
            "image": name, "label": run.labels[best],
            "probabilities": {label: float(p) for label, p in zip(run.labels, probabilities[row])},
            "familiarity": None if scores is None else float(scores[row]),
            "unknown": flags[0], "unusual": flags[1],
            "answer": "unknown" if flags[0] else "unusual" if flags[1] else "familiar",
        })
    return results


def answer_of(result: dict) -> str:
    """"familiar", "unusual" or "unknown" (a result made before the unusual band has no "answer": its flags)."""
    if "answer" in result:
        return result["answer"]
    return "unknown" if result.get("unknown") else "unusual" if result.get("unusual") else "familiar"


def answer_words(result: dict, labels: list[str] | None = None) -> str:
    """The answer as a person reads it (its confidence never "100 %" nor "0 %"):

    familiar  "It is most likely ants (more than 99 % sure)"
    unusual   "Not sure: this photo looks unusual for your classes; the closest is ants (61.0 % sure)"
    unknown   "This doesn't look like any of your classes"
    `labels` is not needed (kept for the callers that pass the run's labels).
    """
    answer = answer_of(result)
    if answer == "unknown":
        return "This doesn't look like any of your classes"
    sure = f"{confidence_words(result['probabilities'][result['label']])} sure"
    if answer == "unusual":
        return f"Not sure: this photo looks unusual for your classes; the closest is {result['label']} ({sure})"
    return f"It is most likely {result['label']} ({sure})"


def drift_sentence(results: list[dict]) -> str | None:
    """How many of a batch of new photos look unlike the training photos (None without a reference)."""
    scored = [r for r in results if r["familiarity"] is not None]
    if not scored:
        return None
    summary = drift_summary(np.array([r["familiarity"] for r in scored]), np.array([r["unknown"] for r in scored]))
    return summary["sentence"]


def unknown_names(results: list[dict]) -> str:
    return join_words([r["image"] for r in results if r["unknown"]])


def unusual_names(results: list[dict]) -> str:
    return join_words([r["image"] for r in results if answer_of(r) == "unusual"])


def familiar_threshold(run, *, base_loader=None) -> float:
    """The familiarity below which a photo counts as unlike the training photos (for the histogram)."""
    familiarity = getattr(classifier_of(run, base_loader=base_loader), "familiarity_", None)
    return 1.0 - familiarity.familiar_share if familiarity is not None else 0.0


def unusual_threshold(run, *, base_loader=None) -> float:
    """The familiarity below which a photo that is not unknown counts as unusual (0.0 without a reference)."""
    familiarity = getattr(classifier_of(run, base_loader=base_loader), "familiarity_", None)
    return float(familiarity.unusual_below) if familiarity is not None else 0.0
