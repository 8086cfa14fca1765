"""Save project, lose the server's disk, open the project on a new server: everything the user saw comes back."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.browser.support import (PAGE_MS, TRAINED, TRAIN_MS, StreamlitServer, expect, heading, keyed, needs_weights, pins,
                                   reads_well, screenshot, settled, sidebar, sidebar_to)

pytestmark = pytest.mark.browser


def test_a_saved_project_restores_photos_runs_and_the_model_on_a_wiped_server(new_page, tmp_path):
    """The sample trained, the project saved; runs/ and features/ wiped, the server restarted; the file opened in a
    new session shows the photos, the run on Past runs and the current model on Train."""
    needs_weights()
    server = StreamlitServer(tmp_path / "server")
    server.home.mkdir()
    try:
        server.start()
        page = new_page()
        page.goto(server.url)
        heading(page, "Quasar Nexus")
        page.get_by_role("button", name="Try it with the sample dataset").click()
        heading(page, "Train")
        expect(page.get_by_text(TRAINED)).to_be_visible(timeout=3 * TRAIN_MS)  # 300 photos: slow on a busy box
        settled(page)

        # Save project, from the sidebar, as the browser downloads it.
        bar = sidebar(page)
        bar.get_by_text("Save or open your project").click()
        save = keyed(page, "save_project").get_by_role("button")
        expect(save).to_be_enabled()
        with page.expect_download(timeout=PAGE_MS) as download:
            save.click()
        project = tmp_path / "project.zip"
        download.value.save_as(project)
        assert project.stat().st_size > 0

        # The server's disk goes (as a hosted app's does when it restarts or sleeps), then a new server starts.
        server.stop()
        for folder in (server.runs, server.home / "features"):
            shutil.rmtree(folder, ignore_errors=True)
        server.start()
        page = new_page()
        page.goto(server.url)
        heading(page, "Quasar Nexus")
        sidebar_to(page, "Upload photos")
        expect(page.get_by_text("300 usable photos in 5 classes")).to_have_count(0)

        # Open the file in the sidebar.
        bar = sidebar(page)
        bar.get_by_text("Save or open your project").click()
        uploader = page.get_by_test_id("stFileUploader").filter(has_text="Open project")
        uploader.locator("input[type=file]").set_input_files(project)
        expect(uploader).to_contain_text(project.name)
        opening = keyed(page, "open_project").get_by_role("button")
        expect(opening).to_be_enabled()
        opening.click()
        expect(bar.get_by_test_id("stAlertContentSuccess")).to_be_visible(timeout=3 * PAGE_MS)

        # The photos: the report and their thumbnails.
        sidebar_to(page, "Upload photos")
        expect(page.get_by_text("300 usable photos in 5 classes")).to_be_visible()
        expect(page.get_by_test_id("stMain").get_by_test_id("stImage").first).to_be_visible()
        # The run, on Past runs.
        sidebar_to(page, "Past runs")
        expect(pins(page)).to_have_count(1)
        # The current model, on Train.
        sidebar_to(page, "Train")
        expect(page.get_by_text(re.compile(r"^Showing the current model: fashion · 5 classes · 96 px · "))).to_be_visible()
        expect(page.get_by_text(re.compile(r"^It named \d+ of 300 photos correctly that the model testing them had "
                                           r"never seen"))).to_be_visible()
        settled(page)
        reads_well(page)
        screenshot(page, "project-opened")
    finally:
        server.stop()
