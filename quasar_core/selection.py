"""*Best accuracy*: try the candidates on the same photos, keep the winner, say which won and how sure that is.

Every candidate is scored before any model is kept: candidates without fine-tuning by
cross-validation on the same folds (their features come from one pass per image size and
view, cached); a fine-tuning candidate, too costly to fine-tune once per fold, on the photos
set aside, against the best other candidate's answers on exactly those photos, winning only
when clearly better there (a paired sign test). An augmented candidate is tried only at the
image size that leads so far: augmenting a size that already lost cannot make it win often
enough to pay for a second feature pass. A tie keeps the cheaper candidate (they are listed
cheapest first). Only the winner then learns from every photo (``TransferClassifier.finish``).

Picking the best of several noisy scores flatters the winner, so the number reported is
corrected for the choice: each fold's photos are answered by the candidate that scored best on
the *other* folds' photos (cross-validated selection), which costs no extra training.
"""

from __future__ import annotations

import time

import numpy as np

from quasar_core.config import TrainConfig
from quasar_core.crossval import CrossValidation
from quasar_core.evaluation import wilson_interval
from quasar_core.head import fit_temperature
from quasar_core.progress import TrainingHooks, is_cancelled
from quasar_core.training import TransferClassifier
from quasar_core.wording import estimate, percent


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


def _leader(plain: list[tuple[TrainConfig, TransferClassifier]], everyone: np.ndarray):
    return max(plain, key=lambda item: _right(item[1], everyone).mean())  # max keeps the first of equals


def _cannot_win(config: TrainConfig, plain, everyone) -> bool:
    """An augmented candidate at a size whose plain version was tried and does not lead."""
    if not config.augment or not plain:
        return False
    same_size = [c for c, _ in plain if c.image_size == config.image_size and not c.augment]
    return bool(same_size) and _leader(plain, everyone)[0].image_size != config.image_size


def fit_best(dataset, candidates: list[TrainConfig], *, cache=None, base_loader=None,
             hooks: TrainingHooks | None = None, cancel=None, checkpoint_dir=None, on_head=None):
    """(the winning classifier, fitted on every photo; the table of candidates) — (None, table) if stopped.

    The winner's ``validation_`` answers each photo with the candidate chosen without it (see the module's
    docstring), so the numbers made from it are honest about the choice."""
    hooks = hooks or TrainingHooks()
    scored: list[tuple[TrainConfig, TransferClassifier]] = []
    rows: list[dict] = []
    folds = everyone = None
    for number, config in enumerate(candidates, 1):
        if is_cancelled(cancel):
            break
        plain = [(c, k) for c, k in scored if not c.fine_tunes]
        if _cannot_win(config, plain, everyone):
            hooks.message(f"Skipping setting {number} of {len(candidates)} ({setting_words(config)}): its image "
                          "size already scored lower.")
            continue
        hooks.message(f"Trying setting {number} of {len(candidates)}: {setting_words(config)}.")
        started = time.perf_counter()
        classifier = TransferClassifier(config, cache=cache, base_loader=base_loader)
        if classifier.validate(dataset, hooks=hooks, cancel=cancel, folds=folds) is None:
            break
        if folds is None:
            folds, everyone = classifier.folds_, classifier.folds_.tested
        scored.append((config, classifier))
        row = _candidate_row(config, classifier, everyone, time.perf_counter() - started)
        rows.append(row)
        hooks.epoch_end({"phase": "candidate", **{k: v for k, v in row.items() if k != "fine_tunes"}})
    plain = [(c, k) for c, k in scored if not c.fine_tunes]
    if not plain or is_cancelled(cancel):
        return None, []
    winner = _leader(plain, everyone)
    for (config, classifier), row in zip(scored, rows):
        if config.fine_tunes:
            photos = classifier.folds_.tested
            row["against"] = float(_right(winner[1], photos).mean())
            if clearly_better(_right(classifier, photos), _right(winner[1], photos)):
                winner = (config, classifier)
    for row, (config, _) in zip(rows, scored):
        row["chosen"] = config == winner[0]  # not by the words: two candidates may read alike
    config, classifier = winner
    classifier.finish(dataset, checkpoint_dir=checkpoint_dir, on_head=on_head)  # only the winner is kept
    if not config.fine_tunes and len(plain) > 1:
        classifier.validation_ = chosen_without_their_photos([k for _, k in plain], classifier)
        right = _right(classifier, everyone)
        low, high = wilson_interval(int(right.sum()), len(everyone))
        rows[[c for c, _ in scored].index(config)].update(honest_accuracy=float(right.mean()), low_honest=low,
                                                          high_honest=high)
    sentence = selection_sentence(rows)
    hooks.message(sentence)
    chosen = next(row for row in rows if row["chosen"])
    hooks.epoch_end({"phase": "choice", "setting": chosen["setting"],
                     "accuracy": chosen.get("honest_accuracy", chosen["accuracy"]),
                     "low": chosen.get("low_honest", chosen["low"]), "high": chosen.get("high_honest", chosen["high"]),
                     "reason": sentence})
    return classifier, rows


def _candidate_row(config: TrainConfig, classifier: TransferClassifier, everyone, seconds: float) -> dict:
    photos = classifier.folds_.tested if config.fine_tunes else everyone
    right = _right(classifier, photos)
    low, high = wilson_interval(int(right.sum()), len(photos))
    return {"setting": setting_words(config), "image_size": config.image_size, "augment": config.augment,
            "accuracy": float(right.mean()), "low": low, "high": high, "photos": len(photos),
            "fine_tunes": config.fine_tunes, "seconds": seconds}


def chosen_without_their_photos(candidates: list[TransferClassifier], winner: TransferClassifier) -> CrossValidation:
    """The winner's cross-validation with each fold's photos answered by the candidate that scored best on
    the other folds' photos (the first dealing's folds; the first of equals). Each candidate's answers keep
    their own calibration: its logits are rescaled so that the winner's temperature applies them."""
    validation = winner.validation_
    folds, targets = validation.folds, winner.targets_
    assignment = folds.assignment
    rights = [(c.validation_.probabilities().argmax(axis=1) == targets) for c in candidates]
    logits = [validation.logits.copy(), *(r.copy() for r in validation.repeat_logits)]
    temperature = winner.head_.temperature
    for fold in range(folds.n_folds):
        inside, outside = assignment == fold, (assignment >= 0) & (assignment != fold)
        best = max(range(len(candidates)), key=lambda c: rights[c][outside].mean())  # max keeps the first
        chosen = candidates[best].validation_
        rescale = temperature / fit_temperature(*chosen.stacked_logits(targets)) if chosen is not validation else 1.0
        for mine, theirs in zip(logits, (chosen.logits, *chosen.repeat_logits)):
            mine[inside] = theirs[inside] * rescale
    note = f", the setting chosen among {len(candidates)} without the photos it was scored on"
    return CrossValidation(folds, validation.strength, validation.candidates, logits[0], tuple(logits[1:]),
                           note=validation.note + note)


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
    if "honest_accuracy" in chosen:
        text += (f". Picking the best of {len(table) - sum(row['fine_tunes'] for row in table)} flatters the winner a "
                 f"little, so the number reported counts the choice too: "
                 f"{estimate(chosen['honest_accuracy'], (chosen['low_honest'], chosen['high_honest']))}")
    return text + "."
