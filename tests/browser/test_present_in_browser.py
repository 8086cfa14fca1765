"""Present, after the sample has trained: one screen for a projector, photographed at 1920 x 1080, its live try used
with a photo of the model's own kind and with a stranger, and no technical word anywhere on it."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.support import (CLASSES, PAGE_MS, PER_CLASS, PREDICT_PHOTO, SURE, TRAIN_MS, TRAINED, Page,
                                   advanced_settings, button, choose_image_size, colourful_picture, expect, heading,
                                   keyed, make_zip, next_link, readable_text, reads_well, settled, sidebar_to,
                                   upload_zip, weights_file)

pytestmark = pytest.mark.browser

PROJECTOR = {"width": 1920, "height": 1080}
BANNED = (" C ", "log loss", "fold", "hold-out", "int8", "float32", "regularisation", "e-0")
HEADLINE = re.compile(r"^Right on (about \d{1,2} of 100|all \d+) photos it had never seen( \(.+\))?$")
ANSWERS = re.compile(rf"^(It says ({'|'.join(CLASSES)}) \({SURE} sure\)\.|Not sure: this photo "
                     r"looks unusual for your classes; the closest is .+|This doesn't look like any of your classes .+)$")
OWN_KIND = PREDICT_PHOTO  # a trouser the model did not learn from

# The relative luminance contrast of two CSS colours (WCAG 2): text against the page it is drawn on.
CONTRAST_JS = """(element) => {
    const rgb = text => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
                                        .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
    const app = document.querySelector('[data-testid="stApp"]');
    const fg = getComputedStyle(element).color, bg = getComputedStyle(app).backgroundColor;
    const paragraph = document.querySelector('[data-testid="stMarkdownContainer"] p:not([style])');
    const [a, b] = [lum(rgb(fg)), lum(rgb(bg))].sort((x, y) => y - x);
    return {ratio: (a + 0.05) / (b + 0.05), colour: fg, text: paragraph ? getComputedStyle(paragraph).color : fg};
}"""


def banned_words(words: str) -> list[str]:
    return [word for word in BANNED if (word in words if word == " C " else word.lower() in words.lower())]


def answer(page: Page):
    """The big answer of "try it" (one of the three)."""
    return page.get_by_test_id("stMarkdownContainer").locator("p[style]").filter(has_text=ANSWERS)


def test_present_after_the_sample(page: Page, server, tmp_path):
    """The sample trained as the journey trains it (8 photos of 3 classes at 32 px: quick on two busy cores)."""
    page.set_viewport_size(PROJECTOR)
    page.goto(server)
    heading(page, "Quasar Nexus")
    upload_zip(page, make_zip(tmp_path))
    next_link(page, "Or go straight to the training settings", "Configure")
    expect(page.get_by_text("Estimated training time on this computer")).to_be_visible(timeout=3 * PAGE_MS)
    page.get_by_role("radiogroup").first.get_by_text("Quick look", exact=True).click()
    expect(page.get_by_role("radiogroup").get_by_role("radio", name="Quick look")).to_be_checked()
    expect(page.get_by_text(re.compile(r"Quick look uses \d+ px"))).to_be_visible()  # the preset's rerun is over
    settled(page)
    if weights_file() is None:  # no ImageNet weights here: random ones (the flow is the same)
        advanced_settings(page)
        keyed(page, "setting.weights").get_by_text("None: start from random weights").click()
        settled(page)
    choose_image_size(page, 32)
    next_link(page, "Next: train the model", "Train")
    button(page, "start_training").click()
    expect(page.get_by_text(TRAINED)).to_be_visible(timeout=5 * TRAIN_MS)  # two shared cores may be busy
    settled(page)

    # From Evaluate's Present button: the headline at once, then where the model looked.
    sidebar_to(page, "Evaluate")
    settled(page)
    started = time.perf_counter()
    button(page, "present").click()
    heading(page, "Present")
    headline = page.get_by_test_id("stMarkdownContainer").locator("p[style]").filter(has_text=HEADLINE)
    expect(headline).to_be_visible()
    shown_at = time.perf_counter() - started
    looked = page.get_by_test_id("stImage").filter(has_text="where it looked")
    expect(looked.first).to_be_visible(timeout=4 * PAGE_MS)
    expect(page.get_by_test_id("stSpinner")).to_have_count(0, timeout=4 * PAGE_MS)  # every overlay drawn
    settled(page)
    assert 1 <= looked.count() <= 3  # a photo of each class it named right (up to three), with where it looked
    page.wait_for_function("() => [...document.images].every(image => image.complete && image.naturalWidth > 0)")
    drawn_at = time.perf_counter() - started
    print(f"Present took {shown_at:.2f} s to show its headline and {drawn_at:.2f} s to draw everything "
          "(where the model looked included)")

    # Large type, in the theme's own text colour (so a dark theme turns it light too), legible on its background.
    size = float(headline.evaluate("element => parseFloat(getComputedStyle(element).fontSize)"))
    assert size >= 32, f"the headline is {size} px: too small for a projector"
    contrast = headline.evaluate(CONTRAST_JS)
    assert contrast["colour"] == contrast["text"], contrast  # inherited, not a colour of its own
    assert contrast["ratio"] >= 7, contrast
    for words in ("What it learned from", "Where it looks", "Where it goes wrong, and why that is fair", "Try it"):
        expect(page.get_by_role("heading", name=words)).to_be_visible()
    expect(page.get_by_text(re.compile(rf"^It learned from {len(CLASSES) * PER_CLASS} photos: {PER_CLASS} photos "
                                       "each of "))).to_be_visible()
    words = reads_well(page)
    assert banned_words(words) == [], banned_words(words)
    shot = tmp_path / "present-1920x1080.png"
    page.screenshot(path=str(shot))  # what the room sees: the projector's screen, not the whole page
    page.screenshot(path=str(tmp_path / "present-1920x1080-whole.png"), full_page=True)
    print(f"screenshots: {shot} and {shot.with_name('present-1920x1080-whole.png')}")

    # Try it: a photo of the model's own kind, then a stranger.
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Show it a photo")
    uploader.locator("input[type=file]").set_input_files(OWN_KIND)
    said = answer(page)
    expect(said).to_have_count(1, timeout=2 * PAGE_MS)
    own = said.inner_text()
    assert own.startswith("It says "), own
    settled(page)
    page.screenshot(path=str(tmp_path / "present-try-own-kind.png"), full_page=True)

    uploader.locator("input[type=file]").set_input_files(colourful_picture(tmp_path))
    expect(said).not_to_have_text(own, timeout=2 * PAGE_MS)
    expect(said).to_have_count(1)
    stranger = said.inner_text()
    print(f"try it: {OWN_KIND.name} -> {own!r}; garden.jpg -> {stranger!r}")
    settled(page)
    page.screenshot(path=str(tmp_path / "present-try-stranger.png"), full_page=True)
    words = reads_well(page)
    assert banned_words(words) == [], banned_words(words)

    # From the shared link (a new session on the same address): the latest model, at once, without a click.
    started = time.perf_counter()
    page.reload()
    heading(page, "Present")
    expect(headline).to_be_visible()
    print(f"Present from its shared link: headline in {time.perf_counter() - started:.2f} s")
    assert banned_words(readable_text(page)) == []
