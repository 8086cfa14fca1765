"""Two sessions at once stay private and queue; nothing is lost on a reload or a server crash."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.browser.support import (CLASSES, PAGE_MS, PER_CLASS, StreamlitServer, TRAIN_MS, advanced_settings,
                                   button, choose_image_size, expect, heading, keyed, make_zip, needs_weights, pins,
                                   reads_well, run_folders, screenshot, seen, settled, sidebar_to, upload_zip,
                                   wait_for_training, watch_for, workspace_of)

pytestmark = pytest.mark.browser


def test_two_sessions_queue_and_stay_private(new_page, server, shared_server, tmp_path):
    """Two workspaces start trainings at about the same time: the second waits its turn, both finish, apart."""
    needs_weights()
    first, second = new_page(), new_page()
    # The first: the sample (300 photos), long enough for the second to wait behind it.
    first.goto(server)
    heading(first, "Quasar Nexus")
    sidebar_to(first, "Upload photos")
    first.get_by_role("tab", name="The sample dataset").click()
    button(first, "load_sample").click()
    expect(first.get_by_text("300 usable photos in 5 classes")).to_be_visible()
    sidebar_to(first, "Train")
    # The second: 24 photos of 3 classes at the smallest size.
    second.goto(server)
    heading(second, "Quasar Nexus")
    upload_zip(second, make_zip(tmp_path, "shoes-and-bags.zip"))
    sidebar_to(second, "Configure")
    expect(second.get_by_text("Estimated training time on this computer")).to_be_visible(timeout=3 * PAGE_MS)
    choose_image_size(second, 32)
    sidebar_to(second, "Train")
    mine, theirs = workspace_of(first), workspace_of(second)
    assert mine != theirs

    watch_for(second, '[data-testid="stAlert"]', "you are number 1 in line")
    button(first, "start_training").click()
    expect(first.get_by_test_id("stProgress")).to_be_visible()
    button(second, "start_training").click()
    queued = second.get_by_test_id("stAlert").filter(has_text=re.compile(
        r"Waiting for another job on this server to finish: you are number 1 in line\. It starts by itself\."))
    expect(queued).to_be_visible()
    expect(button(second, "start_training")).to_be_disabled()
    expect(button(second, "stop_training")).to_be_enabled()  # a place in the queue can be given up
    expect(first.get_by_text("in line")).to_have_count(0)  # the first is not waiting for anyone
    reads_well(second)
    screenshot(second, "two-sessions-queued")
    wait_for_training(first)
    wait_for_training(second)
    assert seen(second, '[data-testid="stAlert"]', "you are number 1 in line")
    expect(second.get_by_text("in line")).to_have_count(0)

    for page, own, other, photos in ((first, "fashion · 5 classes · 96 px", "shoes-and-bags.zip", 300),
                                     (second, "shoes-and-bags.zip · 3 classes · 32 px", "fashion", 24)):
        expect(page.get_by_text(re.compile(rf"^It named \d+ of {photos} photos correctly"))).to_be_visible()
        sidebar_to(page, "Past runs")
        expect(pins(page)).to_have_count(1)  # its own run only
        expect(page.get_by_text(own, exact=False)).to_be_visible()
        expect(page.get_by_test_id("stMain").get_by_text(other, exact=False)).to_have_count(0)
        settled(page)
        reads_well(page)
    screenshot(second, "two-sessions-runs")
    # On disk too: each workspace's run in its own folder, each feature cache apart.
    runs = shared_server.runs
    assert [len(run_folders(runs, workspace)) for workspace in (mine, theirs)] == [1, 1]
    assert (runs.parent / "features" / mine).is_dir() and (runs.parent / "features" / theirs).is_dir()


def test_nothing_lost_on_a_reload_or_a_server_crash(new_page, tmp_path):
    """Photos and settings survive a reload; a `kill -9` mid-training leaves an interrupted run, not a stuck one."""
    needs_weights()
    server = StreamlitServer(tmp_path / "server")
    server.home.mkdir()
    try:
        server.start()
        page = new_page()
        page.goto(server.url)
        heading(page, "Quasar Nexus")
        workspace_id = workspace_of(page)
        upload_zip(page, make_zip(tmp_path))
        sidebar_to(page, "Configure")
        expect(page.get_by_text("Estimated training time on this computer")).to_be_visible(timeout=3 * PAGE_MS)
        # VGG16's own size: 24 photos then take several seconds through VGG16, time enough to cut it off.
        size = 224
        choose_image_size(page, size)

        # A reload is a new Streamlit session on the same address: the photos and the setting are still there.
        page.reload()
        heading(page, "Configure")
        assert workspace_of(page) == workspace_id
        advanced_settings(page)
        expect(keyed(page, "setting.image_size").get_by_test_id("stSliderThumbValue")).to_have_text(f"{size} px")
        expect(page.get_by_text("Started from the Balanced preset, with your changes.")).to_be_visible()
        sidebar_to(page, "Upload photos")
        expect(page.get_by_text(f"{len(CLASSES) * PER_CLASS} usable photos in {len(CLASSES)} classes")).to_be_visible()
        sidebar_to(page, "Train")
        expect(page.get_by_text(f"Settings: Balanced preset · {size} px · ImageNet weights")).to_be_visible()
        start = button(page, "start_training")
        expect(start).to_be_enabled()
        settled(page)
        reads_well(page)

        # Start, and kill the server while VGG16 reads the photos (or the folds are being fitted).
        start.click()
        run = cut_off_point(server.runs / workspace_id)
        server.kill()
        status = json.loads((run / "status.json").read_text())
        assert status["state"] == "running", status  # what a crash leaves behind

        # A new server on the same runs folder (and feature cache), the same address.
        server.start()
        page.goto(page.url)
        heading(page, "Train")
        assert workspace_of(page) == workspace_id
        start = button(page, "start_training")
        expect(start).to_be_enabled()
        expect(page.get_by_text(f"Settings: Balanced preset · {size} px · ImageNet weights")).to_be_visible()
        sidebar_to(page, "Upload photos")
        expect(page.get_by_text(f"{len(CLASSES) * PER_CLASS} usable photos in {len(CLASSES)} classes")).to_be_visible()
        sidebar_to(page, "Past runs")
        expect(pins(page)).to_have_count(1)
        expect(page.get_by_text(f"clothes.zip · 3 classes · {size} px", exact=True)).to_be_visible()
        expect(page.get_by_text(re.compile(r"^Interrupted · trained "))).to_be_visible()
        expect(page.get_by_text(re.compile(
            r"^The training stopped while (reading your photos through VGG16|testing the classifier on photos it "
            r"has not learned from): the server or the program was stopped before it finished\.$"))).to_be_visible()
        main = page.get_by_test_id("stMain")
        expect(main.get_by_text(re.compile(r"running|training now", re.IGNORECASE))).to_have_count(0)
        expect(button(page, f"reopen_{run.name}")).to_be_disabled()  # it has no model to reopen
        settled(page)
        reads_well(page)
        screenshot(page, "restart-runs")

        # Start works again, and this time the training runs to the end.
        sidebar_to(page, "Train")
        button(page, "start_training").click()
        wait_for_training(page)
        expect(page.get_by_text(re.compile(rf"^It named \d+ of {len(CLASSES) * PER_CLASS} photos correctly"))
               ).to_be_visible()
        sidebar_to(page, "Past runs")
        expect(pins(page)).to_have_count(2)
        expect(page.get_by_text(re.compile(r"^Finished · trained "))).to_be_visible()
        expect(page.get_by_text(re.compile(r"^Interrupted · trained "))).to_be_visible()
        settled(page)
        reads_well(page)
        screenshot(page, "restart-runs-after")
        assert len(run_folders(server.runs, workspace_id)) == 2
    finally:
        server.stop()


CUT_OFF_PHASES = ("reading your photos through VGG16", "testing the classifier on photos it has not learned from")


def cut_off_point(workspace_runs: Path, timeout: float = TRAIN_MS / 1000) -> Path:
    """The run folder, as soon as its status says the feature pass or the folds are under way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for status_file in workspace_runs.glob("*/status.json"):
            try:
                status = json.loads(status_file.read_text())
            except (OSError, ValueError):
                continue
            if status.get("state") != "running":
                pytest.fail(f"the training ended ({status.get('state')}) before the server could be cut off: "
                            f"{status.get('message')}")
            if status.get("phase") in CUT_OFF_PHASES:
                return status_file.parent
        time.sleep(0.02)
    pytest.fail(f"no training reached the feature pass within {timeout:.0f} s")
