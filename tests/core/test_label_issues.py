"""The photo check's label issues (quasar_core.label_issues), through photo_findings.diagnose on planted features
(tests/core/findings_cases.py): flipped labels found with their true class, the caller's probabilities used.
"""

from __future__ import annotations

import numpy as np
import pytest

from quasar_core.photo_findings import diagnose
from tests.core.findings_cases import NAMES, planted


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
