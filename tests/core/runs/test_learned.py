"""What a run learned, to and from its folder (quasar_core.runs.learned): the same answers after a round trip,
a bounded number of classifiers kept in memory, and forgetting a deleted run."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from quasar_core.errors import QuasarError
from quasar_core.runs import learned
from quasar_core.runs.folder import FILES, Run, RunWriter, write_arrays, write_json
from quasar_core.runs.learned import (KEPT_CLASSIFIERS, classifier_of, familiarity_of, flatten_tuned, forget,
                                      save_learned)
from quasar_core.training import TransferClassifier
from tests.core.runs.support import copy_run, small_config


@pytest.fixture(autouse=True)
def nothing_kept():
    """Each test starts with no classifier in memory (and leaves none for the next test file)."""
    learned._KEPT.clear()
    yield
    learned._KEPT.clear()


@pytest.fixture(scope="module")
def fitted(dataset, base_loader, feature_cache, tmp_path_factory):
    """A classifier fitted in memory and the run folder it was saved to."""
    classifier = TransferClassifier(small_config(), cache=feature_cache, base_loader=base_loader).fit(dataset)
    writer = RunWriter(tmp_path_factory.mktemp("learned") / "run", classifier.config, classifier.labels_)
    save_learned(writer, classifier)
    writer.finish("done", "Trained.", precision=classifier.precision_.precision,
                  precision_reason=classifier.precision_.reason)
    return classifier, Run.open(writer.path)


def test_a_saved_classifier_opens_with_identical_predictions(fitted, dataset, base_loader):
    classifier, run = fitted
    assert {p.name for p in run.path.iterdir()} == {FILES.CONFIG, FILES.LABELS, FILES.STATUS, FILES.HEAD,
                                                   FILES.FAMILIARITY}  # fitted without fine-tuning: no tuned.npz
    opened = classifier_of(run, base_loader=base_loader)
    assert opened is not classifier and isinstance(opened, TransferClassifier)
    assert opened.labels_ == classifier.labels_ == dataset.labels
    assert opened.config == classifier.config and opened.tuned_ is None
    assert opened.precision_ == classifier.precision_
    photos = [dataset.pixels(i) for i in range(len(dataset))] + [np.zeros((70, 50, 3), np.uint8)]
    expected, expected_features = classifier.predict_proba(photos, with_features=True)
    probabilities, features = opened.predict_proba(photos, with_features=True)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(features, expected_features)
    assert opened.predict(photos) == classifier.predict(photos)
    np.testing.assert_array_equal(opened.familiarity_.familiarity(features),
                                  classifier.familiarity_.familiarity(expected_features))
    assert opened.head_.temperature == pytest.approx(classifier.head_.temperature, rel=1e-6)


def test_the_familiarity_reference_comes_back(fitted):
    classifier, run = fitted
    back = familiarity_of(run)
    assert back is not None and back.threshold_ == pytest.approx(classifier.familiarity_.threshold_)
    no_reference = RunWriter(run.path.parent / "bare", small_config(), ["a", "b"])
    assert familiarity_of(Run.open(no_reference.path)) is None


def test_fine_tuned_layers_round_trip_in_order():
    tuned = {"block5_conv1": [np.full((2,), float(n)) for n in range(12)], "block5_conv2": [np.zeros(3), np.ones(3)]}
    flat = flatten_tuned(tuned)
    assert set(flat) == {f"block5_conv1/{n}" for n in range(12)} | {"block5_conv2/0", "block5_conv2/1"}
    back = learned._unflatten(dict(reversed(list(flat.items()))))
    assert list(back) == ["block5_conv1", "block5_conv2"]
    assert [float(w[0]) for w in back["block5_conv1"]] == [float(n) for n in range(12)]  # 10 and 11 come last


def test_a_run_with_fine_tuned_layers_gives_them_back(fitted, tmp_path):
    _, run = fitted
    copy = copy_run(run, tmp_path / "tuned")
    tuned = {"block5_conv3": [np.full((3, 3, 4, 4), 0.5, np.float32), np.zeros(4, np.float32)]}
    write_arrays(copy.path / FILES.TUNED, flatten_tuned(tuned))
    opened = classifier_of(Run.open(copy.path))
    assert list(opened.tuned_) == ["block5_conv3"]
    np.testing.assert_array_equal(opened.tuned_["block5_conv3"][0], tuned["block5_conv3"][0])


def test_a_run_without_a_model_is_refused(tmp_path):
    writer = RunWriter(tmp_path / "empty", small_config(), ["a", "b"])
    writer.finish("cancelled", "Stopped before the first model was learned.")
    with pytest.raises(QuasarError, match="'empty' has no usable model \\(Stopped before the first model"):
        classifier_of(Run.open(writer.path))
    assert learned._KEPT == {}


def runs_like(run, folder, count):
    made = []
    for number in range(count):
        shutil.copytree(run.path, folder / f"run-{number}")
        made.append(Run.open(folder / f"run-{number}"))
    return made


def test_classifiers_are_kept_per_run_and_at_most_kept_classifiers(fitted, tmp_path):
    _, run = fitted
    runs = runs_like(run, tmp_path, KEPT_CLASSIFIERS + 1)
    first = classifier_of(runs[0])
    assert classifier_of(Run.open(runs[0].path)) is first  # opened again: the same classifier
    others = [classifier_of(r) for r in runs[1:]]
    assert len(learned._KEPT) == KEPT_CLASSIFIERS
    assert len({id(c) for c in [first, *others]}) == len(runs)
    assert classifier_of(runs[0]) is not first  # the least recently used was dropped
    assert classifier_of(runs[-1]) is others[-1]  # the most recent stays


def test_a_run_that_changed_on_disk_is_read_again(fitted, tmp_path):
    _, run = fitted
    copy = copy_run(run, tmp_path / "run")
    before = classifier_of(copy)
    status = copy.status.to_dict()
    write_json(copy.path / FILES.STATUS, {**status, "finished": status["finished"] + 60})  # trained again
    assert classifier_of(Run.open(copy.path)) is not before


def test_forget_drops_a_deleted_run_whatever_its_path_looks_like(fitted, tmp_path, monkeypatch):
    _, run = fitted
    kept, deleted = runs_like(run, tmp_path, 2)
    classifier_of(kept)
    classifier_of(deleted)
    monkeypatch.chdir(tmp_path)
    forget(os.path.relpath(deleted.path))  # as a page might pass it
    assert [key[0] for key in learned._KEPT] == [str(kept.path.resolve())]
    forget(tmp_path / "never-opened")  # nothing to forget: no error
    assert len(learned._KEPT) == 1
