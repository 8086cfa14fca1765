"""Best accuracy: every candidate is scored on the same photos, the winner is kept and said, and Best is
never worse than Quick on that score. The problem is made so that the image size matters: stripes
one pixel wide, which a 32 px copy of a 64 px photo averages away."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from quasar_core import selection
from quasar_core.config import Augmentation, TrainConfig
from quasar_core.features.cache import FeatureCache
from quasar_core.selection import fit_best, selection_sentence, setting_words
from quasar_core.training import TransferClassifier

QUICK = TrainConfig(weights="none", image_size=32, folds=4)
LARGER = QUICK.replace(image_size=64)


def stripes(label: str, number: int, side: int = 64) -> bytes:
    """One-pixel stripes, horizontal or vertical, in two greys of the photo's own."""
    rng = np.random.default_rng([label == "vertical", number])
    low, high = int(rng.integers(20, 110)), int(rng.integers(150, 250))
    line = np.where((np.arange(side) + number) % 2 == 0, low, high)
    image = np.repeat(line[:, None], side, axis=1) if label == "horizontal" else np.repeat(line[None, :], side, axis=0)
    buffer = io.BytesIO()
    Image.fromarray(np.stack([image] * 3, axis=-1).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def striped():
    from quasar_core.data import Limits, load_uploads

    items = [(f"{label}_{n:02d}.png", stripes(label, n), label) for label in ("horizontal", "vertical")
             for n in range(10)]
    return load_uploads(items, limits=Limits())


class Recorded(TransferClassifier):
    """Records the folds each candidate was given and used."""

    given: list = []
    used: list = []

    def validate(self, dataset, *, folds=None, **kwargs):
        Recorded.given.append(folds)
        result = super().validate(dataset, folds=folds, **kwargs)
        Recorded.used.append(self.folds_)
        return result


@pytest.fixture(scope="module")
def best(striped, base_loader, tmp_path_factory):
    cache = FeatureCache(tmp_path_factory.mktemp("selection") / "features")
    messages, heads = [], []
    Recorded.given, Recorded.used = [], []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(selection, "TransferClassifier", Recorded)
        classifier, table = fit_best(striped, [QUICK, LARGER], cache=cache, base_loader=base_loader,
                                     hooks=selection.TrainingHooks(on_message=messages.append), on_head=heads.append)
    return {"classifier": classifier, "table": table, "messages": messages, "heads": heads,
            "given": list(Recorded.given), "used": list(Recorded.used), "cache": cache}


def test_every_candidate_is_scored_on_the_same_photos(best, striped):
    given, used = best["given"], best["used"]
    assert given[0] is None and all(folds is used[0] for folds in given[1:])  # the first one's folds, imposed
    assert all(folds == used[0] for folds in used)
    assert [row["photos"] for row in best["table"]] == [len(striped)] * 2
    assert best["classifier"].folds_ == used[0]


def test_best_is_at_least_as_good_as_quick_and_the_table_says_which_won(best):
    quick, larger = best["table"]
    assert quick["setting"] == "32 px" and larger["setting"] == "64 px"
    assert larger["accuracy"] > quick["accuracy"]  # one-pixel stripes need the pixels
    assert larger["accuracy"] >= 0.8
    assert [row["chosen"] for row in best["table"]] == [False, True]
    winner = best["classifier"]
    assert winner.config == LARGER and winner.head_ is not None
    tested = winner.folds_.tested
    # what the run reports is corrected for the choice: each fold answered by the setting chosen without it
    right = winner.validation_.probabilities()[tested].argmax(1) == winner.targets_[tested]
    assert right.mean() == pytest.approx(larger["honest_accuracy"]) and larger["honest_accuracy"] <= 1.0
    assert "without the photos it was scored on" in winner.validation_.note
    assert best["heads"] == [winner]  # the kept model was reported as soon as its head was learned
    assert best["messages"][:2] == ["Trying setting 1 of 2: 32 px.", "Trying setting 2 of 2: 64 px."]
    assert best["messages"][-1] == selection_sentence(best["table"])
    assert best["messages"][-1].startswith("Best accuracy tried 2 settings; 64 px won with")
    assert "(next best: 32 px," in best["messages"][-1]


def test_a_tie_keeps_the_cheaper_candidate_and_marks_it_alone(striped, base_loader, best):
    """Another seed on the shared random base: the same features, the same imposed folds, the same score."""
    twin = QUICK.replace(seed=1)
    classifier, table = fit_best(striped, [QUICK, twin], cache=best["cache"], base_loader=base_loader)
    assert table[0]["accuracy"] == table[1]["accuracy"] and table[0]["setting"] == table[1]["setting"]
    assert [row["chosen"] for row in table] == [True, False]
    assert classifier.config == QUICK


def test_a_fine_tuning_candidate_is_judged_on_the_first_folds_photos(striped, base_loader, best, monkeypatch):
    """Fine-tuning is stood in for by perfect answers on its hold-out: it must then win, said so."""

    def perfect(self, dataset):
        test = self.folds_.tested
        self.validation_.logits[test] = np.eye(2)[self.targets_[test]] * 10
        return None  # no activations: nothing is fine-tuned for the kept model either

    monkeypatch.setattr(TransferClassifier, "_fine_tune_estimate", perfect)
    tuned = QUICK.replace(mode="fine-tune", fine_tune_epochs=1)
    classifier, table = fit_best(striped, [QUICK, tuned], cache=best["cache"], base_loader=base_loader)
    plain, fine = table
    assert fine["fine_tunes"] and fine["accuracy"] == 1.0
    first_fold = np.flatnonzero(best["used"][0].assignment == 0)
    assert fine["photos"] == len(first_fold) < plain["photos"]
    quick_answers = best["used"][0]  # the same folds as before
    assert 0 <= fine["against"] <= 1 and quick_answers.n_folds == 4
    # Perfect on its few photos wins only when that is more than chance against Quick on the same photos.
    gains = round((1 - fine["against"]) * fine["photos"])
    wins = bool(gains >= max(2, 1.96 * np.sqrt(gains)))
    assert fine["chosen"] is wins and plain["chosen"] is not wins
    if wins:
        assert classifier.config == tuned and classifier.folds_.method == "holdout"
        np.testing.assert_array_equal(classifier.folds_.tested, first_fold)
        assert "(the best without fine-tuning:" in selection_sentence(table)
    else:
        assert classifier.config == QUICK and classifier.folds_.method == "cross-validation"
        assert "not clearly better, so the simpler model was kept" in selection_sentence(table)


def test_clearly_better_needs_more_than_a_lucky_photo_or_two():
    right = np.array([True] * 20)
    assert not selection.clearly_better(right, right)  # the same answers
    two_more = right.copy(), np.array([False, False] + [True] * 18)
    assert not selection.clearly_better(*two_more)  # 2 gains: 2 < 1.96 * sqrt(2)
    six_more = right.copy(), np.array([False] * 6 + [True] * 14)
    assert selection.clearly_better(*six_more)  # 6 gains >= 1.96 * sqrt(6) = 4.8
    mixed = np.array([True] * 6 + [False] * 4 + [True] * 10), np.array([False] * 6 + [True] * 4 + [True] * 10)
    assert not selection.clearly_better(*mixed)  # 6 gains, 4 losses: net 2 < 1.96 * sqrt(10)


def test_a_stopped_selection_keeps_nothing(striped, base_loader):
    cancel = threading.Event()
    cancel.set()
    assert fit_best(striped, [QUICK, LARGER], base_loader=base_loader, cancel=cancel) == (None, [])


def test_setting_words():
    assert setting_words(TrainConfig(image_size=224)) == "224 px"
    augmented = TrainConfig(image_size=128, augment=True, augmentation=Augmentation(views=2))
    assert setting_words(augmented) == "128 px, 1 augmented copy of each photo"
    assert setting_words(augmented.replace(augmentation=Augmentation(views=4))) == \
        "128 px, 3 augmented copies of each photo"
    assert setting_words(TrainConfig(mode="fine-tune", fine_tune_blocks=1)) == "128 px, fine-tuning the top block"
    assert setting_words(TrainConfig(mode="fine-tune", fine_tune_blocks=2)) == "128 px, fine-tuning the top 2 blocks"
    assert setting_words(TrainConfig(mode="fine-tune", fine_tune_epochs=0)) == "128 px"  # not really fine-tuning


def test_an_augmented_setting_is_tried_only_at_the_size_that_leads(striped, base_loader, best):
    """Augmenting 32 px, a size that already lost to 64 px, cannot make it win often enough to pay."""
    augmented = QUICK.replace(augment=True, augmentation=Augmentation(views=2, rotation=0.0, zoom=0.0, contrast=0.0))
    messages = []
    classifier, table = fit_best(striped, [QUICK, LARGER, augmented], cache=best["cache"], base_loader=base_loader,
                                 hooks=selection.TrainingHooks(on_message=messages.append))
    assert [row["setting"] for row in table] == ["32 px", "64 px"]
    assert any(m.startswith("Skipping setting 3 of 3 (32 px, 1 augmented copy") for m in messages)
    assert classifier.config == LARGER


def test_the_history_tells_each_setting_and_the_choice(striped, base_loader, best):
    rows = []
    classifier, table = fit_best(striped, [QUICK, LARGER], cache=best["cache"], base_loader=base_loader,
                                 hooks=selection.TrainingHooks(on_epoch_end=rows.append))
    candidates = [row for row in rows if row["phase"] == "candidate"]
    assert [row["setting"] for row in candidates] == ["32 px", "64 px"]
    assert all(row["low"] <= row["accuracy"] <= row["high"] and row["seconds"] >= 0 for row in candidates)
    [choice] = [row for row in rows if row["phase"] == "choice"]
    assert choice["setting"] == "64 px" and choice["accuracy"] == table[1]["honest_accuracy"]
    assert choice["reason"] == selection_sentence(table)
    assert rows.index(choice) > rows.index(candidates[-1])


class Candidate:
    """Just what chosen_without_their_photos reads of a scored candidate."""

    def __init__(self, folds, targets, logits, temperature=1.0):
        from quasar_core.crossval import CrossValidation

        self.targets_ = targets
        self.validation_ = CrossValidation(folds, 0.1, [], logits)
        self.head_ = type("HeadStub", (), {"temperature": temperature})()


def test_the_correction_takes_out_the_lean_of_picking_the_best_of_many_noisy_settings():
    """Twenty settings that guess at random (truly 50 %): the best of their scores leans high, the number
    corrected for the choice does not."""
    from quasar_core.data.split import cross_validation_folds

    rng = np.random.default_rng(0)
    n = 200
    targets = np.repeat([0, 1], n // 2)
    picked, honest = [], []
    for trial in range(20):  # the lean is an average property: many small experiments
        folds = cross_validation_folds(targets, n_folds=10, seed=trial)
        candidates = [Candidate(folds, targets, rng.normal(0, 1, (n, 2)).astype(np.float32)) for _ in range(10)]
        scores = [(c.validation_.probabilities().argmax(1) == targets).mean() for c in candidates]
        corrected = selection.chosen_without_their_photos(candidates, candidates[int(np.argmax(scores))])
        picked.append(max(scores))
        honest.append((corrected.probabilities().argmax(1) == targets).mean())
    assert np.mean(picked) - 0.5 >= 0.04  # the maximum of ten noisy estimates of 50 % leans high
    assert abs(np.mean(honest) - 0.5) <= 0.015  # the corrected number does not (standard error ~0.008)
    # A setting that is truly better is still found and credited.
    good = np.eye(2, dtype=np.float32)[targets] * 3 + rng.normal(0, 1, (n, 2)).astype(np.float32)
    candidates.append(Candidate(folds, targets, good))
    corrected = selection.chosen_without_their_photos(candidates, candidates[-1])
    assert (corrected.probabilities().argmax(1) == targets).mean() >= 0.9
