"""The photo check's findings (quasar_core.photo_findings) on small synthetic "features" with planted problems
(tests/core/findings_cases.py): near-copies and outliers found, the report's JSON and sentences, argument checks.
The label issues and the more-photos advice are tested in test_label_issues.py and test_class_advice.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from quasar_core.class_advice import ClassAdvice
from quasar_core.label_issues import LabelIssue
from quasar_core.near_copies import NearDuplicate
from quasar_core.photo_findings import Findings, Outlier, diagnose, readable_report
from tests.core.findings_cases import DIM, NAMES, PER, planted


@pytest.fixture(scope="module")
def case():
    data = planted()
    data["report"] = diagnose(data["features"], data["labels"], class_names=NAMES, files=data["files"])
    return data


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
