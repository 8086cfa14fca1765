"""The sidebar lists only the app's own page titles, from the very first frame."""

from __future__ import annotations

import time

import pytest

from tests.browser.support import (FILE_NAMES, TITLES, expect, reads_well, settled, sidebar)

pytestmark = pytest.mark.browser


# Link texts the page showed, frame by frame from the first one: an init script records them on every DOM
# change and every 100 ms, before any of the app's own script runs.
RECORD_LINKS_JS = """(() => {
    window.__frames = [];
    const label = link => {
        const copy = link.cloneNode(true);
        copy.querySelectorAll('[data-testid="stIconMaterial"]').forEach(icon => icon.remove());
        return copy.textContent.replace(/\\s+/g, ' ').trim();
    };
    const record = () => window.__frames.push({
        at: performance.now(),
        links: [...document.querySelectorAll('a')].map(label).filter(Boolean),
        sidebar: [...document.querySelectorAll('[data-testid="stSidebar"] a')].map(label).filter(Boolean),
        streamlitNav: Boolean(document.querySelector('[data-testid="stSidebarNav"]')),
    });
    new MutationObserver(record).observe(document, {childList: true, subtree: true, characterData: true});
    setInterval(record, 100);
    record();
})();"""


def test_first_paint_lists_only_the_apps_own_page_titles(new_page, server):
    """From the very first frame, the sidebar never lists pages/ file names (app, compare, upload…)."""
    for address in (server, f"{server}/compare"):  # the default page, and one opened by its own address
        page = new_page()
        page.add_init_script(RECORD_LINKS_JS)
        page.goto(address, wait_until="commit")
        polled = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # and from here, every 100 ms, as a person would glance at it
            polled.append(page.evaluate("""() => [...document.querySelectorAll('a')].map(link => {
                const copy = link.cloneNode(true);
                copy.querySelectorAll('[data-testid="stIconMaterial"]').forEach(icon => icon.remove());
                return copy.textContent.replace(/\\s+/g, ' ').trim(); }).filter(Boolean)"""))
            time.sleep(0.1)
        expect(sidebar(page).get_by_role("link", name="Compare" if address.endswith("compare") else "Home",
                                         exact=True)).to_be_visible()
        frames = page.evaluate("() => window.__frames")
        assert len(frames) > 10 and len(polled) > 20, (len(frames), len(polled))
        file_names = sorted({link for frame in frames for link in frame["links"] if link in FILE_NAMES}
                            | {link for links in polled for link in links if link in FILE_NAMES})
        assert not file_names, f"{address}: links named after page files were shown: {file_names}"
        assert not any(frame["streamlitNav"] for frame in frames), "Streamlit's own page list was drawn"
        sidebar_links = {link for frame in frames for link in frame["sidebar"]}
        assert sidebar_links <= set(TITLES), f"unexpected sidebar links: {sidebar_links - set(TITLES)}"
        assert frames[-1]["sidebar"] == list(TITLES), frames[-1]["sidebar"]
        settled(page)
        reads_well(page)


