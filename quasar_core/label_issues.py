"""The photo check's label issues: photos that may be labelled wrongly, found from VGG16's pooled features.

Confident learning (cleanlab) on out-of-fold probabilities from an ensemble: the mean of a standardised
logistic regression (C=0.01, k folds), a leave-one-out 10-nearest-neighbour vote and a nearest-class-centroid
softmax, the last two on power-normalised features (signed square root, unit length). The ensemble finds
more of the wrong labels than one logistic regression, and no other choice tried beat it (measurements:
bench/README.md, "Why the engine is built as it is"). cleanlab lists the photos whose prediction is not
their label, ranked by self-confidence; ``score`` = 1 - cleanlab's label quality (1 - probability of the
given label), higher = more likely wrong; the suggestion is the most probable other class. Caller's
out-of-fold probabilities take the logistic regression's place. How often the suggestion is right is
bounded by the features, not by the method.

photo_findings.diagnose runs it with the other findings.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

LR_C = 0.01
NEIGHBOURS = 10
CENTROID_TEMPERATURE = 0.02


@dataclass(frozen=True)
class LabelIssue:
    file: str
    given: str
    suggested: str
    score: float  # 0..1, higher = more likely wrongly labelled


def _logistic(c=LR_C):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))


def default_fit_predict(train_features, train_labels, test_features) -> np.ndarray:
    """The learning curves' head: logistic regression on standardised features (columns: class ids 0..max).

    The ensemble's own model, so diagnose reuses logistic_member's predictions for its 100 % point."""
    model = _logistic().fit(np.asarray(train_features, np.float32), train_labels)
    out = np.zeros((len(test_features), int(np.max(train_labels)) + 1))
    out[:, model.classes_] = model.predict_proba(np.asarray(test_features, np.float32))
    return out


def logistic_member(x, y, k, splits, views) -> np.ndarray:
    """The logistic regression's out-of-fold probabilities; `views` (augmented copies) join its training and
    its predictions are averaged over them."""
    x = x.astype(np.float32)  # half the time of float64 at 5,000 photos, same predictions
    views = None if views is None else views.astype(np.float32)
    p = np.zeros((len(y), k))
    for train, test in splits:
        xs = x[train] if views is None else np.concatenate([x[train], *views[:, train]])
        model = _logistic().fit(xs, np.tile(y[train], 1 if views is None else 1 + len(views)))
        probs = model.predict_proba(x[test])
        if views is not None:
            probs = np.mean([probs, *(model.predict_proba(v[test]) for v in views)], axis=0)
        p[np.ix_(test, model.classes_)] = probs
    return p


def ensemble_probabilities(lr, z, y, k, splits, neighbours, distances) -> np.ndarray:
    """The ensemble's out-of-fold probabilities: the mean of `lr` (the logistic regression's), the neighbours'
    vote (`neighbours`, `distances`: each photo's nearest others in `z`, itself left out) and the centroids'."""
    return np.mean([lr, _knn_member(y, k, neighbours, distances), _centroid_member(z, y, k, splits)], axis=0)


def _knn_member(y, k, neighbours, distances):
    cosine = distances**2 / 2  # unit vectors: cosine distance
    weights = np.exp(-cosine / max(float(np.median(cosine)), 1e-12))
    p = np.full((len(y), k), 1e-2)
    for c in range(k):
        p[:, c] += (weights * (y[neighbours] == c)).sum(1)
    return p / p.sum(1, keepdims=True)


def _centroid_member(z, y, k, splits):
    p = np.zeros((len(y), k))
    for train, test in splits:
        centres = np.stack([z[train][y[train] == c].mean(0) for c in range(k)])
        centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
        logits = z[test] @ centres.T / CENTROID_TEMPERATURE
        e = np.exp(logits - logits.max(1, keepdims=True))
        p[test] = e / e.sum(1, keepdims=True)
    return p


def ranked_label_issues(y, probs, names, files) -> tuple[LabelIssue, ...]:
    """cleanlab's label issues among the photos, most likely wrong first, capped to what a person can check."""
    from cleanlab.count import num_label_issues
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = int(num_label_issues(y, probs))
        ranked = find_label_issues(y, probs, filter_by="predicted_neq_given",
                                   return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(y, probs, method="self_confidence")
    others = probs.copy()
    others[np.arange(len(y)), y] = -1
    suggested = others.argmax(1)
    keep = ranked[: max(1, min(max(10, 2 * expected), len(y) // 4))]
    return tuple(LabelIssue(files[i], names[y[i]], names[suggested[i]], round(float(1 - quality[i]), 4)) for i in keep)
