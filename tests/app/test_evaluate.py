"""The Evaluate page's gallery of mistakes: captions name the file, not its whole path."""

from __future__ import annotations

import json

from conftest import new_app, write_fake_run

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
    at.button(key="reopen_latest_run").click().run()
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
