"""The Train page's story in a real browser: the sample trained with Quick look, then with Best accuracy.

After Quick the learning story shows, after Best the leaderboard with the winner kept and named in the settings
line; each end is photographed (under the test's tmp_path, whose path is printed, and as test-artifacts/
screenshots/train-story-quick.png and train-story-best.png). Outside "Details for specialists" (folded, and left
out of the words by name: a folded expander's content is still laid out) no specialist's word may show.

Best on the sample is affordable: its photos are tiny (28 px), so it tries two settings at 96 px. On a quiet
two-core machine both take minutes; on a shared one Quick took 16 min and Best 30, hence the long waits.
"""

from __future__ import annotations

import re
import shutil

import pytest

from tests.browser.support import (PAGE_MS, SCREENSHOTS, TRAIN_MS, TRAINED, Page, button, chart, context_of, expect,
                                   heading, keyed, needs_weights, reads_well, screenshot, settled, sidebar_to)

pytestmark = pytest.mark.browser

BANNED = (" C ", "C =", "log loss", "fold", "hold-out", "int8", "float32", "regularis", "regulariz", "e-0", "100 %")
DETAILS = "Details for specialists"
SIZE_NOTE = {"Quick look": "Quick look uses", "Best accuracy": "Best accuracy tries its settings at"}  # Configure's


def choose_preset(page: Page, name: str) -> None:
    """Configure's preset choice, through its real radio buttons."""
    sidebar_to(page, "Configure")
    expect(page.get_by_text("Estimated training time on this computer")).to_be_visible(timeout=3 * PAGE_MS)
    keyed(page, "setting.preset").get_by_text(name, exact=True).click()
    expect(page.get_by_role("radiogroup").get_by_role("radio", name=name)).to_be_checked()
    expect(page.get_by_text(SIZE_NOTE[name])).to_be_visible()  # the server has taken the choice (not only the box)
    settled(page)


def train(page: Page, settings: str, *, within_ms: int) -> None:
    sidebar_to(page, "Train")
    expect(page.get_by_text(settings)).to_be_visible()
    start = button(page, "start_training")
    expect(start).to_be_enabled()
    start.click()
    expect(page.get_by_test_id("stProgress")).to_be_visible()
    expect(page.get_by_text(TRAINED)).to_be_visible(timeout=within_ms)  # two cores, often shared: be patient
    expect(page.get_by_test_id("stProgress")).to_have_count(0)
    settled(page)


# The words drawn in the page's main area outside the specialists' expander (a folded expander's content is
# still laid out here, so it is left out by name); Plotly's tick labels ("80 %", "all") too, as in reads_well.
OUTSIDE_DETAILS_JS = """details => {
    const words = [], main = document.querySelector('[data-testid="stMain"]');
    const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const element = node.parentElement, text = node.textContent.trim();
        if (!text || !element || element.closest('script, style, noscript, canvas')) continue;
        if (element.closest('[data-testid="stIconMaterial"], span[role="img"][translate="no"]')) continue;
        if (element.closest('g[class*="tick"]')) continue;
        const expander = element.closest('[data-testid="stExpander"]');
        const summary = expander && expander.querySelector('summary');
        if (summary && summary.innerText.includes(details) && !element.closest('summary')) continue;
        words.push(text);
    }
    return words.join('\\n');
}"""


def reads_plainly(page: Page) -> str:
    """No traceback, error box, program word or second percent style (reads_well), and no specialist's word
    outside the details, which are there and folded; returns the words outside them."""
    reads_well(page)
    details = page.get_by_test_id("stExpander").filter(has_text=DETAILS)
    expect(details).to_have_count(1)
    assert details.locator("details").get_attribute("open") is None
    words = page.evaluate(OUTSIDE_DETAILS_JS, DETAILS)
    assert "Train the classifier on your photos" in words and DETAILS in words
    for banned in BANNED:
        assert banned not in words, f"{banned!r} on the Train page:\n{context_of(words, words.index(banned))}"
    return words


def photograph(page: Page, name: str, tmp_path) -> None:
    screenshot(page, name)
    kept = tmp_path / f"{name}.png"
    shutil.copyfile(SCREENSHOTS / f"{name}.png", kept)
    print(f"screenshot: {kept}")


def test_the_sample_trained_with_quick_then_best_tells_its_story(page: Page, server, tmp_path):
    needs_weights()
    page.goto(server)
    heading(page, "Quasar Nexus")
    sidebar_to(page, "Upload photos")
    page.get_by_role("tab", name="The sample dataset").click()
    button(page, "load_sample").click()
    expect(page.get_by_text("300 usable photos in 5 classes")).to_be_visible()
    settled(page)

    # Quick look: the learning story (accuracy on unseen photos as it learns from more of them).
    choose_preset(page, "Quick look")
    train(page, "Settings: Quick look preset · 96 px · ImageNet weights", within_ms=10 * TRAIN_MS)
    words = reads_plainly(page)
    expect(page.get_by_text(re.compile(r"^It named \d+ of 300 photos correctly that the model testing them had never "
                                       r"seen: "))).to_be_visible()
    assert "Trying setting" not in words
    expect(keyed(page, "leaderboard_chart")).to_have_count(0)
    expect(chart(page, "learning_chart")).to_contain_text("Accuracy on photos it never saw")
    photograph(page, "train-story-quick", tmp_path)

    # Best accuracy: the leaderboard of the settings it tried, the winner named in the settings line.
    choose_preset(page, "Best accuracy")
    train(page, "Settings: Best accuracy preset · tries several settings", within_ms=15 * TRAIN_MS)
    words = reads_plainly(page)
    assert "Trying setting" not in words  # the status line goes with the training; no column of boxes
    assert not re.search(r"Over-fitting while fine-tuning", words)
    expect(keyed(page, "learning_chart")).to_have_count(0)
    board = chart(page, "leaderboard_chart")
    expect(board).to_contain_text("The settings it tried")
    expect(board).to_contain_text("kept")
    expect(page.get_by_text("Settings: Best accuracy preset · kept: 96 px")).to_be_visible()  # the winner's
    photograph(page, "train-story-best", tmp_path)
