"""The Evaluate page: how sure its numbers are, the settings Best tried, and the gallery of mistakes (captions
name the file, not its whole path)."""

from __future__ import annotations

import json
import re

from tests.app.support import new_app, readable_words, write_fake_run

from ui import nav, workspace

LONG_NAMES = {  # as the run recorded them: the path inside the user's zip or folder
    "cat/0.png": "holiday photos/cat/IMG_20230514_123456.jpg",
    "cat/1.png": "holiday photos/cat/sleeping on the sofa.png",
    "dog/0.png": "dog/0.png",
    "dog/1.png": "rex.png",
}


def test_mistake_captions_show_the_base_name_with_the_full_name_as_a_tooltip(isolated_runs):
    workspace_id = workspace.new_id()
    folder = write_fake_run(isolated_runs / workspace_id / "20260101-120000-cdcd0000")
    metrics = json.loads((folder / "metrics.json").read_text())
    for prediction in metrics["predictions"]:
        prediction["name"] = LONG_NAMES[prediction["name"]]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    at = new_app({"workspace": workspace_id}).run()
    at.switch_page(nav.EVALUATE.path).run()
    assert not at.exception and not at.error

    wrong = {p["name"]: p for p in metrics["predictions"] if p["true"] != p["predicted"]}
    captions = [c for c in at.caption if c.value.count("Really") == 1]
    assert len(captions) == len(wrong) == 2
    for caption in captions:
        first_line, rest = caption.value.replace("\\", "").split("\n\n")
        [full] = [name for name in wrong if name.rsplit("/", 1)[-1] == first_line]
        assert "/" not in first_line  # no class folder before it: the class is said in words below
        assert rest.startswith(f"Really **{wrong[full]['true']}**, predicted **{wrong[full]['predicted']}**")
        assert caption.proto.help.replace("\\", "") == ("" if full == first_line else full)


def test_evaluate_says_how_sure_the_numbers_are(sample_run_template, isolated_runs):
    """The accuracy with its 95 % range and method, the reliability chart, and "none of these" in words."""
    from tests.app.support import charts_by_key, copy_run, shown_text

    from quasar_core.runs.folder import Run
    from quasar_core.runs.learned import familiarity_of
    from quasar_core.wording import calibration_claim, estimate

    workspace_id = workspace.new_id()
    folder = copy_run(sample_run_template, isolated_runs, workspace_id)
    run = Run.open(folder)
    at = new_app({"workspace": workspace_id}).run()
    at.switch_page(nav.EVALUATE.path).run()
    assert not at.exception and not at.error
    words = shown_text(at)
    metrics = run.metrics
    low, high = metrics.accuracy_interval
    assert 0 < low < metrics.accuracy < high <= 1
    assert at.metric[0].value == estimate(metrics.accuracy, metrics.accuracy_interval)
    assert f"({low * 100:.0f}–{high * 100:.0f} %)" in at.metric[0].value
    assert "Measured by: 10-fold cross-validation over 300 photos, repeated 3 times" in words  # in the details
    assert "The range is where the true accuracy lies with 95 % confidence" in words
    assert "reliability" in charts_by_key(at)
    claim = calibration_claim(metrics.reliability)  # one checkable claim, from the band nearest 90 %
    assert re.fullmatch(r"When it says (about \d{1,2} %|more than 99 %), it was right (\d{1,3} times in 100|every time) "
                        r"on photos it had not seen \(\d+ of \d+ such photos?\)\.", claim), claim
    assert claim in words and words.count("When it says ") == 1
    assert "off by" not in words  # the calibration error is for specialists: in the expander
    [details] = [e for e in at.expander if e.label == "Details for specialists"]
    assert "Expected calibration error: " in " ".join(m.value for m in details.markdown)
    familiarity = familiarity_of(run)
    assert familiarity is not None and familiarity.describe() in words
    assert "A photo counts as unlike anything the model learned" in words
    assert "Model: fashion · 5 classes · 32 px · " in words  # named by the photos it learned from
    assert all(toggle.key != "show_grad_cam" for toggle in at.toggle) == (not metrics.mistakes())


def test_best_accuracy_runs_show_the_settings_tried(isolated_runs):
    from tests.app.support import shown_text

    workspace_id = workspace.new_id()
    folder = write_fake_run(isolated_runs / workspace_id / "20260101-120000-bebe0000")
    table = [{"setting": "96 px", "accuracy": 0.7, "photos": 4, "fine_tunes": False, "chosen": False},
             {"setting": "96 px, 1 augmented copy of each photo", "accuracy": 0.75, "photos": 4, "fine_tunes": False,
              "chosen": True}]
    (folder / "selection.json").write_text(json.dumps(table))
    at = new_app({"workspace": workspace_id}).run()
    at.switch_page(nav.EVALUATE.path).run()
    assert not at.exception and not at.error
    assert "Details for specialists: the settings Best accuracy tried" in readable_words(at)
    [tried] = [frame.value for frame in at.dataframe if "Setting" in frame.value.columns]
    assert list(tried["Setting"]) == ["96 px", "96 px, 1 augmented copy of each photo"]
    assert list(tried["Accuracy"]) == ["70 %", "75 %"]
    assert list(tried["Tested on"]) == ["4 photos", "4 photos"]
    assert list(tried["Kept"]) == ["", "✓"]
