"""Label more in a real browser: the model asks about photos to label, three are confirmed with one click each,
the round is learned from, and the chart of what each round bought grows a point."""

from __future__ import annotations

import io
import shutil

import pytest

from tests.browser.support import (PAGE_MS, SAMPLE_DIR, Page, button, chart, expect, heading, keyed_prefix, reads_well,
                                   screenshot, settled, weights_file)

pytestmark = pytest.mark.browser
PER_CLASS = 8


@pytest.fixture(scope="module")
def trained_sample(tmp_path_factory):
    """A run trained on the sample photos at 32 px (ImageNet weights where there are some), read-only."""
    from quasar_core import backbone, sample
    from quasar_core.config import TrainConfig
    from quasar_core.runs.pipeline import train_run

    weights = weights_file()
    with pytest.MonkeyPatch.context() as patch:
        if weights:
            patch.setenv("QUASAR_VGG16_WEIGHTS", weights)
        choice = "imagenet" if weights else "none"
        folder = tmp_path_factory.mktemp("label-run") / "20260101-120000-1abe1abe"
        train_run(sample.load_sample(), TrainConfig(image_size=32, weights=choice, seed=0), folder,
                  base_loader=backbone.base_loader(choice))
    return folder


def mirrored(path) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(path).transpose(Image.FLIP_LEFT_RIGHT).save(buffer, "PNG")
    return buffer.getvalue()


def workspace_to_label(runs, run_template) -> str:
    """A workspace on the server's disk: the sample photos labelled, a model of them, 40 photos to label."""
    from quasar_core import sample
    from quasar_core.data import load_unlabelled
    from quasar_core.workspace import Workspace
    from ui import workspace

    workspace_id = workspace.new_id()
    space = Workspace(runs / workspace_id, workspace_id=workspace_id)
    shutil.copytree(run_template, space.root / run_template.name)
    space.keep_dataset(sample.load_sample())
    later = space.new_photos_folder()
    for folder in sorted(p for p in SAMPLE_DIR.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.png"))[:PER_CLASS]:
            space.save_upload(later, f"new_{path.name}", mirrored(path))
    space.keep_unlabelled(load_unlabelled(later))
    return workspace_id


def test_label_one_round_and_see_the_chart_grow(page: Page, shared_server, trained_sample):
    workspace_id = workspace_to_label(shared_server.runs, trained_sample)
    page.goto(f"{shared_server.url}/label?workspace={workspace_id}")
    heading(page, "Label more")
    # The first visit reads every photo through VGG16 once, then asks about the round's photos.
    expect(page.get_by_text("Round 1.")).to_be_visible(timeout=4 * PAGE_MS)
    settled(page)
    rounds = chart(page, "label_rounds")
    expect(rounds).to_contain_text("start")
    expect(rounds).not_to_contain_text("round 1")
    confirms = keyed_prefix(page, "confirm_").get_by_role("button")
    asked = confirms.count()
    assert asked >= 3
    for number in range(3):  # one click each; a confirmed photo shows what was decided and Undo
        confirms.first.click()
        settled(page)
        expect(keyed_prefix(page, "confirm_").get_by_role("button")).to_have_count(asked - number - 1)
    expect(page.get_by_text("Labelled ").first).to_be_visible()
    learn = button(page, "learn")
    expect(learn).to_contain_text("3 new labels")
    learn.click()
    settled(page)
    expect(page.get_by_text("Round 1 learned")).to_be_visible()
    expect(page.get_by_text("Round 2.")).to_be_visible()
    expect(chart(page, "label_rounds").filter(has_text="round 1")).to_have_count(1)  # the chart grew a point
    reads_well(page)
    screenshot(page, "label")
