"""The dashboard in a real browser: Debian's chromium, driven by Playwright, against `streamlit run`.

One Streamlit server for all of them (its own runs folder, a free port on 127.0.0.1), then:

* first paint: from the very first frames, the sidebar lists only the app's own page titles,
  never the pages/ file names (``client.showSidebarNavigation = false``);
* the whole journey: a zip of class folders through the Upload page's uploader -> the data
  report -> the smallest image size through Configure's real widgets -> Train (progress bar,
  "about 93 % (90–95 %)" from 5-fold cross-validation) -> Evaluate (a click on one square of
  the confusion matrix shows exactly that square's photos) -> Predict (one photo, its bars);
* Home's "Try it with the sample dataset" lands on Train with training under way; Stop ends it;
* every page after the sample has trained (the photo check, Grad-CAM, Predict with a sample
  photo and an off-topic one, Past runs, the comparison run to its end), each checked for
  tracebacks, error boxes, program words and a second percent style, and photographed;
* two sessions (two workspaces) training at once: the second waits with its place in the
  queue, both finish, neither sees the other's runs;
* on a server of its own: photos and a setting survive a reload, and a `kill -9` of the server
  mid-training; the new server shows the cut-off run as interrupted, with why, and trains again.

A full-page screenshot of every page goes to test-artifacts/screenshots/<page>.png (the journey's
as journey-<page>.png; a failed test leaves failed-<test>.png).

Skipped when /usr/bin/chromium or Playwright is missing, unless QUASAR_REQUIRE_BROWSER=1
(CI), where that is a failure. Playwright cannot download a browser here, so it is pointed
at Debian's chromium, and every request to a host other than 127.0.0.1 is refused.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser.support import PAGE_MS, SCREENSHOTS, VIEWPORT, Page, StreamlitServer, expect, launched_chromium


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory) -> StreamlitServer:
    """One server for the browser tests (each test a session of its own). Always stopped."""
    running = StreamlitServer(tmp_path_factory.mktemp("browser-server"))
    try:
        yield running.start()
    finally:
        running.stop()


@pytest.fixture
def server(shared_server) -> str:
    """The shared server's base URL."""
    return shared_server.url


# --- the browser -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():  # per module: a Playwright still running would refuse another one later (test_share_app's)
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def new_page(browser, request):
    """Opens fresh browser sessions (each its own context, so its own workspace) that may only talk to 127.0.0.1.

    JavaScript errors in any of them fail the test; when the test fails, what each showed is kept as
    screenshots/failed-<test>[-n].png.
    """
    failures_before = request.session.testsfailed
    opened: list[tuple] = []
    refused: list[str] = []
    errors: list[str] = []

    def local_only(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    def open_page() -> Page:
        context = browser.new_context(viewport=VIEWPORT)
        context.route("**/*", local_only)
        page = context.new_page()
        page.set_default_timeout(PAGE_MS)
        page.on("pageerror", lambda error: errors.append(str(error)))
        opened.append((context, page))
        return page

    expect.set_options(timeout=PAGE_MS)
    try:
        yield open_page
        if request.session.testsfailed > failures_before:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            for number, (_, page) in enumerate(opened):
                suffix = f"-{number + 1}" if len(opened) > 1 else ""
                try:
                    page.screenshot(path=str(SCREENSHOTS / f"failed-{request.node.name}{suffix}.png"), full_page=True)
                except Exception as exc:  # a page whose server was killed may not answer: keep the others
                    print(f"no screenshot of page {number + 1}: {exc}")
        assert not errors, f"JavaScript errors in the page: {errors}"
    finally:
        for context, _ in opened:
            context.close()
        if refused:
            print(f"refused requests to other hosts: {refused}")


@pytest.fixture
def page(new_page) -> Page:
    return new_page()


