"""Familiarity (familiarity.py; its arithmetic and class_scores in familiarity_scores.py, drift_summary in
familiarity_drift.py): planted strangers are called unknown, the calibration holds for unknown and the unusual
band, each block's part counts on its own, saved arrays (today's and version 1's) and the pasteable numpy
snippet score exactly like the fitted model. Synthetic data only (no VGG16)."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import numpy as np
import pytest

from quasar_core import familiarity, familiarity_drift, familiarity_scores
from quasar_core.familiarity import MAX_CALIBRATION, SCORING_SNIPPET, UNUSUAL_BELOW, FamiliarityModel
from quasar_core.familiarity_drift import drift_summary
from quasar_core.familiarity_scores import class_scores

D = 64
METHODS = ("knn_cosine", "mahalanobis")


def clusters(n_per_class, classes=3, *, seed=0, channels=None):
    """ReLU-like features (>= 0): class c lights up its own 12 of the 64 channels, the rest stay dim."""
    rng = np.random.default_rng(seed)
    x, y = [], []
    for c in range(classes):
        centre = np.full(D, 0.3)
        lit = channels if channels is not None else slice(12 * c, 12 * (c + 1))
        centre[lit] = 3.0
        x.append(np.maximum(centre * rng.gamma(4.0, 0.25, (n_per_class, D)) + rng.normal(0, 0.2, (n_per_class, D)), 0))
        y += [c] * n_per_class
    return np.concatenate(x).astype(np.float32), np.array(y)


def strangers(n, seed=7):
    """Off-distribution: the channels no class uses (48..63) light up instead."""
    x, _ = clusters(n, classes=1, seed=seed, channels=slice(48, 64))
    return x


def snippet_function():
    namespace = {}
    exec(SCORING_SNIPPET, namespace)  # plain numpy, pasted into exported apps
    return namespace["familiarity"]


@pytest.fixture(scope="module")
def data():
    x, y = clusters(100)
    fresh, fresh_y = clusters(200, seed=1)
    return x, y, fresh, fresh_y


@pytest.mark.parametrize("method", METHODS)
def test_planted_strangers_are_unknown_and_fresh_photos_of_the_classes_mostly_not(data, method):
    x, y, fresh, _ = data
    model = FamiliarityModel(method=method).fit(x, y)
    assert model.is_unknown(strangers(50)).all()
    assert model.familiarity(strangers(50)).max() < 0.025
    assert model.is_unknown(fresh).mean() <= 0.08  # calibrated for 2.5 %
    assert np.median(model.familiarity(fresh)) > 0.3
    # halfway between a class and the strangers is stranger than the class
    mixed = (fresh[:50] + strangers(50)) / 2
    assert np.median(model.familiarity(mixed)) < np.median(model.familiarity(fresh[:50]))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("share", [0.95, 0.975, 0.99])
def test_out_of_fold_calibration_gives_about_the_familiar_share(data, method, share):
    x, y, fresh, _ = data
    model = FamiliarityModel(method=method, familiar_share=share).fit(x, y)
    n = len(x)
    assert len(model.calibration_scores_) == n and np.all(np.diff(model.calibration_scores_) >= 0)
    assert share - 1 / n <= model.familiar_rate_ <= share + 2 / n
    assert abs(model.is_unknown(fresh).mean() - (1 - share)) < 0.04  # unseen photos of the same classes
    # unknown <=> familiarity < 1 - share <=> score above threshold_
    fam, scores = model.familiarity(fresh), model.raw_scores(fresh)
    assert np.all((fam >= 0) & (fam <= 1))
    np.testing.assert_array_equal(model.is_unknown(fresh), fam < 1 - share - 1e-9)
    np.testing.assert_array_equal(model.is_unknown(fresh), scores > model.threshold_)


def test_an_exact_tie_with_one_minus_the_share_counts_as_familiar():
    x, y = clusters(20, classes=2)  # 40 photos: the most atypical one has familiarity 1/40 = 1 - 0.975 exactly
    model = FamiliarityModel(familiar_share=0.975).fit(x, y)
    top = model.calibration_scores_[-1]
    assert model.threshold_ == top and model.familiar_rate_ == 1.0
    assert model._familiarity_of(np.array([top]))[0] == 1 / 40 and not model._unknown_of(np.array([1 / 40]))[0]


def test_a_training_photo_is_not_its_own_neighbour_in_the_calibration(data):
    x, y, _, _ = data
    model = FamiliarityModel(k=1).fit(x, y)
    assert model.calibration_scores_.min() > 1e-3  # with itself counted it would be ~0
    assert np.all(model.familiarity(x) == 1.0)  # scored later, a training photo is its own nearest


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("block_width", [32, 64])  # two parts of 32 values (block4 | block5), or one
def test_saved_arrays_and_the_numpy_snippet_score_exactly_like_the_model(data, method, block_width):
    x, y, fresh, _ = data
    model = FamiliarityModel(method=method, k=3, block_width=block_width, unusual_below=0.2).fit(x, y)
    assert model.n_parts_ == 64 // block_width
    arrays = model.to_arrays()
    assert all(a.dtype != object for a in arrays.values())
    assert int(arrays["version"]) == 2 and int(arrays["parts"]) == model.n_parts_
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    saved = np.load(buffer, allow_pickle=False)
    loaded = FamiliarityModel.from_arrays(saved)
    probe = np.concatenate([fresh, strangers(20), x[:10], (fresh[:20] + strangers(20)) / 2])
    expected, unknown, unusual = model.answers(probe)
    assert unknown.any() and unusual.any() and (~unknown & ~unusual).any()  # all three answers are probed
    np.testing.assert_array_equal(expected, model.familiarity(probe))
    np.testing.assert_array_equal(unknown, model.is_unknown(probe))
    np.testing.assert_array_equal(unusual, model.is_unusual(probe))
    assert not (unknown & unusual).any()
    np.testing.assert_array_equal(loaded.familiarity(probe), expected)
    np.testing.assert_array_equal(loaded.is_unknown(probe), unknown)
    np.testing.assert_array_equal(loaded.is_unusual(probe), unusual)
    assert (loaded.threshold_, loaded.familiar_rate_, loaded.unusual_rate_, loaded.k, loaded.method,
            loaded.unusual_below, loaded.n_parts_) == (model.threshold_, model.familiar_rate_, model.unusual_rate_,
                                                       3, method, 0.2, model.n_parts_)
    for given in (arrays, saved):  # the dict, and the NpzFile an app loads
        fam, snippet_unknown, snippet_unusual = snippet_function()(probe, given)
        np.testing.assert_array_equal(fam, expected)
        np.testing.assert_array_equal(snippet_unknown, unknown)
        np.testing.assert_array_equal(snippet_unusual, unusual)
    fam_one, unknown_one, unusual_one = snippet_function()(probe[0], arrays)  # one photo's 1-D features
    assert fam_one.shape == unknown_one.shape == unusual_one.shape == (1,) and fam_one[0] == expected[0]


V1 = Path(__file__).with_name("familiarity_v1.npz")  # saved by the engine before version 2 (git 8f3251f)


@pytest.mark.parametrize("key", ["knn_cosine_512", "knn_cosine_1024", "mahalanobis_64"])
def test_arrays_saved_before_version_2_score_as_they_did(key):
    """Version 1: one part (512 block5 averages, or 1,024 as one vector), two answers. Loaded today they give
    the familiarity and unknown verdicts they gave then, through the class and the snippet, and the default
    unusual band on top."""
    with np.load(V1, allow_pickle=False) as stored:
        arrays = {name.split("/", 1)[1]: stored[name] for name in stored.files if name.startswith(key + "/")}
    probe, was, was_unknown = arrays.pop("probe"), arrays.pop("expected_familiarity"), arrays.pop("expected_unknown")
    assert int(arrays["version"]) == 1 and "parts" not in arrays and "unusual_below" not in arrays
    model = FamiliarityModel.from_arrays(arrays)
    assert model.n_parts_ == 1 and model.unusual_below == UNUSUAL_BELOW
    np.testing.assert_array_equal(model.familiarity(probe), was)
    np.testing.assert_array_equal(model.is_unknown(probe), was_unknown)
    np.testing.assert_array_equal(model.is_unusual(probe), ~was_unknown & (was < UNUSUAL_BELOW - 1e-9))
    fam, unknown, unusual = snippet_function()(probe, arrays)
    np.testing.assert_array_equal(fam, was)
    np.testing.assert_array_equal(unknown, was_unknown)
    np.testing.assert_array_equal(unusual, model.is_unusual(probe))
    again = FamiliarityModel.from_arrays(model.to_arrays())  # saved again: version 2, still one part
    np.testing.assert_array_equal(again.familiarity(probe), was)


def test_each_blocks_part_counts_on_its_own():
    """The first block's values are small beside the second's (as block4's averages are beside block5's
    in magnitude, or the other way): a stranger that differs only there is missed when the 64 values are
    one vector, and caught when each block is unit length on its own."""
    x, y = clusters(100)
    fresh, _ = clusters(60, seed=1)
    odd = fresh.copy()
    odd[:, :32] = odd[:, 32:].mean() * np.random.default_rng(2).gamma(1.0, 1.0, (len(odd), 32))
    scale = np.r_[np.full(32, 0.02), np.ones(32)].astype(np.float32)  # the first block 50x smaller
    x, fresh, odd = x * scale, fresh * scale, odd * scale
    two = FamiliarityModel(block_width=32).fit(x, y)
    one = FamiliarityModel(block_width=64).fit(x, y)
    assert (two.n_parts_, one.n_parts_) == (2, 1)
    assert two.is_unknown(odd).mean() >= 0.9 and one.is_unknown(odd).mean() <= 0.3
    assert two.is_unknown(fresh).mean() <= 0.08


def test_the_unusual_band_holds_about_its_share_of_photos_like_the_training_ones(data):
    x, y, fresh, _ = data
    model = FamiliarityModel(unusual_below=0.2).fit(x, y)
    assert abs(model.unusual_rate_ - (0.2 - 0.025)) <= 2 / len(x)
    fam = model.familiarity(fresh)
    np.testing.assert_array_equal(model.is_unusual(fresh), (fam >= 0.025 - 1e-9) & (fam < 0.2 - 1e-9))
    assert abs(model.is_unusual(fresh).mean() - 0.175) < 0.06
    assert model.is_unusual(strangers(20)).sum() == 0  # strangers are unknown, not merely unusual
    none = FamiliarityModel(unusual_below=0.025).fit(x, y)  # no band: two answers, as before
    assert not none.is_unusual(np.concatenate([fresh, strangers(20)])).any()
    assert "unusual" in model.describe() and f"{model.unusual_rate_ * 100:.1f} %" in model.describe()


def test_the_snippets_default_band_for_arrays_saved_before_is_the_engines():
    assert f"max({UNUSUAL_BELOW!r}, 1 - share)" in SCORING_SNIPPET and "@UNUSUAL" not in SCORING_SNIPPET


def test_the_snippet_needs_only_numpy():
    assert "sklearn" not in SCORING_SNIPPET and "quasar" not in SCORING_SNIPPET
    imports = [line for line in SCORING_SNIPPET.splitlines() if line.strip().startswith(("import", "from"))]
    assert imports == ["import numpy as np"]
    assert len(SCORING_SNIPPET.strip().splitlines()) <= 40


def test_the_bank_is_float16_and_subsampled_by_class_over_max_bank():
    x, y = clusters(300)
    x, y = x[: 300 + 300 + 60], y[: 300 + 300 + 60]  # 300, 300, 60 photos
    model = FamiliarityModel(max_bank=110).fit(x, y)
    arrays = model.to_arrays()
    assert arrays["bank"].dtype == np.float16 and arrays["bank"].shape == (110, D)
    assert np.bincount(arrays["bank_labels"]).tolist() == [50, 50, 10]
    assert abs(model.familiar_rate_ - 0.975) < 0.01  # photos outside the bank are out-of-fold by nature
    assert model.is_unknown(strangers(30)).all()


def test_the_calibration_is_capped_and_stratified_for_big_datasets():
    x, y = clusters(MAX_CALIBRATION // 2)  # 3 classes: 1.5 x the cap
    model = FamiliarityModel().fit(x, y)
    assert len(model.calibration_scores_) == MAX_CALIBRATION
    assert abs(model.familiar_rate_ - 0.975) < 0.002


@pytest.mark.parametrize("method", METHODS)
def test_tiny_datasets_still_work(method):
    x, y = clusters(3, classes=2)  # 6 photos: k=5 falls back to the 5 others
    model = FamiliarityModel(method=method).fit(x, y)
    assert model.familiarity(strangers(5)).max() == 0.0
    assert FamiliarityModel(method=method).fit(x[:2]).familiarity(x[:2]).shape == (2,)
    assert FamiliarityModel(method=method).fit(x).to_arrays()["classes"].tolist() == [0]  # no labels: one class


@pytest.mark.parametrize("kwargs, quoted", [
    ({"method": "lof"}, "'lof'"), ({"k": 0}, "0"), ({"k": 2.5}, "2.5"), ({"k": True}, "True"),
    ({"familiar_share": 1.0}, "1.0"), ({"familiar_share": 0}, "0"), ({"familiar_share": "0.9"}, "'0.9'"),
    ({"max_bank": 1}, "1"), ({"seed": -1}, "-1"), ({"unusual_below": 0.01}, "0.01"), ({"unusual_below": 1}, "1"),
    ({"unusual_below": True}, "True"), ({"block_width": 0}, "0"),
])
def test_bad_parameters_are_refused_quoting_the_value(kwargs, quoted):
    with pytest.raises(ValueError, match=list(kwargs)[0]) as info:
        FamiliarityModel(**kwargs)
    assert quoted in str(info.value)


def test_bad_inputs_are_refused_with_a_reason(data):
    x, y, _, _ = data
    model = FamiliarityModel()
    with pytest.raises(ValueError, match=r"\(5,\)"):
        model.fit(np.ones(5))
    with pytest.raises(ValueError, match="at least 2 photos"):
        model.fit(x[:1])
    bad = x.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="photo 3 holds nan"):
        model.fit(bad)
    with pytest.raises(ValueError, match="numeric"):
        model.fit([["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match="one per photo"):
        model.fit(x, y[:-1])
    with pytest.raises(ValueError, match="'ant'"):
        model.fit(x[:2], ["ant", "bee"])
    with pytest.raises(ValueError, match="0.5"):
        model.fit(x[:2], [0.5, 1])
    with pytest.raises(ValueError, match="not fitted"):
        model.familiarity(x)
    model.fit(x, y)
    with pytest.raises(ValueError, match="63 values per photo.*64"):
        model.familiarity(x[:, :63])
    assert model.familiarity(np.zeros((0, D))).shape == (0,)
    arrays = model.to_arrays()
    del arrays["calibration"]
    with pytest.raises(ValueError, match="'calibration' is missing"):
        FamiliarityModel.from_arrays(arrays)
    with pytest.raises(ValueError, match="'iforest'"):
        FamiliarityModel.from_arrays({**model.to_arrays(), "method": np.array("iforest")})


@pytest.mark.parametrize("flags, sentence", [
    ([True] * 7 + [False] * 13,
     "7 of 20 new photos look different from what the model learned — consider adding photos like them."),
    ([True] + [False] * 19,
     "1 of 20 new photos looks different from what the model learned — consider adding photos like it."),
    ([False] * 20, "All 20 new photos look like the training photos."),
    ([True] * 20, "All 20 new photos look different from what the model learned — consider adding photos like them."),
    ([False, False], "Both new photos look like the training photos."),
    ([False], "The new photo looks like the training photos."),
    ([True], "The new photo looks different from what the model learned — consider adding photos like it."),
    ([], "There are no new photos to check."),
])
def test_drift_summary_wording(flags, sentence):
    fam = np.where(np.array(flags, dtype=bool), 0.0, 0.6)
    summary = drift_summary(fam, np.array(flags, dtype=bool))
    assert summary == {"n": len(flags), "unknown": sum(flags), "share": sum(flags) / len(flags) if flags else 0.0,
                       "sentence": sentence}


def test_drift_summary_takes_a_model_output_and_refuses_mismatches(data):
    x, y, fresh, _ = data
    model = FamiliarityModel().fit(x, y)
    probe = np.concatenate([fresh[:17], strangers(3)])
    summary = drift_summary(model.familiarity(probe), model.is_unknown(probe))
    assert summary["n"] == 20 and summary["unknown"] >= 3 and summary["sentence"].endswith("photos like them.")
    with pytest.raises(ValueError, match="one flag per photo"):
        drift_summary([0.5, 0.5], [True])
    with pytest.raises(ValueError, match="1.5"):
        drift_summary([1.5], [False])
    with pytest.raises(ValueError, match="'yes'"):
        drift_summary([0.5], ["yes"])


@pytest.mark.parametrize("module", [familiarity, familiarity_scores, familiarity_drift], ids=lambda m: m.__name__)
def test_the_modules_import_only_numpy_scikit_learn_the_standard_library_and_each_other(module):
    tree = ast.parse(Path(module.__file__).read_text())
    nodes = list(ast.walk(tree))
    names = {alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in nodes if isinstance(node, ast.ImportFrom) and node.module}
    ours = {name for name in names if name.startswith("quasar_core")}
    assert ours <= {"quasar_core.familiarity_scores"}, ours  # the one step down, none back up
    others = {name.split(".")[0] for name in names - ours}
    assert others <= {"__future__", "numbers", "warnings", "numpy", "sklearn"}, others


def test_class_scores_are_out_of_fold_and_take_the_nearest_class():
    x, y = clusters(30)
    scores = class_scores(x, y)
    assert scores.shape == (len(x),) and scores.min() > 1e-3  # a photo is not its own neighbour
    odd = np.concatenate([x, strangers(2)])
    both = class_scores(odd, np.r_[y, 0, 1])  # two alike strangers filed in two classes: each far from both
    assert set(np.argsort(-both)[:2]) == {len(x), len(x) + 1}
    moved = y.copy()
    moved[0] = 1  # filed in the wrong class: near its own class all the same
    assert class_scores(x, moved)[0] <= np.percentile(scores, 90)
    with pytest.raises(ValueError, match="k"):
        class_scores(x, y, k=0)
