"""Using a run on new photos (quasar_core.predicting): one result per photo with its probabilities and which of
the three answers it is (familiar, unusual, unknown), said the same way by the CLI and the Predict page, never
"100 %"."""

from __future__ import annotations

import numpy as np
import pytest

from quasar_core.predicting import (answer_of, answer_words, classify_photos, drift_sentence, familiar_threshold,
                                    unknown_names, unusual_names, unusual_threshold)
from tests.core.runs.support import train_small


@pytest.fixture(scope="module")
def run(dataset, base, tmp_path_factory):
    return train_small(dataset, tmp_path_factory.mktemp("predicting") / "run", base)


@pytest.fixture(scope="module")
def loader(base):
    return lambda: base


def noise(seed=0, side=40):
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def test_classify_photos_gives_one_result_per_photo(run, loader, shapes):
    photos = [("circle.png", np.asarray(shapes.image("circle", 60))),
              ("big-square.jpg", np.asarray(shapes.image("square", 61, side=300))),
              ("noise.png", noise())]
    results = classify_photos(run, photos, base_loader=loader)
    assert [r["image"] for r in results] == ["circle.png", "big-square.jpg", "noise.png"]
    for result in results:
        assert set(result) == {"image", "label", "probabilities", "familiarity", "unknown", "unusual", "answer"}
        assert list(result["probabilities"]) == run.labels
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
        assert 0.0 <= result["familiarity"] <= 1.0 and isinstance(result["unknown"], bool)
    assert [r["label"] for r in results[:2]] == ["circle", "square"]
    assert [r["unknown"] for r in results] == [False, False, True]  # noise looks like none of the shapes
    assert [r["answer"] for r in results] == ["familiar", "familiar", "unknown"]
    assert not any(r["unknown"] and r["unusual"] for r in results)
    assert results[2]["familiarity"] < results[0]["familiarity"]
    assert classify_photos(run, [], base_loader=loader) == []


def test_the_three_answers_in_words():
    known = {"image": "a.jpg", "label": "ants", "probabilities": {"ants": 0.97, "bees": 0.03}, "unknown": False,
             "unusual": False, "answer": "familiar", "familiarity": 0.8}
    assert answer_words(known, ["ants", "bees"]) == "It is most likely ants (97.0 % sure)"
    certain = {**known, "probabilities": {"ants": 0.9996, "bees": 0.0004}}  # never "100.0 %"
    assert answer_words(certain) == "It is most likely ants (more than 99 % sure)"
    unusual = {**certain, "unusual": True, "answer": "unusual", "familiarity": 0.05}
    assert answer_words(unusual) == ("Not sure: this photo looks unusual for your classes; the closest is ants "
                                     "(more than 99 % sure)")
    unknown = {"image": "dog.jpg", "label": "a", "probabilities": {"a": 1.0, "b": 0.0}, "unknown": True,
               "unusual": False, "answer": "unknown", "familiarity": 0.0}
    assert answer_words(unknown, ["a", "b"]) == "This doesn't look like any of your classes"
    for result in (known, certain, unusual, unknown):
        assert "100" not in answer_words(result) and " 0 %" not in answer_words(result)
    # results made before the unusual band (no "answer", maybe no "unusual"): read from the flags
    assert answer_of({"unknown": True}) == "unknown" and answer_of({"unknown": False}) == "familiar"
    assert answer_of({"unknown": False, "unusual": True}) == "unusual"
    assert unusual_names([{**unusual, "image": "odd.jpg"}, known, unknown]) == "odd.jpg"


def test_the_drift_sentence_and_the_unknown_names(run, loader, shapes):
    photos = [(f"circle-{n}.png", np.asarray(shapes.image("circle", 70 + n))) for n in range(3)]
    photos += [("noise-1.png", noise(1)), ("noise-2.png", noise(2))]
    results = classify_photos(run, photos, base_loader=loader)
    sentence = drift_sentence(results)
    assert sentence and "2 of 5" in sentence
    assert unknown_names(results) == "noise-1.png and noise-2.png"
    unscored = [{**r, "familiarity": None, "unknown": False} for r in results]
    assert drift_sentence(unscored) is None and unknown_names(unscored) == ""


def test_the_familiar_and_unusual_thresholds(run, loader):
    from quasar_core.familiarity import UNUSUAL_BELOW

    threshold = familiar_threshold(run, base_loader=loader)
    assert threshold == pytest.approx(1 - 0.975)
    assert unusual_threshold(run, base_loader=loader) == pytest.approx(UNUSUAL_BELOW)


def test_a_model_opened_from_a_file_without_a_reference_answers_without_a_verdict(run, loader, shapes, tmp_path):
    from quasar_core.runs.export import model_bytes
    from quasar_core.runs.model_files import import_model

    opened = import_model(model_bytes(run, base_loader=loader), "theirs.keras", tmp_path / "opened")
    photos = [("circle.png", np.asarray(shapes.image("circle", 60))), ("noise.png", noise())]
    results = classify_photos(opened, photos)
    assert [r["familiarity"] for r in results] == [None, None] and [r["unknown"] for r in results] == [False, False]
    assert [r["unusual"] for r in results] == [False, False] and [r["answer"] for r in results] == ["familiar"] * 2
    assert list(results[0]["probabilities"]) == ["class 1", "class 2", "class 3"]
    ours = classify_photos(run, photos, base_loader=loader)
    assert [list(r["probabilities"].values()) for r in results] == [
        pytest.approx(list(r["probabilities"].values()), abs=1e-6) for r in ours]
    assert drift_sentence(results) is None and familiar_threshold(opened) == 0.0 and unusual_threshold(opened) == 0.0
