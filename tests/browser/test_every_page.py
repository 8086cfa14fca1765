"""Every page of the sidebar after the sample has trained: used, checked for words, photographed."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.support import (ACCURACY, SURE, PAGE_MS, PREDICT_PHOTO, Page, SAMPLE_CLASSES, TRAINED, TRAIN_MS,
                                   advanced_settings, button, chart, colourful_picture, expect, heading, keyed,
                                   keyed_prefix, needs_weights, pins, reads_well, screenshot, seen, settled,
                                   sidebar, sidebar_to, table, wait_for_training)

pytestmark = pytest.mark.browser


def test_every_page_after_the_sample(page: Page, server, tmp_path):
    """The sample from Home, trained to the end; then every page of the sidebar, used, checked and photographed."""
    needs_weights()
    page.goto(server)
    heading(page, "Quasar Nexus")
    page.get_by_role("button", name="Try it with the sample dataset").click()
    heading(page, "Train")
    expect(page.get_by_test_id("stProgress")).to_be_visible()
    reads_well(page)
    wait_for_training(page)
    expect(page.get_by_text(re.compile(
        r"^It named \d+ of 300 photos correctly that the model testing them had never seen: .+\.$"))).to_be_visible()
    main = page.get_by_test_id("stMain")

    # Home: every step of the progress is done.
    sidebar_to(page, "Home")
    # Markdown's :material/…: icons are drawn as <span role="img" aria-label="check_circle icon">.
    expect(main.get_by_role("img", name="check_circle icon", exact=True)).to_have_count(4)
    expect(main.get_by_role("img", name="radio_button_unchecked icon", exact=True)).to_have_count(0)
    settled(page)
    reads_well(page)
    screenshot(page, "home")

    # Upload photos: the sample's report.
    sidebar_to(page, "Upload photos")
    expect(page.get_by_text("300 usable photos in 5 classes")).to_be_visible()
    expect(page.get_by_text("Problems found: none. Every file was used.")).to_be_visible()
    expect(chart(page, "class_distribution")).to_be_visible()
    settled(page)
    reads_well(page)
    screenshot(page, "upload")

    # Check my photos: run the check (the features are the training's), see what it found.
    sidebar_to(page, "Check my photos")
    expect(page.get_by_text("Each photo is read through VGG16 once at 96 px")).to_be_visible()
    button(page, "start_check").click()
    expect(page.get_by_role("heading", name="What the check found")).to_be_visible(timeout=TRAIN_MS)
    expect(page.get_by_text(re.compile(r"^Photos that may be in the wrong class \(\d+\)$"))).to_be_visible()
    expect(chart(page, "photo_map")).to_be_visible()
    expect(chart(page, "learning_curves")).to_be_visible()
    expect(button(page, "start_check")).to_be_enabled()
    settled(page)
    reads_well(page)
    screenshot(page, "check")

    # Configure: the preset the sample used, and every setting.
    sidebar_to(page, "Configure")
    expect(page.get_by_role("radiogroup").get_by_role("radio", name="Balanced")).to_be_checked()
    expect(page.get_by_text("Estimated training time on this computer")).to_be_visible()
    expect(page.get_by_text("The features of 300 photos are already computed", exact=False)).to_be_visible()
    advanced_settings(page)
    expect(keyed(page, "setting.image_size").get_by_test_id("stSliderThumbValue")).to_have_text("96 px")
    settled(page)
    reads_well(page)
    screenshot(page, "configure")

    # Train: the finished training, its chart and what next.
    sidebar_to(page, "Train")
    expect(page.get_by_text(TRAINED)).to_be_visible()
    expect(chart(page, "learning_chart")).to_be_visible()
    expect(button(page, "start_training")).to_be_enabled()
    settled(page)
    reads_well(page)
    screenshot(page, "train")

    # Evaluate, with where the model looked (Grad-CAM) on its mistakes.
    sidebar_to(page, "Evaluate")
    accuracy = page.get_by_test_id("stMetric").filter(has_text="Accuracy on photos the model being tested never saw")
    expect(accuracy.get_by_test_id("stMetricValue")).to_have_text(re.compile(rf"^{ACCURACY}$"))
    table_ = table(page, "Precision")
    for label in SAMPLE_CLASSES:
        expect(table_.locator("canvas td").filter(has_text=re.compile(rf"^{re.escape(label)}$"))).to_have_count(1)
    expect(chart(page, "reliability")).to_be_visible()
    expect(chart(page, "confusion_matrix")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Its mistakes|No mistakes"))).to_be_visible()
    if page.get_by_text("Its mistakes").count():
        page.get_by_test_id("stCheckbox").filter(has_text="Show where the model looked (Grad-CAM)").locator(
            "label").click()
        overlays = page.get_by_test_id("stImage").filter(has_text="Where it looked for")
        expect(overlays.first).to_be_visible(timeout=2 * PAGE_MS)
        sentence = page.get_by_test_id("stMarkdownContainer").filter(has_text="Its mistakes").inner_text()
        mistakes = int(re.search(r"\): (\d+) of", sentence).group(1))
        expect(overlays).to_have_count(min(mistakes, 12))
    settled(page)
    reads_well(page)
    screenshot(page, "evaluate")

    # Predict: a sample photo and an off-topic one ("none of these"), with the batch's familiarity check.
    sidebar_to(page, "Predict")
    strange = colourful_picture(tmp_path)
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Upload photos")
    uploader.locator("input[type=file]").set_input_files([PREDICT_PHOTO, strange])
    expect(page.get_by_role("heading", name="Do the new photos look like the training photos?")).to_be_visible()
    expect(page.get_by_text("1 of 2 new photos looks different from what the model learned")).to_be_visible()
    expect(chart(page, "familiarity_histogram")).to_be_visible()
    expect(page.get_by_text(re.compile(rf"^It is most likely [\w -]+ \({SURE} sure\)\.$"))).to_have_count(1)
    unknown = page.get_by_test_id("stAlert").filter(has_text="This doesn't look like any of your classes")
    expect(unknown).to_have_count(1)
    expect(unknown).to_contain_text(f"({', '.join(SAMPLE_CLASSES)}). The closest is ")
    expect(keyed_prefix(page, "probability_bars_").locator(".js-plotly-plot")).to_have_count(2)
    for name in (PREDICT_PHOTO.name, strange.name):
        expect(page.get_by_test_id("stImage").filter(has_text=name)).to_be_visible()
    settled(page)
    reads_well(page)
    screenshot(page, "predict")

    # Past runs: the one run, current, named by its dataset.
    sidebar_to(page, "Past runs")
    expect(pins(page)).to_have_count(1)
    expect(page.get_by_text(re.compile(r"^fashion · 5 classes · 96 px · \d{1,3} % \(\d{1,3}–\d{1,3} %\) \(current\)$"))
           ).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Finished · trained .* · classes: Ankle boot, Bag, Sneaker, T-shirt, Trouser$"))
           ).to_be_visible()
    settled(page)
    reads_well(page)
    screenshot(page, "runs")

    # Compare: transfer learning against training from scratch, run to the end.
    sidebar_to(page, "Compare")
    start = button(page, "start_comparison")
    expect(start).to_have_text("Compare with training from scratch")
    start.click()
    expect(chart(page, "comparison_chart")).to_be_visible(timeout=2 * TRAIN_MS)
    results = table(page, "Starting weights")
    expect(results).to_be_visible()
    table_cells = results.locator("canvas td")
    expect(table_cells.filter(has_text="ImageNet weights").first).to_be_attached()
    expect(table_cells.filter(has_text=re.compile(r"^about \d{1,3} % \(")).first).to_be_attached()
    expect(page.get_by_text("Measured by ", exact=False).first).to_be_visible()
    expect(start).to_have_text("Compare again")
    expect(start).to_be_enabled()
    settled(page)
    reads_well(page)
    screenshot(page, "compare")


