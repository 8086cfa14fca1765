"""The Train page tells its story to a stakeholder (issue 24): during and after a Quick run the learning story
(accuracy on unseen photos as it learns from more of them), during and after a Best run the leaderboard of the
settings tried, the winner named in the settings line, one status line instead of a column of boxes, no warning
about a model that was not kept, and none of a specialist's words outside "Details for specialists".

The jobs are the stand-ins of test_train.py: real TrainingJobs in the real queue whose work writes the history
rows the engine writes (phases "head", "fine-tune", "learning", "candidate", "choice") and a fake run folder.
"""

from __future__ import annotations

import json
import threading

import pytest
from tests.app.support import charts_by_key, new_app, shown_text, wait_for_job, write_fake_run
from tests.app.test_train import CURVES_LOOK_FINE, stand_in_job, stopped_before_any_candidate, train_page

from quasar_core import charts
from quasar_core.config import TrainConfig
from quasar_core.progress import Progress
from quasar_core.runs.folder import write_json
from ui import nav, workspace

DETAILS = "Details for specialists"
BANNED = (" C ", "C =", "log loss", "fold", "hold-out", "int8", "float32", "regularis", "regulariz", "e-0", "100 %")
TEXT_KINDS = ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error")
WINNER, FIRST = "352 px, 1 augmented copy of each photo", "128 px"
REASON = f"{WINNER} named the most photos correctly; fine-tuning was not clearly better, so the simpler one was kept."
TRIAL_RUN = "Fine-tuning VGG16's top 1 block(s) (trial run)."


def figure_words(spec: dict) -> list[str]:
    """What a person reads in a drawn Plotly figure: titles, axes, tick text, annotations, names, text, hovers."""
    layout, words = spec.get("layout", {}), []
    title = layout.get("title", {})
    words += [title.get("text", ""), title.get("subtitle", {}).get("text", "")]
    for key, axis in layout.items():
        if key.startswith(("xaxis", "yaxis")):
            words += [axis.get("title", {}).get("text", ""), *map(str, axis.get("ticktext", []))]
    words += [note.get("text", "") for note in layout.get("annotations", [])]
    for trace in spec.get("data", []):
        text = trace.get("text", [])
        words += [trace.get("name", ""), trace.get("hovertemplate", ""), *([text] if isinstance(text, str) else text)]
        words += [str(cell) for row in trace.get("customdata", []) for cell in row]
    return [word for word in words if word]


def outside_details(at) -> str:
    """Every word the page shows outside the "Details for specialists" expander: its text, alerts, progress bars,
    buttons, links, and each chart's words."""
    parts = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            kind = getattr(child, "type", None)
            if kind == "expander" and child.label == DETAILS:
                continue
            if kind in TEXT_KINDS:
                parts.append(str(child.value))
            elif kind == "plotly_chart":
                parts.extend(figure_words(json.loads(child.proto.spec)))
            elif kind == "progress":
                parts.append(child.proto.text)
            elif kind in ("button", "page_link", "expander"):
                parts.append(str(child.label))
            walk(child)

    walk(at.main)
    return "\n".join(parts).replace("\\", "").replace("**", "")


def assert_plain(at) -> None:
    words = outside_details(at)
    for banned in BANNED:
        assert banned not in words, f"{banned!r} outside the details:\n{words}"


def details_of(at):
    [expander] = [block for block in at.get("expander") if block.label == DETAILS]
    return expander


def figure(at, key: str) -> dict:
    return json.loads(charts_by_key(at)[key].proto.spec)


def learning_rows(photos=240, tested=300):
    return [{"phase": "learning", "share": share, "photos": int(photos * share), "accuracy": accuracy,
             "low": accuracy - 0.07, "high": accuracy + 0.05, "tested": tested}
            for share, accuracy in ((0.25, 0.71), (0.5, 0.80), (0.75, 0.84), (1.0, 0.86))]


def head_row(accuracy=0.86, strength=1e-06):
    return {"phase": "head", "strength": strength, "accuracy": accuracy, "log_loss": 0.4,
            "train_accuracy": accuracy + 0.05, "chosen": True}


def candidate_row(setting, accuracy, size):
    return {"phase": "candidate", "setting": setting, "image_size": size, "augment": "augmented" in setting,
            "accuracy": accuracy, "low": accuracy - 0.06, "high": accuracy + 0.04, "photos": 245, "seconds": 30.0}


def overfitting_trial():
    """A fine-tuning trial whose photos set aside get worse while the rest get better: fit_hints warns about it."""
    return [{"phase": "fine-tune", "epoch": n, "loss": 1.0 - 0.1 * n, "accuracy": 0.6 + 0.05 * n, "val_loss": val,
             "val_accuracy": 0.7, "seconds": 2.0, "label": "hold-out"}
            for n, val in enumerate((0.5, 0.4, 0.45, 0.5, 0.55, 0.6), 1)]


CHOICE = {"phase": "choice", "setting": WINNER, "accuracy": 0.87, "low": 0.82, "high": 0.91, "reason": REASON}


def story_workspace(isolated_runs, preset: str) -> str:
    """A new workspace whose kept settings are `preset`'s (so the page's settings line shows, without photos)."""
    from quasar_core.workspace import Workspace

    workspace_id = workspace.new_id()
    Workspace(isolated_runs / workspace_id, workspace_id=workspace_id).keep_settings(
        preset, TrainConfig(image_size=352 if preset == "Best accuracy" else 32), chosen=True)
    return workspace_id


def finish_with(history, *, image_size=32):
    def finish(run_dir, job, hooks):
        write_fake_run(run_dir, accuracy=0.75)
        config = json.loads((run_dir / "config.json").read_text())
        write_json(run_dir / "config.json", {**config, "image_size": image_size})
        write_json(run_dir / "history.json", history)
        return "done"

    return finish


def test_quick_run_shows_the_learning_story_in_plain_words(isolated_runs):
    from quasar_core import insights

    rows = [head_row(), *learning_rows()]
    release = threading.Event()
    workspace_id = story_workspace(isolated_runs, "Quick look")
    job, _ = stand_in_job(isolated_runs, finish_with(rows), hold=release, workspace_id=workspace_id,
                          begin=lambda hooks: [hooks.epoch_end(row) for row in rows])
    try:
        at = train_page(workspace_id)
        assert not at.exception and not at.error
        assert "Settings: Quick look preset · 32 px · " in shown_text(at)
        learning = figure(at, "learning_chart")
        assert learning["layout"]["title"]["text"] == charts.LEARNING_TITLE
        assert learning["data"][0]["x"] == [60, 120, 180, 240]
        assert "leaderboard_chart" not in charts_by_key(at)
        assert "selection_chart" in charts_by_key(at)  # the classifier's strength: for specialists, folded away
        assert charts_by_key(at)["selection_chart"] in details_of(at).get("plotly_chart")
        assert_plain(at)  # the strength's 1e-06 and "log loss" stay inside the details
        release.set()
        job = wait_for_job(at)
    finally:
        release.set()
    assert job.state == "done" and not at.exception and not at.error
    assert "learning_chart" in charts_by_key(at) and "leaderboard_chart" not in charts_by_key(at)
    assert "It named 3 of 4 photos correctly that the model testing them had never seen: about 75 %" in shown_text(at)
    assert "Accuracy measured by 5-fold cross-validation over 4 photos." in \
        [str(element.value).replace("\\", "") for element in details_of(at).get("markdown")]
    assert insights.fit_hints(rows) == [] and CURVES_LOOK_FINE in shown_text(at)
    assert_plain(at)


def test_best_run_fills_the_leaderboard_and_the_header_names_the_winner(isolated_runs):
    from quasar_core import insights

    tried = [candidate_row(FIRST, 0.78, 128), candidate_row(WINNER, 0.88, 352)]
    tuned = candidate_row("224 px, fine-tuning the top block", 0.85, 224)
    trial = overfitting_trial()
    assert any("fine-tuning" in hint.text for hint in insights.fit_hints(trial))  # a warning it must not show
    searches = [[head_row(0.78, strength=0.01)], [head_row(0.88, strength=0.1)], [head_row(0.85, strength=1.0)]]
    history = [*searches[0], tried[0], *searches[1], tried[1], *searches[2], *trial, tuned, CHOICE]
    scored, chosen, release = threading.Event(), threading.Event(), threading.Event()

    def begin(hooks):  # two settings scored, the third fine-tuning its trial run
        for number, row in enumerate(tried, 1):
            hooks.message(f"Trying setting {number} of 3: {row['setting']}.")
            for each in [*searches[number - 1], row]:  # its search for the classifier's strength, then its score
                hooks.epoch_end(each)
        hooks.message(f"Trying setting 3 of 3: {tuned['setting']}.")
        hooks.message("Fine-tuning VGG16's top 1 block(s) (hold-out).")
        for row in [*searches[2], *trial]:
            hooks.epoch_end(row)

    def finish(run_dir, job, hooks):  # the third is scored, the choice made; the kept model learns; the run is saved
        for row in (tuned, CHOICE):
            hooks.epoch_end(row)
        hooks.message(f"Learning from every photo with {WINNER}.")
        chosen.set()
        release.wait(60)
        return finish_with(history, image_size=352)(run_dir, job, hooks)

    workspace_id = story_workspace(isolated_runs, "Best accuracy")
    job, _ = stand_in_job(isolated_runs, finish, hold=scored, begin=begin, workspace_id=workspace_id)
    try:
        at = train_page(workspace_id)
        assert not at.exception and not at.error
        assert "Settings: Best accuracy preset · tries several settings and keeps the one that does best" in \
            shown_text(at)
        board = figure(at, "leaderboard_chart")
        assert [trace["name"] for trace in board["data"]] == ["Tried so far"]
        assert board["layout"]["yaxis"]["ticktext"] == [FIRST, WINNER]
        # one status line, the latest message in plain words; no column of "Trying setting …" boxes
        assert [str(c.value).replace("\\", "") for c in at.caption if "setting" in c.value or "block" in c.value] \
            == [TRIAL_RUN]
        assert not any("Trying setting" in box.value for box in at.info)
        assert "learning_chart" not in charts_by_key(at)
        assert charts_by_key(at)["training_curves"] in details_of(at).get("plotly_chart")
        assert_plain(at)

        # Chosen, while the kept model still learns: the settings line names the winner, the board marks it.
        scored.set()
        assert chosen.wait(30)
        at.run()
        assert f"Settings: Best accuracy preset · kept: {WINNER} · " in shown_text(at)
        assert f"kept: {FIRST}" not in shown_text(at)
        board = figure(at, "leaderboard_chart")
        assert [trace["name"] for trace in board["data"]] == ["Not kept", "Kept", "Expected on new photos"]
        assert board["layout"]["title"]["subtitle"]["text"].replace("<br>", " ") == REASON
        assert board["data"][1]["y"] == [1] and board["data"][1]["text"][0].endswith("88.0 % · kept")
        assert_plain(at)
        release.set()
        job = wait_for_job(at)
    finally:
        scored.set()
        release.set()
    assert job.state == "done" and not at.exception and not at.error

    def after(at):
        assert f"Settings: Best accuracy preset · kept: {WINNER} · " in shown_text(at)
        board = figure(at, "leaderboard_chart")
        assert [trace["name"] for trace in board["data"]] == ["Not kept", "Kept", "Expected on new photos"]
        assert "learning_chart" not in charts_by_key(at)
        # the fine-tuning that was not kept warns about nothing, inside the details or out; its curves say so
        assert not any("fine-tuning" in box.value.lower() for box in at.warning)
        assert "Fine-tuning was tried and not kept: these curves are of the model set aside." in \
            [c.value for c in details_of(at).get("caption")]
        assert "It named 3 of 4 photos correctly" in shown_text(at)
        assert figure(at, "selection_chart")["data"][0]["x"] == [0.1]  # the kept setting's search only
        assert_plain(at)

    after(at)
    assert not any("setting" in c.value for c in at.caption)  # the status line goes with the training
    # A new visit to the workspace shows the kept model the same way.
    again = new_app({"workspace": workspace_id}).run().switch_page(nav.TRAIN.path).run()
    assert not again.exception and not again.error
    assert "Showing the current model: pets.zip · 2 classes · 352 px" in shown_text(again)
    after(again)


def test_progress_bar_words_while_the_classifier_is_tested_are_plain(isolated_runs):
    workspace_id = story_workspace(isolated_runs, "Quick look")
    job, _ = stand_in_job(isolated_runs, stopped_before_any_candidate, workspace_id=workspace_id,
                          begin=lambda hooks: hooks.progress(Progress("head", 2, 10)))
    try:
        at = train_page(workspace_id)
        assert at.get("progress") and "Step 2 of 3" in at.get("progress")[0].proto.text
        assert_plain(at)
    finally:
        job.cancel()
