"""The model that helps label: learns from the labelled photos' cached features, pre-labels the rest, picks
the photos to ask about next, and marks the pre-labels sure enough to accept in bulk (band.py).

``LabelAssistant`` is a scikit-learn-style estimator: ``fit(features, targets)`` learns the engine's own head
(square root, standardise, softmax regression; its regularisation chosen by cross-validation, its confidence
calibrated by a temperature fitted on the out-of-fold answers) keeping each fold's head (for the confident
band's out-of-fold recalibration) and the "none of these" reference; ``suggest(pool_features)`` answers for the
unlabelled photos. ``from_learned`` builds one from what a trained run keeps (its head, familiarity reference
and out-of-fold answers) for ``quasar suggest``: without the labelled photos' features it cannot average over
look-alikes, so its band is the run's calibrated confidence alone (smaller, see bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from quasar_core.label_assist.band import (BandRule, confident_band, neighbours, recalibration, smoothing_k,
                                           with_temperature)
from quasar_core.label_assist.strategy import (DEFAULT_POOL_FACTOR, DEFAULT_STRATEGY, STRATEGIES, LazyView,
                                               feature_view, select)

DEFAULT_COUNT = 20
DEFAULT_RIGHT = 0.97
MAX_FOLDS = 10
ANSWERS = ("familiar", "unusual", "unknown")
_CHUNK = 1024
REASONS = ("uncertain", "diverse", "confident")


@dataclass(frozen=True)
class Suggestion:
    """One unlabelled photo: the model's answer and why it is listed."""

    position: int  # row in the features given to suggest()
    file: str
    suggested: str
    confidence: float  # calibrated
    familiarity: float | None
    answer: str  # "familiar" | "unusual" | "unknown"
    reason: str  # "uncertain" | "diverse" | "confident"

    def to_dict(self) -> dict:
        return {"file": self.file, "suggested": self.suggested, "confidence": self.confidence,
                "familiarity": self.familiarity, "answer": self.answer, "reason": self.reason}


@dataclass
class Suggestions:
    """What suggest() found: the photos to label next, the confident band, every photo's answer."""

    next: list[Suggestion]
    confident: list[Suggestion]
    band: BandRule | None
    pool_size: int
    answers: dict[str, int] = field(default_factory=dict)  # how many photos got each of the three answers

    @property
    def coverage(self) -> float:
        return len(self.confident) / self.pool_size if self.pool_size else 0.0

    def to_dict(self) -> dict:
        band = self.band
        return {"next": [s.to_dict() for s in self.next],
                "confident": {"photos": [s.to_dict() for s in self.confident],
                              "threshold": None if band is None else band.threshold,
                              "stated_error": None if band is None else band.stated_error,
                              "checked_on": None if band is None else band.checked_on,
                              "coverage": self.coverage},
                "pool": self.pool_size, "answers": dict(self.answers)}


class LabelAssistant:
    """Pre-labels unlabelled photos and picks the ones to ask about next (see the module docstring).

    Parameters (keywords only): count (photos to ask about at once), strategy (strategy.STRATEGIES),
    right (the share of the confident band's pre-labels that should be right), pool_factor (how many times
    `count` most uncertain photos the diverse strategies choose among), familiarity (fit the "none of
    these" reference: only familiar photos enter the confident band), seed.

    Learned: ``head_`` (temperature included), ``strength_``, ``classes_`` (int ids), ``fold_heads_`` and
    ``tested_`` (the tested photos' features, class ids and folds), ``oof_confidence_`` and ``oof_correct_``
    (each tested labelled photo answered by a model that never saw it), ``accuracy_``, ``n_tested_``,
    ``familiarity_`` (or None), ``labelled_view_``.
    """

    def __init__(self, *, count=DEFAULT_COUNT, strategy=DEFAULT_STRATEGY, right=DEFAULT_RIGHT,
                 pool_factor=DEFAULT_POOL_FACTOR, familiarity=True, seed=0):
        self.count = count
        self.strategy = strategy
        self.right = right
        self.pool_factor = pool_factor
        self.familiarity = familiarity
        self.seed = seed

    def _check_params(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}.")
        if not 0.5 <= float(self.right) < 1:
            raise ValueError(f"right must be at least 0.5 and below 1; got {self.right!r}.")
        if isinstance(self.count, bool) or not isinstance(self.count, (int, np.integer)) or self.count < 1:
            raise ValueError(f"count must be a whole number of at least 1; got {self.count!r}.")

    def fit(self, features, targets, *, n_classes: int | None = None, tested=None) -> "LabelAssistant":
        """Learn from (n, d) pooled features and their class ids (every class at least 2 photos). `tested`
        (a boolean mask) says which photos the accuracy and the band are measured on (default: all); the others
        are only learned from (photos picked because they were hard, or pre-labels accepted in bulk, would
        make the measure lean)."""
        from quasar_core.data.split import cross_validation_folds
        from quasar_core.familiarity import FamiliarityModel
        from quasar_core.head import STRENGTHS, fit_head, fit_temperature, softmax

        self._check_params()
        x = np.asarray(features, dtype=np.float32)
        y = np.asarray(targets, dtype=np.int64)
        if x.ndim != 2 or len(x) != len(y):
            raise ValueError(f"features {x.shape} and targets {y.shape} must have one row per photo.")
        n_classes = int(n_classes if n_classes is not None else y.max() + 1)
        counts = np.bincount(y, minlength=n_classes)
        if (counts[counts > 0] < 2).any() or (counts > 0).sum() < 2:
            raise ValueError("Label assist needs at least 2 labelled photos of each of at least 2 classes.")
        assignment = cross_validation_folds(y, n_folds=int(max(2, min(MAX_FOLDS, counts[counts > 0].min()))),
                                            seed=self.seed).assignment
        tested = np.ones(len(y), bool) if tested is None else np.asarray(tested, bool)
        if tested.shape != y.shape or not tested.any():
            tested = np.ones(len(y), bool)
        # The engine's recipe (crossval.cross_validate), keeping each fold's heads: each candidate strength
        # learns on the other folds and answers the fold's tested photos; the least log loss wins.
        folds = np.unique(assignment[tested])
        logits = {s: np.zeros((len(y), n_classes), np.float32) for s in STRENGTHS}
        heads: dict = {s: [] for s in STRENGTHS}
        for fold in folds:
            test = tested & (assignment == fold)
            for strength in STRENGTHS:
                fold_head = fit_head(x[assignment != fold], y[assignment != fold], n_classes=n_classes,
                                     strength=strength)
                logits[strength][test] = fold_head.logits(x[test])
                heads[strength].append(fold_head)

        def log_loss(strength) -> float:
            p = softmax(logits[strength][tested]).astype(np.float64)
            return float(-np.mean(np.log(np.clip(p[np.arange(tested.sum()), y[tested]], 1e-12, None))))

        strength = min(STRENGTHS, key=log_loss)
        head = fit_head(x, y, n_classes=n_classes, strength=strength)
        head.temperature = fit_temperature(logits[strength][tested], y[tested])
        for fold_head in heads[strength]:
            fold_head.temperature = head.temperature
        oof = softmax(logits[strength][tested] / head.temperature)
        self.head_, self.strength_, self.classes_ = head, float(strength), np.arange(n_classes)
        self.fold_heads_ = heads[strength]
        self.tested_ = (x[tested], y[tested], np.searchsorted(folds, assignment[tested]))
        self.oof_confidence_ = oof.max(axis=1).astype(np.float64)
        self.oof_correct_ = oof.argmax(axis=1) == y[tested]
        self.n_tested_ = int(tested.sum())
        self.accuracy_ = float(self.oof_correct_.mean())
        self.familiarity_ = FamiliarityModel(seed=self.seed).fit(x, y) if self.familiarity else None
        self.labelled_view_ = feature_view(x)
        return self

    @classmethod
    def from_learned(cls, head, *, oof_confidence, oof_correct, familiarity=None, **params) -> "LabelAssistant":
        """An assistant from what a trained run keeps: its head, its out-of-fold answers' confidence and
        correctness (metrics.json), its familiarity reference (or None)."""
        assistant = cls(**params)
        assistant._check_params()
        assistant.head_, assistant.familiarity_ = head, familiarity
        assistant.strength_, assistant.classes_ = float("nan"), np.arange(len(head.bias))
        assistant.fold_heads_, assistant.tested_, assistant.labelled_view_ = [], None, None
        assistant.oof_confidence_ = np.asarray(oof_confidence, dtype=np.float64)
        assistant.oof_correct_ = np.asarray(oof_correct, bool)
        assistant.n_tested_ = int(len(assistant.oof_correct_))
        assistant.accuracy_ = float(assistant.oof_correct_.mean()) if assistant.n_tested_ else float("nan")
        return assistant

    def _check_fitted(self):
        if getattr(self, "head_", None) is None:
            raise ValueError("This LabelAssistant is not fitted yet: call fit() or from_learned() first.")

    def answers(self, features) -> tuple[np.ndarray | None, np.ndarray]:
        """(familiarity or None, answer per photo: "familiar" / "unusual" / "unknown")."""
        self._check_fitted()
        model = self.familiarity_
        answer = np.full(len(features), "familiar", dtype=object)
        if model is None:
            return None, answer
        if hasattr(model, "answers"):  # the three answers in one scoring
            familiarity, unknown, unusual = model.answers(features)
        else:
            familiarity = model.familiarity(features)
            unknown, unusual = model.is_unknown(features), np.zeros(len(features), bool)
        answer[np.asarray(unusual, bool)] = "unusual"
        answer[np.asarray(unknown, bool)] = "unknown"
        return familiarity, answer

    def _sure(self, x, view, probabilities):
        """(the probabilities the pre-labels and the band use, out-of-fold confidence and correctness): averaged
        over look-alike unlabelled photos and recalibrated out of fold when the labelled photos are known."""
        k = smoothing_k(len(x))
        if k < 2 or not self.fold_heads_:
            return probabilities, self.oof_confidence_, self.oof_correct_
        around = neighbours(view, view, k)  # a photo is its own nearest
        averaged = probabilities[around].mean(axis=1)
        features, targets, folds = self.tested_
        near = neighbours(feature_view(features), view, k - 1)
        oof = np.empty((len(targets), probabilities.shape[1]))
        for fold, fold_head in enumerate(self.fold_heads_):
            rows = np.flatnonzero(folds == fold)
            needed, where = np.unique(near[rows], return_inverse=True)  # only the look-alikes these photos have
            pool = fold_head.probabilities(x[needed]).astype(np.float64)[where.reshape(len(rows), -1)]
            oof[rows] = (fold_head.probabilities(features[rows]) + pool.sum(axis=1)) / k
        temperature = recalibration(oof, targets)
        oof = with_temperature(oof, temperature)
        return with_temperature(averaged, temperature), oof.max(axis=1), oof.argmax(axis=1) == targets

    def suggest(self, features, *, files=None, labels=None, count=None, probabilities=None) -> Suggestions:
        """The photos to label next and the confident band, for (m, d) unlabelled photos' features.

        `files` names them (default "photo 1"…), `labels` names the classes (default "0"…). `probabilities`
        may be given (a fine-tuned run answers through its own network)."""
        self._check_fitted()
        x = np.asarray(features, dtype=np.float32)
        m = len(x)
        files = list(files) if files is not None else [f"photo {i + 1}" for i in range(m)]
        labels = list(labels) if labels is not None else [str(c) for c in self.classes_]
        if len(files) != m:
            raise ValueError(f"files must name every photo: {len(files)} names for {m} photos.")
        if not m:
            return Suggestions([], [], None, 0, {a: 0 for a in ANSWERS})
        if probabilities is None:  # in chunks: memory grows with the photos by their features alone
            probabilities = np.concatenate([self.head_.probabilities(x[start:start + _CHUNK])
                                            for start in range(0, m, _CHUNK)])
        p = np.asarray(probabilities, dtype=np.float64)
        view = LazyView(x)  # worked out a block at a time: no second copy of the photos' features
        sure, oof_confidence, oof_correct = self._sure(x, view, p)
        best, confidence = sure.argmax(axis=1), sure.max(axis=1)
        familiarity, answer = self.answers(x)
        in_band, band = confident_band(confidence, answer == "familiar", right=float(self.right),
                                       oof_confidence=oof_confidence, oof_correct=oof_correct)

        def suggestion(i: int, reason: str) -> Suggestion:
            return Suggestion(int(i), files[i], labels[best[i]], float(confidence[i]),
                              None if familiarity is None else float(familiarity[i]), str(answer[i]), reason)

        # Asked about among every photo (the band's are the surest, so the uncertain strategies reach them only when
        # little else is left); a photo asked about leaves the band, which only lowers the band's expected mistakes.
        chosen, reasons = select(p, view, int(count or self.count), strategy=self.strategy,
                                 labelled_view=self.labelled_view_, pool_factor=self.pool_factor, seed=self.seed)
        in_band[chosen] = False
        confident = [suggestion(i, "confident") for i in np.flatnonzero(in_band)[np.argsort(-confidence[in_band])]]
        return Suggestions([suggestion(i, r) for i, r in zip(chosen, reasons)], confident, band, m,
                           {a: int((answer == a).sum()) for a in ANSWERS})

    def params(self) -> dict:
        return {k: getattr(self, k) for k in ("count", "strategy", "right", "pool_factor", "familiarity", "seed")}
