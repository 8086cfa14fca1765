"""*Best accuracy*: try the candidates on the same photos, keep the winner, say which won and by how much.

Candidates without fine-tuning are scored by cross-validation on the same folds (their
features come from one pass per image size and view, cached); a fine-tuning candidate, too
costly to fine-tune once per fold, is scored on the first fold's photos, against the best
other candidate's out-of-fold answers on exactly those photos, and wins only when it is
clearly better there (a paired sign test). A tie keeps the cheaper candidate (they are listed
cheapest first).
"""

from __future__ import annotations

import numpy as np

from quasar_core.config import TrainConfig
from quasar_core.progress import TrainingHooks, is_cancelled
from quasar_core.training import TransferClassifier
from quasar_core.wording import percent


def setting_words(config: TrainConfig) -> str:
    """"224 px, augmented copies, fine-tuning the top block"."""
    parts = [f"{config.image_size} px"]
    if config.augment:
        parts.append(f"{config.views - 1} augmented {'copy' if config.views == 2 else 'copies'} of each photo")
    if config.fine_tunes:
        blocks = config.fine_tune_blocks
        parts.append("fine-tuning the top block" if blocks == 1 else f"fine-tuning the top {blocks} blocks")
    return ", ".join(parts)


def _right(classifier: TransferClassifier, indices: np.ndarray) -> np.ndarray:
    probabilities = classifier.validation_.probabilities()[indices]
    return probabilities.argmax(axis=1) == classifier.targets_[indices]


def fit_best(dataset, candidates: list[TrainConfig], *, cache=None, base_loader=None,
             hooks: TrainingHooks | None = None, cancel=None, checkpoint_dir=None, on_head=None):
    """(the winning classifier, fitted on every photo; the table of candidates) — (None, table) if stopped."""
    hooks = hooks or TrainingHooks()
    scored: list[tuple[TrainConfig, TransferClassifier]] = []
    folds = None
    for number, config in enumerate(candidates, 1):
        if is_cancelled(cancel):
            break
        hooks.message(f"Trying setting {number} of {len(candidates)}: {setting_words(config)}.")
        classifier = TransferClassifier(config, cache=cache, base_loader=base_loader)
        if config.fine_tunes:
            done = classifier.fit(dataset, hooks=hooks, cancel=cancel, folds=folds, checkpoint_dir=checkpoint_dir)
            done = done if done.head_ is not None and not done.cancelled_ else None
        else:
            done = classifier.validate(dataset, hooks=hooks, cancel=cancel, folds=folds)
        if done is None:
            break
        folds = folds if folds is not None else classifier.folds_
        scored.append((config, classifier))
    plain = [(c, k) for c, k in scored if not c.fine_tunes]
    if not plain:
        return None, []
    everyone = plain[0][1].folds_.tested
    winner = max(plain, key=lambda item: _right(item[1], everyone).mean())  # max keeps the first of equals
    table = [{"setting": setting_words(c), "accuracy": float(_right(k, everyone).mean()), "photos": len(everyone),
              "fine_tunes": False} for c, k in plain]
    for config, classifier in scored:
        if not config.fine_tunes:
            continue
        photos = classifier.folds_.tested
        right, theirs_right = _right(classifier, photos), _right(winner[1], photos)
        table.append({"setting": setting_words(config), "accuracy": float(right.mean()), "photos": len(photos),
                      "fine_tunes": True, "against": float(theirs_right.mean())})
        if clearly_better(right, theirs_right):
            winner = (config, classifier)
    row_configs = [c for c, _ in plain] + [c for c, _ in scored if c.fine_tunes]  # the table's order
    for row, config in zip(table, row_configs):
        row["chosen"] = config == winner[0]  # not by the words: two candidates may read alike
    config, classifier = winner
    if not config.fine_tunes:  # the kept model: every photo, features already cached
        classifier = TransferClassifier(config, cache=cache, base_loader=base_loader).fit(
            dataset, hooks=hooks, cancel=cancel, folds=folds, on_head=on_head)
    hooks.message(selection_sentence(table))
    return classifier, table


def clearly_better(right: np.ndarray, other_right: np.ndarray, *, z: float = 1.96) -> bool:
    """Whether one model beats another on the same photos by more than chance (a paired sign test).

    Fine-tuning is scored on one fold only (a fifth of the photos): on a few dozen photos one or two
    lucky answers must not make it the winner.
    """
    gains = int(np.sum(right & ~other_right))
    losses = int(np.sum(other_right & ~right))
    return bool(gains - losses >= max(2, z * np.sqrt(gains + losses)))


def selection_sentence(table: list[dict]) -> str:
    chosen = next(row for row in table if row["chosen"])
    others = [row for row in table if not row["chosen"] and not row["fine_tunes"]]
    text = (f"Best accuracy tried {len(table)} settings; {chosen['setting']} won with {percent(chosen['accuracy'])} "
            f"on {chosen['photos']} photos it was tested on")
    if chosen["fine_tunes"]:
        text += f" (the best without fine-tuning: {percent(chosen['against'])} on the same photos)"
    elif any(row["fine_tunes"] for row in table):
        tuned = next(row for row in table if row["fine_tunes"])
        text += (f"; fine-tuning scored {percent(tuned['accuracy'])} against {percent(tuned['against'])} on the "
                 f"{tuned['photos']} photos it was tested on, not clearly better, so the simpler model was kept")
    elif others:
        runner = max(others, key=lambda row: row["accuracy"])
        text += f" (next best: {runner['setting']}, {percent(runner['accuracy'])})"
    return text + "."
