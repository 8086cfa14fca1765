"""The photo check's findings on small synthetic "features": Gaussian clusters with planted problems.

Four classes of 40 photos around random centres in 32 dimensions; 8 labels flipped to another
class, 3 near-copies (one filed under another class) and 3 photos drawn around no centre.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from quasar_core.photo_findings import ClassAdvice, Findings, LabelIssue, NearDuplicate, Outlier, diagnose, readable_report

NAMES = ["ant", "bee", "cat", "dog"]
PER, DIM = 40, 32


def planted(seed=0):
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(NAMES)), PER)
    x = rng.normal(0, 1, (len(NAMES), DIM))[truth] + rng.normal(0, 1, (len(truth), DIM))
    labels = truth.copy()
    flipped = rng.choice(len(truth), 8, replace=False)
    labels[flipped] = (truth[flipped] + rng.integers(1, len(NAMES), 8)) % len(NAMES)
    sources = np.setdiff1d(np.arange(len(truth)), flipped)[[3, 50, 90]]
    copies = x[sources] + rng.normal(0, 0.02, (3, DIM))
    copy_labels = labels[sources].copy()
    copy_labels[1] = (copy_labels[1] + 1) % len(NAMES)  # the second copy is filed under another class
    strays = rng.normal(0, 1.5, (3, DIM))
    features = np.concatenate([x, copies, strays])
    all_labels = np.concatenate([labels, copy_labels, rng.integers(0, len(NAMES), 3)])
    files = [f"{NAMES[c]}/photo_{i:03d}.png" for i, c in enumerate(all_labels)]
    n = len(truth)
    return dict(features=features, labels=all_labels, files=files, truth=truth, flipped=flipped,
                pairs=[(files[s], files[n + j]) for j, s in enumerate(sources)],
                cross_pair=(files[sources[1]], files[n + 1]),
                strays=files[n + 3:])


@pytest.fixture(scope="module")
def case():
    data = planted()
    data["report"] = diagnose(data["features"], data["labels"], class_names=NAMES, files=data["files"])
    return data


def test_flipped_labels_rank_first_with_their_true_class_suggested(case):
    issues = case["report"].label_issues
    flipped = {case["files"][i]: NAMES[case["truth"][i]] for i in case["flipped"]}
    found = [i for i in issues[: 2 * len(flipped)] if i.file in flipped]
    assert len(found) >= 7
    assert sum(i.suggested == flipped[i.file] for i in found) >= 0.9 * len(found)
    assert all(0 <= i.score <= 1 and i.suggested != i.given for i in issues)
    assert [i.score for i in issues] == sorted((i.score for i in issues), reverse=True)
    assert 10 <= len(issues) <= len(case["files"]) // 4  # capped: never the whole dataset


def test_near_copies_are_grouped_and_the_copy_in_another_class_comes_first(case):
    groups = case["report"].near_duplicates
    for a, b in case["pairs"]:
        assert any({a, b} <= set(g.files) for g in groups), (a, b)
    assert set(case["cross_pair"]) <= set(groups[0].files) and len(set(groups[0].classes)) == 2
    assert len(groups) == 3  # the distinct photos of a class are not taken for copies
    assert all(0.9 < g.similarity <= 1 and len(g.classes) == len(g.files) for g in groups)


def pooled_like(seed=0, strays=3, per=PER):
    """Features as VGG16's pooled averages are (>= 0): class c lights up its own 6 of 32 channels; strays light
    up channels no class uses (26..31), each filed in some class, like photos of other things among the photos."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for c in range(len(NAMES)):
        centre = np.full(DIM, 0.3)
        centre[6 * c:6 * (c + 1)] = 3.0
        rows.append(centre * rng.gamma(4.0, 0.25, (per, DIM)))
        labels += [c] * per
    centre = np.full(DIM, 0.3)
    centre[26:] = 3.0
    rows.append(centre * rng.gamma(4.0, 0.25, (strays, DIM)))
    labels += [int(c) for c in rng.integers(0, len(NAMES), strays)]
    files = [f"{NAMES[c]}/photo_{i:03d}.png" for i, c in enumerate(labels)]
    return np.concatenate(rows).astype(np.float32), np.array(labels), files


def test_photos_unlike_every_class_are_the_first_outliers():
    features, labels, files = pooled_like()
    outliers = diagnose(features, labels, class_names=NAMES, files=files).outliers
    assert {o.file for o in outliers[:3]} == set(files[-3:])
    assert all(0 < o.score < 1 for o in outliers)
    assert [o.score for o in outliers] == sorted((o.score for o in outliers), reverse=True)


def test_outliers_are_listed_by_a_threshold_from_the_photos_not_a_fixed_count():
    """Strays alike among themselves (each other's nearest neighbours) are still listed: class by class, a stray
    filed in one class is far from that class and from the others. A clean set lists the few beyond the fence
    of its own scores."""
    from quasar_core.familiarity_scores import class_scores
    from quasar_core.photo_findings import OUTLIER_FENCE

    features, labels, files = pooled_like(strays=6)
    outliers = diagnose(features, labels, class_names=NAMES, files=files).outliers
    assert set(files[-6:]) <= {o.file for o in outliers[:8]}
    clean = pooled_like(strays=0, seed=1)
    listed = diagnose(clean[0], clean[1], class_names=NAMES, files=clean[2]).outliers
    assert len(listed) <= len(clean[2]) // 10  # (real photos: ~4 %, bench/README; these gamma draws' tail is longer)
    score = class_scores(clean[0], clean[1])
    q1, q3 = np.percentile(score, [25, 75])
    assert {o.file for o in listed} == {f for f, s in zip(clean[2], score) if s > q3 + OUTLIER_FENCE * (q3 - q1)}
    # a photo filed in the wrong class is near its true class: a label issue, not an outlier
    moved = labels.copy()
    moved[0] = 1
    assert files[0] not in {o.file for o in diagnose(features, moved, class_names=NAMES, files=files).outliers}


def test_learning_curves_cover_every_class_at_four_sizes(case):
    classes = case["report"].classes
    assert [c.label for c in classes] == NAMES
    for c in classes:
        assert len(c.curve) == 4 and [p for p, _ in c.curve] == sorted(p for p, _ in c.curve)
        assert c.accuracy == c.curve[-1][1] and c.count == int(np.sum(case["labels"] == NAMES.index(c.label)))


def scripted_head(recall_of):
    """A stand-in head whose recall of class c, learning from m of its photos, is recall_of(c, m).

    Feature 0 carries the true class and feature 1 a fixed random number, so the curves are known.
    """
    def fit_predict(train_x, train_y, test_x):
        counts = np.bincount(train_y, minlength=3)
        truth = test_x[:, 0].astype(int)
        right = test_x[:, 1] < np.array([recall_of(c, counts[c]) for c in truth])
        guess = np.where(right, truth, (truth + 1) % 3)
        return np.eye(3)[guess]
    return fit_predict


def scripted_data(per=60):
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), per)
    x = np.column_stack([y, rng.random(len(y)), rng.normal(0, 1, (len(y), 6))])
    return x, y, [f"{i}.png" for i in range(len(y))]


def test_the_advice_names_the_class_whose_curve_is_steepest():
    x, y, files = scripted_data()
    steep = {0: lambda m: 0.2 + 0.016 * m, 1: lambda m: 0.80 + 0.001 * m, 2: lambda m: 0.99}
    report = diagnose(x, y, class_names=["oak", "elm", "ash"], files=files,
                      fit_predict=scripted_head(lambda c, m: steep[c](m)))
    assert report.advice.startswith("About ") and "'oak' would likely help most" in report.advice
    oak, elm, ash = report.classes
    assert oak.curve[0][1] < 0.45 < 0.65 < oak.curve[-1][1] and oak.more_photos is not None
    assert ash.more_photos is None  # already recognised well


def test_equal_curves_do_not_single_out_a_class():
    x, y, files = scripted_data()
    report = diagnose(x, y, class_names=["oak", "elm", "ash"], files=files,
                      fit_predict=scripted_head(lambda c, m: 0.3 + 0.01 * m))
    assert "help most" not in report.advice and "same pace" in report.advice


def test_round_trip_through_json_keeps_everything(case):
    report = case["report"]
    d = report.to_dict()
    assert list(d) == ["label_issues", "near_duplicates", "outliers", "classes", "advice"]
    assert set(d["label_issues"][0]) == {"file", "given", "suggested", "score"}
    assert set(d["near_duplicates"][0]) == {"files", "similarity", "classes"}
    assert set(d["outliers"][0]) == {"file", "score"}
    assert set(d["classes"][0]) == {"label", "count", "accuracy", "more_photos", "curve"}
    assert set(d["classes"][0]["curve"][0]) == {"photos", "accuracy"}
    assert Findings.from_dict(json.loads(json.dumps(d))) == report


def test_readable_report_is_plain_sentences(case):
    lines = readable_report(case["report"])
    assert all(isinstance(line, str) and line for line in lines)
    assert case["report"].label_issues[0].file in "\n".join(lines)
    assert lines[-1] == case["report"].advice
    empty = Findings((), (), (), (ClassAdvice("a", 5, 1.0, ((4, 1.0),), None),), "Fine.")
    assert readable_report(empty)[0] == "No photo looks wrongly labelled."


def test_callers_probabilities_and_views_are_used():
    data = planted(seed=2)
    n = len(data["labels"])
    truth = np.concatenate([data["truth"], data["labels"][len(data["truth"]):]])
    given = np.full((n, 4), 0.02) + 0.92 * np.eye(4)[truth]  # a training that knows the true classes
    given[0] = np.nan  # a photo the training never tested
    views = data["features"][None] + np.random.default_rng(3).normal(0, 0.1, (2, *data["features"].shape))
    report = diagnose(data["features"], data["labels"], class_names=NAMES, files=data["files"],
                      oof_probabilities=given, views=views, folds=3, seed=1)
    plain = diagnose(data["features"], data["labels"], class_names=NAMES, files=data["files"], folds=3, seed=1)
    flipped = {data["files"][i] for i in data["flipped"]}
    assert sum(i.file in flipped for i in report.label_issues[:8]) >= 7

    def flipped_score(r):
        return np.mean([i.score for i in r.label_issues if i.file in flipped])
    assert flipped_score(report) > flipped_score(plain) + 0.02  # the caller's confident probabilities counted


def test_dataclasses_are_typed_and_frozen():
    issue = LabelIssue("a.png", "cat", "dog", 0.9)
    with pytest.raises(AttributeError):
        issue.score = 0.1
    assert NearDuplicate(("a", "b"), 0.99, ("x", "y")).files == ("a", "b") and Outlier("a", 0.5).score == 0.5


GOOD = planted(seed=4)


@pytest.mark.parametrize("change, match", [
    (dict(features=np.zeros(5)), r"features.*shape \(5,\)"),
    (dict(features=np.full((len(GOOD["labels"]), 3), np.nan)), "row 0"),
    (dict(labels=GOOD["labels"][:-1]), "labels"),
    (dict(labels=np.where(np.arange(len(GOOD["labels"])) == 0, 7, GOOD["labels"])), "label 7"),
    (dict(labels=GOOD["labels"].astype(float)), "labels"),
    (dict(class_names=["ant", "ant", "cat", "dog"]), "'ant', 'ant'"),
    (dict(class_names=["ant", "bee", "cat", "dog", "elk"]), "'elk' has 0 photo"),
    (dict(files=GOOD["files"][:-1] + [GOOD["files"][0]]), "ant/photo_000.png. twice"),
    (dict(files=GOOD["files"][:-1]), "Received 165"),
    (dict(oof_probabilities=np.ones((3, 4))), r"shape \(3, 4\)"),
    (dict(oof_probabilities=np.full((len(GOOD["labels"]), 4), 0.5)), r"row 0: \[0.5, 0.5, 0.5, 0.5\]"),
    (dict(fit_predict="logistic"), "'logistic'"),
    (dict(folds=1), "folds=1"),
    (dict(folds=True), "folds=True"),
    (dict(seed=-1), "seed=-1"),
    (dict(views=np.zeros((2, 3, 32))), r"\(2, 3, 32\)"),
])
def test_bad_arguments_are_refused_naming_the_value(change, match):
    args = dict(features=GOOD["features"], labels=GOOD["labels"], class_names=NAMES, files=GOOD["files"]) | change
    features, labels = args.pop("features"), args.pop("labels")
    with pytest.raises(ValueError, match=match):
        diagnose(features, labels, **args)


def test_a_head_returning_the_wrong_shape_is_refused():
    x, y, files = scripted_data(per=10)
    with pytest.raises(ValueError, match=r"fit_predict.*shape"):
        diagnose(x, y, class_names=["oak", "elm", "ash"], files=files, fit_predict=lambda a, b, c: np.ones((len(c), 2)))
