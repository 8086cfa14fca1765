"""A zip through the real uploader to a prediction; Home's sample button starts a training that Stop ends."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser.support import (ACCURACY, CLASSES, SURE, PAGE_MS, PER_CLASS, PREDICT_PHOTO, Page, TRAIN_MS,
                                   advanced_settings, button, cell_photos, chart, choose_image_size, expect,
                                   heading, keyed, keyed_prefix, make_zip, needs_weights, next_link, no_errors,
                                   reads_well, screenshot, seen, settled, table, upload_zip, wait_for_training,
                                   watch_for, weights_file)

pytestmark = pytest.mark.browser


def test_zip_to_prediction(page: Page, server, tmp_path):
    page.goto(server)
    heading(page, "Quasar Nexus")
    settled(page)
    screenshot(page, "journey-home")

    # Upload: the zip through the real uploader, then the data report.
    upload_zip(page, make_zip(tmp_path))
    expect(chart(page, "class_distribution")).to_be_visible()
    for label in CLASSES:
        expect(page.get_by_text(f"{label} ({PER_CLASS} photos)")).to_be_visible()
    # 8 photos a class is few: the report says so once for all three classes (not "Problems found: none").
    few = "'Bag', 'Sneaker' and 'Trouser' have only 8 usable images each; results are unreliable"
    expect(page.get_by_test_id("stAlert").filter(has_text="1 thing to check")).to_contain_text(few)
    expect(page.get_by_text("Problems found: none")).to_have_count(0)
    reads_well(page)
    screenshot(page, "journey-upload")

    # Configure: Balanced (the default), then the smallest image size through the real slider.
    next_link(page, "Or go straight to the training settings", "Configure")
    # The first visit loads VGG16 and times it on this machine before it can estimate.
    expect(page.get_by_text("Estimated training time on this computer")).to_be_visible(timeout=3 * PAGE_MS)
    expect(page.get_by_role("radiogroup").get_by_role("radio", name="Balanced")).to_be_checked()
    if weights_file() is None:  # no ImageNet weights here: random ones (the flow is the same)
        advanced_settings(page)
        keyed(page, "setting.weights").get_by_text("None: start from random weights").click()
        settled(page)
    choose_image_size(page, 32)
    expect(page.get_by_text("Fits in memory")).to_be_visible()
    # no more folds than the smallest class has photos (8), as the training will do it
    expect(page.get_by_text(re.compile(rf"Accuracy will be measured by {PER_CLASS}-fold cross-validation"))).to_be_visible()
    expect(table(page, "Estimated time")).to_be_visible()  # the image size trade-off
    reads_well(page)
    screenshot(page, "journey-configure")

    # Train: start, see the progress bar, wait for the end.
    next_link(page, "Next: train the model", "Train")
    weights_words = "ImageNet weights" if weights_file() else "random weights (from scratch)"
    expect(page.get_by_text(f"Settings: Balanced preset · 32 px · {weights_words}")).to_be_visible()
    start, stop = button(page, "start_training"), button(page, "stop_training")
    expect(stop).to_be_disabled()
    watch_for(page, '[data-testid="stProgress"]')  # so tiny a run may show it for a second only
    start.click()
    wait_for_training(page)
    assert seen(page, '[data-testid="stProgress"]'), "the progress bar never appeared while training"
    total = len(CLASSES) * PER_CLASS
    expect(page.get_by_text(re.compile(
        rf"^It named \d+ of {total} photos correctly that the model testing them had never seen: .+\.$"))
    ).to_be_visible()
    # what more photos bought, on photos the models never saw: drawn once (live while training, then by the
    # full rerun at the end; the frontend removes the live one once that rerun has finished); the strengths
    # tried are folded into the details for specialists
    expect(chart(page, "learning_chart")).to_have_count(1)
    expect(chart(page, "learning_chart")).to_be_visible()
    expect(keyed(page, "training_curves")).to_have_count(0)  # no fine-tuning, so no epochs to draw
    expect(page.get_by_test_id("stProgress")).to_have_count(0)
    expect(start).to_be_enabled()
    expect(stop).to_be_disabled()
    reads_well(page)
    screenshot(page, "journey-train")

    # Evaluate: accuracy in numbers and words, the per-class table and the confusion matrix.
    next_link(page, "Next: see how good it is", "Evaluate")
    accuracy = page.get_by_test_id("stMetric").filter(has_text="Accuracy on photos the model being tested never saw")
    expect(accuracy.get_by_test_id("stMetricValue")).to_have_text(re.compile(rf"^{ACCURACY}$"))
    expect(page.get_by_text(re.compile(rf"^It named \d+ of {total} photos correctly that the model testing them "
                                       r"had never seen \(how it was measured: in the details below\)\.$"))).to_be_visible()
    table_ = table(page, "Precision")
    expect(table_).to_be_visible()
    for label in CLASSES:
        expect(table_.locator("canvas td").filter(has_text=re.compile(rf"^{label}$"))).to_have_count(1)
    expect(table_.locator("canvas td").filter(has_text=re.compile(r"^\d{1,3}\.\d %$")).first).to_be_attached()
    matrix = chart(page, "confusion_matrix")
    expect(matrix).to_be_visible()
    for label in CLASSES:
        expect(matrix).to_contain_text(label)
    expect(page.get_by_text(re.compile(r"Its mistakes|No mistakes"))).to_be_visible()
    reads_well(page)
    settled(page)
    screenshot(page, "journey-evaluate")

    # Click a square of the confusion matrix (the fullest, a diagonal one on a tie): exactly its photos show.
    cell_photos(page, matrix)
    reads_well(page)
    screenshot(page, "journey-evaluate-cell")

    # Predict: one photo through the uploader -> the most likely class and the probability bars.
    next_link(page, "Next: try it on new photos", "Predict")
    photos = page.get_by_test_id("stFileUploader").filter(has_text="Upload photos")
    photos.locator("input[type=file]").set_input_files(PREDICT_PHOTO)
    verdict = page.get_by_text("It is most likely")
    expect(verdict).to_have_text(re.compile(rf"^It is most likely ({'|'.join(CLASSES)}) \({SURE} sure\)\.$"))
    bars = keyed_prefix(page, "probability_bars_").locator(".js-plotly-plot")
    expect(bars).to_have_count(1)
    for label in CLASSES:
        expect(bars).to_contain_text(label)
    expect(page.get_by_test_id("stImage").filter(has_text=PREDICT_PHOTO.name)).to_be_visible()
    settled(page)
    reads_well(page)
    screenshot(page, "journey-predict")


def test_home_sample_button_starts_training_and_stop_ends_it(page: Page, server):
    needs_weights()  # the sample shortcut trains from ImageNet weights
    page.goto(server)  # a new browser context: a new session and workspace
    heading(page, "Quasar Nexus")
    page.get_by_role("button", name="Try it with the sample dataset").click()
    heading(page, "Train")
    expect(page.get_by_text("Settings: Balanced preset · 96 px · ImageNet weights")).to_be_visible()
    progress = page.get_by_test_id("stProgress")
    expect(progress).to_be_visible()
    # Live: the bar moves on from "Starting…" to the first step, counting the photos read.
    expect(progress).to_contain_text(re.compile(r"Step 1 of 3 · Reading your photos through VGG16 · photo \d+ of 300"))
    # No candidate scored yet, so no (empty) chart: bar and chart read in one go, so a fast machine cannot race it.
    now = page.evaluate("""() => ({bar: document.querySelector('[data-testid="stProgress"]')?.innerText || '',
                                   charts: document.querySelectorAll('.st-key-selection_chart').length})""")
    if now["bar"].startswith("Step 1 of"):  # still reading the photos through VGG16 (usual)
        assert now["charts"] == 0, "an empty chart is drawn before the first candidate is scored"
    start, stop = button(page, "start_training"), button(page, "stop_training")
    expect(start).to_be_disabled()
    expect(stop).to_be_enabled()
    expect(page.get_by_text("Start is off while this training runs")).to_be_visible()
    no_errors(page)
    screenshot(page, "train-sample")

    # Stop it: the page says it stopped and Start is back.
    stop.click()
    stopped = re.compile(r"Press Start training to try again|Stopped by you; the model learned so far is kept")
    said = page.get_by_test_id("stAlert").filter(has_text=stopped)
    expect(said).to_be_visible(timeout=TRAIN_MS)
    if "Press Start training to try again" in said.inner_text():  # stopped before the first model
        expect(keyed(page, "selection_chart")).to_have_count(0)  # the message, not an empty chart
    expect(start).to_be_enabled()
    expect(page.get_by_test_id("stProgress")).to_have_count(0)
    settled(page)
    reads_well(page)
    screenshot(page, "train-sample-stopped")


