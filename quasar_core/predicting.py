"""Using a trained run on new photos: the answer, its probabilities, and whether the photo looks like any class.

One pass through the model gives both the probabilities and the pooled features the
familiarity score needs ("none of these"). The CLI's ``predict`` and the dashboard's Predict
page both call ``classify_photos``, so they answer the same way.
"""

from __future__ import annotations

import numpy as np

from quasar_core.familiarity import drift_summary
from quasar_core.runs.learned import classifier_of
from quasar_core.runs.serving import served_model
from quasar_core.wording import confidence as confidence_words, join_words


def classify_photos(run, photos, *, base_loader=None) -> list[dict]:
    """[(name, uint8 RGB pixels)] -> per photo {"image", "label", "probabilities", "familiarity", "unknown"}.

    `familiarity` is None (and `unknown` False) for a model opened from a file without a familiarity reference.
    """
    if not photos:
        return []
    served = served_model(run, base_loader=base_loader)  # the feature pass (int8 where trained so) + the head
    probabilities, features = served.predict_proba([pixels for _, pixels in photos], with_features=True)
    familiarity = served.familiarity_
    scores = unknown = None
    if familiarity is not None and features is not None:
        scores, unknown = familiarity.familiarity(features), familiarity.is_unknown(features)
    results = []
    for row, (name, _) in enumerate(photos):
        best = int(np.argmax(probabilities[row]))
        results.append({
            "image": name, "label": run.labels[best],
            "probabilities": {label: float(p) for label, p in zip(run.labels, probabilities[row])},
            "familiarity": None if scores is None else float(scores[row]),
            "unknown": False if unknown is None else bool(unknown[row]),
        })
    return results


def answer_words(result: dict, labels: list[str]) -> str:
    """"ants (97.0 %)", or "does not look like any of: ants, bees (closest: ants, 61 %)"."""
    confidence = result["probabilities"][result["label"]]
    if result["unknown"]:
        return f"does not look like any of: {', '.join(labels)} (closest: {result['label']}, {confidence_words(confidence, 0)})"
    return f"{result['label']} ({confidence_words(confidence)})"


def drift_sentence(results: list[dict]) -> str | None:
    """How many of a batch of new photos look unlike the training photos (None without a reference)."""
    scored = [r for r in results if r["familiarity"] is not None]
    if not scored:
        return None
    summary = drift_summary(np.array([r["familiarity"] for r in scored]), np.array([r["unknown"] for r in scored]))
    return summary["sentence"]


def unknown_names(results: list[dict]) -> str:
    return join_words([r["image"] for r in results if r["unknown"]])


def familiar_threshold(run, *, base_loader=None) -> float:
    """The familiarity below which a photo counts as unlike the training photos (for the histogram)."""
    familiarity = getattr(classifier_of(run, base_loader=base_loader), "familiarity_", None)
    return 1.0 - familiarity.familiar_share if familiarity is not None else 0.0
