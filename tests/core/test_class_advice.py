"""Which class needs more photos (quasar_core.class_advice), through photo_findings.diagnose: learning curves on
planted features (tests/core/findings_cases.py), and the advice from a stand-in head whose curves are known.
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


def test_a_head_returning_the_wrong_shape_is_refused():
    x, y, files = scripted_data(per=10)
    with pytest.raises(ValueError, match=r"fit_predict.*shape"):
        diagnose(x, y, class_names=["oak", "elm", "ash"], files=files, fit_predict=lambda a, b, c: np.ones((len(c), 2)))
