"""TransferClassifier: __init__ only stores, fit is the recipe (VGG16 once per photo and view, heads on
the folds, the kept head on every photo, temperature, familiarity), a second fit over cached
features runs no VGG16 pass, predictions are the assembled model's, cancelling keeps what was
learned, fine-tuning is measured on a hold-out, and from_learned reopens a model.

All models use random weights ("none") at 32 px on the 24 shape pictures of conftest.py.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from quasar_core import crossval, training
from quasar_core.config import Augmentation, TrainConfig
from quasar_core.data import Dataset
from quasar_core.data.images import resize_square
from quasar_core.data.split import cross_validation_folds
from quasar_core.familiarity import FamiliarityModel
from quasar_core.features import extract
from quasar_core.features.cache import FeatureCache
from quasar_core.features.networks import keras_network
from quasar_core.features.precision import PrecisionChoice
from quasar_core.near_copies import copy_groups
from quasar_core.head import fit_head, fit_temperature, softmax
from quasar_core.progress import TrainingHooks
from quasar_core.training import TransferClassifier

SIZE = 32
REAL_PROVIDER = training.network_provider
LEARNED = {"labels_", "precision_", "folds_", "validation_", "head_", "familiarity_", "features_", "history_",
           "timings_", "cancelled_", "tuned_"}


class VGG16Calls:
    """Wraps training.network_provider: counts the photos each feature network really ran on."""

    def __init__(self, patch):
        self.photos: dict[str, int] = {}
        patch.setattr(training, "network_provider", self.provider)

    def provider(self, **kwargs):
        network_for = REAL_PROVIDER(**kwargs)

        def counted(layer):
            network = network_for(layer)

            def run(images):
                self.photos[layer] = self.photos.get(layer, 0) + len(images)
                return network(images)

            return run

        return counted

    @property
    def total(self) -> int:
        return sum(self.photos.values())


@pytest.fixture
def vgg16_calls(monkeypatch):
    return VGG16Calls(monkeypatch)


@pytest.fixture
def decodes(dataset, monkeypatch):
    counted = []
    real = type(dataset).pixels
    monkeypatch.setattr(dataset, "pixels", lambda index: counted.append(int(index)) or real(dataset, index))
    return counted


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return FeatureCache(tmp_path_factory.mktemp("training") / "features")


@pytest.fixture(scope="module")
def fitted(dataset, tiny_config, base_loader, cache):
    """One classifier fitted with a fresh cache, with everything its hooks reported."""
    reports, rows, messages = [], [], []
    with pytest.MonkeyPatch.context() as patch:
        calls = VGG16Calls(patch)
        classifier = TransferClassifier(tiny_config, cache=cache, base_loader=base_loader)
        before = set(vars(classifier))
        returned = classifier.fit(dataset, hooks=TrainingHooks(reports.append, rows.append, messages.append))
    return {"classifier": classifier, "returned": returned, "before": before, "calls": calls.photos,
            "progress": reports, "rows": rows, "messages": messages}


def fit(dataset, config, base_loader, *, cache=None, **kwargs):
    return TransferClassifier(config, cache=cache, base_loader=base_loader).fit(dataset, **kwargs)


def oof_accuracy(classifier) -> float:
    tested = classifier.folds_.tested
    return float((classifier.validation_.logits[tested].argmax(1) == classifier.targets_[tested]).mean())


# --------------------------------------------------------------------------- estimator behaviour


def test_init_only_stores(tiny_config, base_loader, cache):
    classifier = TransferClassifier(tiny_config, cache=cache, base_loader=base_loader)
    assert vars(classifier) == {"config": tiny_config, "cache": cache, "base_loader": base_loader}
    assert TransferClassifier().config == TrainConfig()
    with pytest.raises(ValueError, match="no trained model"):
        classifier.predict_proba(np.zeros((1, SIZE, SIZE, 3), np.uint8))


def test_fit_returns_self_and_is_the_only_source_of_learned_attributes(fitted):
    classifier = fitted["classifier"]
    assert fitted["returned"] is classifier
    assert fitted["before"] == {"config", "cache", "base_loader"}
    learned = {name for name in vars(classifier) if not name.startswith("_")} - fitted["before"]
    assert learned >= LEARNED
    assert all(name.endswith("_") for name in learned), sorted(learned)


def test_vgg16_ran_once_per_photo_and_nothing_else_ran_it(fitted, dataset):
    assert fitted["calls"] == {extract.POOLED: len(dataset)}
    phases = [p.phase for p in fitted["progress"]]
    assert phases[0] == "features" and set(phases) == {"features", "head"}
    assert phases.index("head") > max(i for i, phase in enumerate(phases) if phase == "features")


def test_learned_state(fitted, dataset, base):
    classifier = fitted["classifier"]
    assert classifier.labels_ == dataset.labels == ["circle", "square", "triangle"]
    assert classifier.cancelled_ is False and classifier.tuned_ is None
    assert isinstance(classifier.precision_, PrecisionChoice)
    assert classifier.precision_.precision in ("float32", "bfloat16") and classifier.precision_.reason
    assert classifier.folds_.describe() == "8-fold cross-validation over 24 photos, repeated 3 times"
    assert classifier.features_.shape == (24, 1024)
    if classifier.precision_.precision == "float32":
        np.testing.assert_allclose(classifier.features_, keras_network(base)(dataset.images(size=SIZE)),
                                   rtol=1e-5, atol=1e-6)
    assert not np.isnan(classifier.validation_.logits).any()  # every photo tested once
    assert len(classifier.validation_.repeat_logits) == 2 and not np.isnan(classifier.validation_.repeat_logits).any()
    assert set(classifier.timings_) == {"load", "features", "head"} and all(t >= 0 for t in classifier.timings_.values())
    assert isinstance(classifier.familiarity_, FamiliarityModel)


def test_history_is_the_heads_tried_on_the_folds_then_what_more_photos_bought(fitted):
    classifier = fitted["classifier"]
    assert fitted["rows"] == classifier.history_
    heads = [row for row in classifier.history_ if row["phase"] == "head"]
    assert len(heads) == len(classifier.validation_.candidates)
    [chosen] = [row for row in heads if row["chosen"]]
    assert chosen["strength"] == classifier.validation_.strength
    assert chosen["log_loss"] == min(row["log_loss"] for row in heads)
    learning = classifier.history_[len(heads):]
    assert [row["phase"] for row in learning] == ["learning"] * 4
    assert [row["share"] for row in learning] == [0.25, 0.5, 0.75, 1.0]
    assert [row["photos"] for row in learning] == sorted(row["photos"] for row in learning)
    tested = classifier.folds_.tested
    right = classifier.validation_.probabilities()[tested].argmax(1) == classifier.targets_[tested]
    assert learning[-1]["accuracy"] == right.mean()  # all the photos: the estimate itself
    assert all(row["low"] <= row["accuracy"] <= row["high"] and row["tested"] == len(tested) for row in learning)


def test_it_learns_the_shapes(fitted):
    """Coloured shapes are easy even for random convolutions: most photos are named right out of fold."""
    assert oof_accuracy(fitted["classifier"]) >= 0.8


def test_the_kept_head_learned_from_every_photo_and_is_calibrated_on_the_folds(fitted):
    classifier = fitted["classifier"]
    expected = fit_head(classifier.features_, classifier.targets_, n_classes=3,
                        strength=classifier.validation_.strength)
    np.testing.assert_allclose(classifier.head_.kernel, expected.kernel, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(classifier.head_.bias, expected.bias, rtol=1e-4, atol=1e-5)
    # One head's logits on photos it never saw, from each dealing of the folds (not their mean: the kept model
    # is one head)
    every_dealing = np.concatenate([classifier.validation_.logits, *classifier.validation_.repeat_logits])
    assert classifier.head_.temperature == pytest.approx(
        fit_temperature(every_dealing, np.tile(classifier.targets_, 3)), rel=1e-3)
    assert classifier.head_.temperature != pytest.approx(
        fit_temperature(classifier.validation_.logits, classifier.targets_), rel=1e-3)


def test_predict_proba_on_photos_of_any_size_equals_the_assembled_model(fitted, dataset):
    classifier = fitted["classifier"]
    model = classifier.model()
    assert model is classifier.model() and model.input_shape == (None, None, None, 3)
    photos = [dataset.pixels(0), np.full((70, 50, 3), 200, np.uint8), np.zeros((33, 90, 3), np.uint8),
              np.asarray(resize_square(dataset.pixels(9), 300), np.uint8)]
    probabilities = classifier.predict_proba(photos)
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    for photo, row in zip(photos, probabilities):  # the model resizes by itself
        np.testing.assert_allclose(np.asarray(model(photo[None].astype(np.float32)))[0], row, atol=1e-4)
    np.testing.assert_allclose(classifier.predict_proba(photos[0]), probabilities[:1], atol=1e-6)  # one photo
    assert classifier.predict_proba(np.zeros((0, SIZE, SIZE, 3), np.uint8)).shape == (0, 3)
    assert classifier.predict(photos) == [classifier.labels_[i] for i in probabilities.argmax(axis=1)]


def test_the_model_is_the_same_maths_as_the_kept_head_on_the_features(fitted, dataset):
    classifier = fitted["classifier"]
    photos = [dataset.pixels(i) for i in range(len(dataset))]
    probabilities, features = classifier.predict_proba(photos, with_features=True)
    assert features.shape == (24, 1024)
    if classifier.precision_.precision == "bfloat16":  # the cache holds bf16 features (3 significant digits)
        cosine = (features * classifier.features_).sum(1) / (
            np.linalg.norm(features, axis=1) * np.linalg.norm(classifier.features_, axis=1))
        assert cosine.min() > 0.999
        np.testing.assert_allclose(features, classifier.features_, atol=0.02 * np.abs(features).max())
    else:
        np.testing.assert_allclose(features, classifier.features_, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(probabilities, classifier.head_.probabilities(features), atol=1e-4)
    assert (probabilities.argmax(1) == dataset.targets()).mean() >= 0.9


def test_a_second_fit_with_the_cache_computes_no_vgg16_pass(fitted, dataset, tiny_config, base_loader, cache,
                                                             vgg16_calls, decodes):
    again = fit(dataset, tiny_config, base_loader, cache=cache)
    assert vgg16_calls.total == 0 and decodes == []  # features from the cache: not even decoded
    assert again.folds_ == fitted["classifier"].folds_
    photos = [dataset.pixels(i) for i in (0, 11, 23)]
    np.testing.assert_allclose(again.predict_proba(photos), fitted["classifier"].predict_proba(photos), atol=1e-6)


def test_validate_alone_learns_features_folds_and_numbers_only(fitted, dataset, tiny_config, base_loader, cache,
                                                               vgg16_calls):
    classifier = TransferClassifier(tiny_config, cache=cache, base_loader=base_loader)
    assert classifier.validate(dataset) is classifier
    assert vgg16_calls.total == 0
    np.testing.assert_array_equal(classifier.features_, fitted["classifier"].features_)
    assert classifier.folds_ == fitted["classifier"].folds_
    np.testing.assert_allclose(classifier.validation_.logits, fitted["classifier"].validation_.logits, atol=1e-4)
    assert not hasattr(classifier, "head_") and not hasattr(classifier, "familiarity_")
    with pytest.raises(ValueError, match="no trained model"):
        classifier.predict(np.zeros((1, SIZE, SIZE, 3), np.uint8))


def test_augmented_copies_cost_their_views_only_and_heads_learn_from_them(dataset, tiny_config, base_loader,
                                                                           cache, fitted, vgg16_calls, monkeypatch):
    learned_rows = []
    real_fit_head = crossval.fit_head
    monkeypatch.setattr(crossval, "fit_head", lambda x, y, **k: learned_rows.append(len(x)) or real_fit_head(x, y, **k))
    config = tiny_config.replace(augment=True, augmentation=Augmentation(views=2))
    classifier = fit(dataset, config, base_loader, cache=cache)
    assert vgg16_calls.photos == {extract.POOLED: len(dataset)}  # view 0 was cached: only the augmented copies ran
    assert not np.allclose(classifier._views[1], classifier._views[0])
    np.testing.assert_array_equal(classifier.features_, fitted["classifier"].features_)
    learn_sizes = [len(classifier.folds_.split(f)[0]) for f in range(classifier.folds_.n_folds)]
    # every head learned from both views of each of its photos (the folds', and the learning curve's shares)
    assert {2 * n for n in learn_sizes} <= set(learned_rows) and all(rows % 2 == 0 for rows in learned_rows)
    assert not np.isnan(classifier.validation_.logits).any()


def test_many_photos_are_measured_on_a_holdout(dataset, tiny_config, base_loader, cache):
    classifier = fit(dataset, tiny_config.replace(max_cv_photos=10, holdout_fraction=0.25), base_loader, cache=cache)
    assert classifier.folds_.method == "holdout"
    tested = classifier.folds_.tested
    # a quarter of each class (2 of 8), more where near-copies (near_copies.copy_groups) are tested whole
    groups = copy_groups(classifier.features_)
    assert np.all(np.bincount(classifier.targets_[tested]) >= 2) and len(tested) <= 12
    assert set(np.flatnonzero(np.isin(groups, groups[tested]))) == set(tested)
    untested = np.setdiff1d(np.arange(24), tested)
    assert np.isnan(classifier.validation_.logits[untested]).all()
    assert classifier.head_ is not None and np.isfinite(classifier.head_.temperature)


def test_imposed_folds_are_used(dataset, tiny_config, base_loader, cache):
    folds = cross_validation_folds(dataset.targets(), n_folds=3, seed=7)
    classifier = fit(dataset, tiny_config, base_loader, cache=cache, folds=folds)
    assert classifier.folds_ is folds


def test_an_empty_dataset_is_refused(dataset, tiny_config, base_loader):
    empty = Dataset(samples=[], labels=dataset.labels, report=dataset.report)
    with pytest.raises(ValueError, match="empty"):
        fit(empty, tiny_config, base_loader)


def test_random_weights_never_try_int8_even_where_the_cpu_could(dataset, tiny_config, base_loader, cache,
                                                                 monkeypatch):
    from quasar_core.features import int8

    monkeypatch.setattr(int8, "cpu_int8_instructions", lambda **kwargs: ["avx512_vnni"])
    monkeypatch.setattr(int8, "runtime_available", lambda: True)
    monkeypatch.setattr(training, "int8_agreement", lambda *a, **k: pytest.fail("int8 was tried"))
    classifier = TransferClassifier(tiny_config, cache=cache, base_loader=base_loader).validate(dataset)
    assert classifier.precision_.precision in ("float32", "bfloat16")
    assert "random weights" in classifier.precision_.reason


# --------------------------------------------------------------------------- cancelling


def cancel_when(phase):
    cancel = threading.Event()
    seen = []

    def on_progress(progress):
        seen.append(progress.phase)
        if progress.phase == phase:
            cancel.set()

    return cancel, seen, TrainingHooks(on_progress=on_progress)


def assert_nothing_kept(classifier, dataset):
    assert classifier.cancelled_ is True and classifier.head_ is None
    with pytest.raises(ValueError, match="no trained model"):
        classifier.predict([dataset.pixels(0)])


def test_cancel_before_fit_runs_nothing(dataset, tiny_config, base_loader, vgg16_calls):
    cancel = threading.Event()
    cancel.set()
    classifier = fit(dataset, tiny_config, base_loader, cancel=cancel)
    assert_nothing_kept(classifier, dataset)
    assert vgg16_calls.total == 0 and classifier.history_ == []


def test_cancel_during_the_feature_pass_leaves_no_model(dataset, tiny_config, base_loader, vgg16_calls,
                                                        monkeypatch):
    monkeypatch.setattr(extract, "MAX_BATCH", 4)
    cancel, seen, hooks = cancel_when("features")
    classifier = fit(dataset, tiny_config, base_loader, hooks=hooks, cancel=cancel)
    assert_nothing_kept(classifier, dataset)
    assert vgg16_calls.total == 4  # stopped at the next batch
    assert "head" not in seen and classifier.history_ == []


def test_cancel_after_the_features_leaves_no_model_but_keeps_the_features(dataset, tiny_config, base_loader,
                                                                          tmp_path, vgg16_calls):
    cache = FeatureCache(tmp_path / "features")
    cancel, seen, hooks = cancel_when("head")
    classifier = fit(dataset, tiny_config.replace(mode="fine-tune", fine_tune_epochs=1), base_loader, cache=cache,
                     hooks=hooks, cancel=cancel)
    assert_nothing_kept(classifier, dataset)
    assert seen.count("head") == 1 and "fine-tune" not in seen
    assert vgg16_calls.total == len(dataset)
    fit(dataset, tiny_config, base_loader, cache=cache)  # the next training starts from the cached features
    assert vgg16_calls.total == len(dataset)


# --------------------------------------------------------------------------- fine-tuning


def test_fine_tuning_produces_tuned_layers_and_a_holdout_evaluation(fine_tuned, dataset, base):
    classifier = fine_tuned["classifier"]
    assert classifier.cancelled_ is False and classifier.folds_.method == "holdout"
    assert sorted(classifier.tuned_) == ["block5_conv1", "block5_conv2", "block5_conv3", "block5_pool"]
    tuned = classifier.tuned_["block5_conv3"][0]
    assert not np.allclose(tuned, base.get_layer("block5_conv3").get_weights()[0])
    rows = [row for row in classifier.history_ if row["phase"] == "fine-tune"]
    assert [row["label"] for row in rows] == ["hold-out", "kept model"]  # 1 epoch each
    assert rows[0]["val_accuracy"] is not None and rows[1]["val_accuracy"] is None
    assert set(classifier.timings_) == {"load", "features", "head", "fine-tune"}
    # The hold-out photos are predicted by the fine-tuned estimate (log-probabilities), the rest never.
    tested = classifier.folds_.tested
    np.testing.assert_allclose(np.exp(classifier.validation_.logits[tested]).sum(axis=1), 1.0, atol=1e-4)
    assert np.isnan(np.delete(classifier.validation_.logits, tested, axis=0)).all()
    assert "fine-tune" in {p.phase for p in fine_tuned["progress"]}


def test_the_fine_tuned_model_holds_the_tuned_block_and_leaves_the_base_alone(fine_tuned, dataset, base):
    classifier = fine_tuned["classifier"]
    model = classifier.model()
    np.testing.assert_array_equal(model.get_layer("block5_conv3").get_weights()[0],
                                  classifier.tuned_["block5_conv3"][0])
    np.testing.assert_array_equal(model.get_layer("block4_conv3").get_weights()[0],
                                  base.get_layer("block4_conv3").get_weights()[0])
    photos = [dataset.pixels(i) for i in (1, 12)]
    expected = np.concatenate([np.asarray(model(p[None].astype(np.float32))) for p in photos])
    np.testing.assert_allclose(classifier.predict_proba(photos), expected, atol=1e-4)
    assert cached_boundary_activations(classifier, dataset) == len(dataset)


def cached_boundary_activations(classifier, dataset) -> int:
    """How many photos' block4_pool activations (fine-tuning's input) are in the classifier's cache."""
    from quasar_core import backbone
    from quasar_core.features.cache import FeatureSpec
    from quasar_core.features.extract import FeaturePass

    spec = FeatureSpec(backbone.weights_id("none"), SIZE, classifier.precision_.precision)
    return FeaturePass(spec=spec, network_for=None, cache=classifier.cache).cached_count(dataset, layer="block4_pool")


def test_a_fine_tuned_model_says_how_familiar_a_photo_looks_in_its_own_feature_space(fine_tuned, dataset):
    """The deployed model's features of a training photo are its row of the "none of these" reference: the
    reference was computed by the fine-tuned blocks, not the frozen ones (block4_pool's half is the same in
    both; block5's changed)."""
    classifier = fine_tuned["classifier"]
    photos = [dataset.pixels(i) for i in range(4)]
    _, features = classifier.predict_proba(photos, with_features=True)

    def cosines(a, b):  # per photo; the pass that made the reference may run in bfloat16 where the CPU has it
        return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    assert cosines(features, classifier.features_[:4]).min() > 0.999
    frozen = TransferClassifier(classifier.config.replace(mode="feature-extraction"), cache=classifier.cache,
                                base_loader=classifier.base_loader).validate(dataset).features_[:4]
    assert cosines(features[:, :512], frozen[:, :512]).min() > 0.999  # block4's half: frozen in both
    assert cosines(features[:, 512:], classifier.features_[:4, 512:]).min() > 0.999  # block5's: the tuned one's
    assert not classifier.familiarity_.is_unknown(features).any()  # its own training photos, in the same space


def test_cancel_during_fine_tuning_keeps_the_head(dataset, fine_tuned, tiny_config, base_loader):
    cancel, seen, hooks = cancel_when("fine-tune")
    config = fine_tuned["classifier"].config
    classifier = fit(dataset, config, base_loader, cache=fine_tuned["classifier"].cache, hooks=hooks, cancel=cancel)
    assert classifier.cancelled_ is True and classifier.tuned_ is None
    assert seen.count("fine-tune") == 1  # stopped after the first batch
    probabilities = classifier.predict_proba([dataset.pixels(0), dataset.pixels(20)])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- reopening


def test_from_learned_predicts_like_the_fitted_classifier(fitted, dataset, base_loader):
    classifier = fitted["classifier"]
    reopened = TransferClassifier.from_learned(classifier.config, labels=classifier.labels_, head=classifier.head_,
                                               familiarity=classifier.familiarity_, precision=classifier.precision_,
                                               history=classifier.history_, base_loader=base_loader)
    assert reopened.labels_ == classifier.labels_ and reopened.history_ == classifier.history_
    assert reopened.history_ is not classifier.history_ and reopened.timings_ == {}
    assert reopened.tuned_ is None and reopened.cancelled_ is False
    photos = [dataset.pixels(i) for i in (2, 14)]
    np.testing.assert_allclose(reopened.predict_proba(photos), classifier.predict_proba(photos), atol=1e-6)
    assert reopened.predict(photos) == classifier.predict(photos)


def test_from_learned_with_tuned_layers(fine_tuned, dataset, base_loader):
    classifier = fine_tuned["classifier"]
    reopened = TransferClassifier.from_learned(classifier.config, labels=classifier.labels_, head=classifier.head_,
                                               tuned=classifier.tuned_, base_loader=base_loader)
    photos = [dataset.pixels(5)]
    np.testing.assert_allclose(reopened.predict_proba(photos), classifier.predict_proba(photos), atol=1e-6)


def test_softmax_of_the_out_of_fold_logits_are_probabilities(fitted):
    p = softmax(fitted["classifier"].validation_.logits)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_copies_of_small_photos_share_a_fold_by_their_pixels(tiny_config, base_loader, tmp_path):
    """40 px photos: re-encoded, cropped, resized copies (one filed in another class) are kept with their
    originals in every dealing, by near_copies.fold_thumbnails, where the features alone do not link them."""
    import io

    from PIL import Image

    from quasar_core.data import Limits, load_uploads
    from quasar_core.near_copies import fold_thumbnails
    from tests.conftest import CLASSES, PER_CLASS, png_bytes, shape_image

    def copy_of(label, n):
        image = shape_image(label, n)
        w, h = image.size
        image = image.crop((2, 2, w - 2, h - 2)).resize((round(0.85 * w), round(0.85 * h)), Image.BILINEAR)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=70)
        return out.getvalue()

    items = [(f"{label}_{n:02d}.png", png_bytes(shape_image(label, n)), label)
             for label in CLASSES for n in range(PER_CLASS)]
    planted = [("circle", 1, "circle"), ("square", 2, "square"), ("triangle", 3, "circle")]
    items += [(f"copy_{label}_{n:02d}.jpg", copy_of(label, n), filed) for label, n, filed in planted]
    dataset = load_uploads(items, limits=Limits())
    cache = FeatureCache(tmp_path / "features")
    classifier = TransferClassifier(tiny_config, cache=cache, base_loader=base_loader).validate(dataset)
    index = {sample.name.rsplit("/", 1)[-1]: i for i, sample in enumerate(dataset.samples)}
    pairs = [(index[f"{label}_{n:02d}.png"], index[f"copy_{label}_{n:02d}.jpg"]) for label, n, _ in planted]
    by_features = copy_groups(classifier.features_)
    assert any(by_features[a] != by_features[b] for a, b in pairs)  # the pixels are what links them
    by_pixels = copy_groups(classifier.features_, thumbs=fold_thumbnails(dataset, cache=cache))
    assert all(by_pixels[a] == by_pixels[b] for a, b in pairs)
    dealings = classifier.folds_.partitions()
    assert len(dealings) == 3
    assert all(d.assignment[a] == d.assignment[b] for d in dealings for a, b in pairs)
