"""The model card (quasar_core.runs.report): one self-contained HTML file that says, in words, what the model is,
how well it does with how sure that is, what its data was, and where it may fail."""

from __future__ import annotations

import html
import re
import threading

import pytest

from quasar_core.config import TrainConfig, declared
from quasar_core.runs.folder import FILES, Run, read_json, write_json
from quasar_core.runs.learned import familiarity_of
from quasar_core.runs.report import describe, model_card_html, trained_when, write_model_card
from quasar_core.wording import calibration_claim, percent_range
from tests.core.runs.support import copy_run, small_config

SECTIONS = ("Summary", "The data", "Settings", "How the classifier was chosen",
            "How well it does on photos it never saw", "How far to trust its confidence",
            "Example mistakes, and where the model looked", "Photos unlike anything it learned", "Limitations")


def with_a_mistake(run: Run) -> Run:
    """The run with one photo that has an example picture made a confident mistake (the shapes are too easy)."""
    metrics = read_json(run.path / FILES.METRICS)
    prediction = next(p for p in metrics["predictions"] if "example" in p)
    prediction["predicted"] = next(label for label in run.labels if label != prediction["true"])
    prediction["confidence"] = 0.93
    write_json(run.path / FILES.METRICS, metrics)
    return Run.open(run.path)


def section(page: str, heading: str) -> str:
    match = re.search(rf"<section><h2>{re.escape(heading)}</h2>(.*?)</section>", page, flags=re.S)
    assert match, f"no section {heading!r}"
    return match.group(1)


def outside_scripts(page: str) -> str:
    return re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)


@pytest.fixture(scope="module")
def card(tiny_run, tmp_path_factory):
    run = with_a_mistake(copy_run(tiny_run, tmp_path_factory.mktemp("card") / "run"))
    return run, model_card_html(run.path)


def test_the_card_has_every_section(card):
    run, page = card
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings == list(SECTIONS)  # in this order; no fine-tuning section for a run that was not fine-tuned
    assert page.startswith("<!DOCTYPE html>") and "<title>Model card: circle, square, triangle</title>" in page


def test_the_card_is_self_contained(card):
    _, page = card
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)
    assert sum(len(script) > 1_000_000 for script in scripts) == 1  # plotly.js itself, once
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"""<[^>]+(src|href)=["']?(https?:)?//""", outside_scripts(page))
    assert not re.search(r"@import|url\(\s*['\"]?https?:", outside_scripts(page))
    pictures = re.findall(r"<img src='([^']*)'", page)
    assert len(pictures) == 2 and all(p.startswith("data:image/png;base64,") for p in pictures)  # photo + Grad-CAM


def test_the_accuracy_is_said_with_its_interval_and_how_it_was_measured(card):
    run, page = card
    low, high = run.metrics.accuracy_interval
    summary = section(page, "Summary")
    assert f"Accuracy: {html.escape(run.metrics.headline())}." in summary
    assert f"({percent_range(low, high)})" in summary and run.metrics.method in summary
    assert run.metrics.method == "8-fold cross-validation over 24 photos, repeated 3 times"
    assert html.escape(run.metrics.summary()) in section(page, "How well it does on photos it never saw")
    assert f"on {trained_when(run)}" in summary and "random weights" in summary
    assert html.escape(describe(run)) in summary


def test_the_settings_are_in_words(card, tmp_path):
    run, page = card
    settings = section(page, "Settings")
    for label, value in run.config.in_words():
        assert f"<td>{html.escape(label)}</td><td>{html.escape(value)}</td>" in settings
    assert "<td>Image size</td><td>32 px</td>" in settings and "random (from scratch)" in settings
    tuned = copy_run(run, tmp_path / "tuned")
    write_json(tuned.path / FILES.CONFIG, small_config(mode="fine-tune", fine_tune_epochs=3).to_dict())
    settings = section(model_card_html(tuned.path, with_grad_cam=False), "Settings")
    assert "<td>Fine-tuning learning rate</td><td>0.00001</td>" in settings and "<td>on</td>" in settings
    for name, _, _ in declared(TrainConfig):
        assert f"<td>{name}</td>" not in settings  # a label, never the key
        assert "_" not in name or name not in settings  # no raw keys (fine_tune_learning_rate, class_weights, ...)
    assert "{" not in settings and "True" not in settings and "1e-05" not in settings


def test_the_data_section_lists_the_problems_found_or_says_none(card, tmp_path):
    run, page = card
    data = section(page, "The data")
    assert "Problems found: 1." in data and "24 usable photos from uploads." in data
    warning = run.report.problems[0]
    assert f"<td>{html.escape(warning.reason)}</td>" in data
    clean = copy_run(run, tmp_path / "clean")
    write_json(clean.path / FILES.DATA_REPORT, {**run.report.to_dict(), "problems": []})
    assert "Problems found: none." in section(model_card_html(clean.path, with_grad_cam=False), "The data")


def test_the_photo_check_and_its_changes_are_shown_when_there_was_one(card, tmp_path):
    run, _ = card
    checked = copy_run(run, tmp_path / "checked")
    write_json(checked.path / FILES.DOCTOR, {"found": {"label_issues": 2, "near_duplicates": 1, "outliers": 3},
                                            "changes": [{"file": "circle/c<1>.png", "words": "moved to square"}]})
    data = section(model_card_html(checked.path, with_grad_cam=False), "The data")
    assert "2 photos that may be in the wrong class, 1 group of near-copies, 3 unusual photos. 1 change" in data
    assert "<td>circle/c&lt;1&gt;.png</td><td>moved to square</td>" in data


def test_the_reliability_and_familiarity_sections_say_how_far_to_trust_it(card):
    run, page = card
    trust = section(page, "How far to trust its confidence")
    claim = calibration_claim(run.metrics.reliability)
    assert html.escape(claim) in trust and claim.startswith("When it says ")
    assert "off by" not in trust and "For specialists: the expected calibration error" in trust
    familiarity = section(page, "Photos unlike anything it learned")
    assert html.escape(familiarity_of(run).describe()) in familiarity
    assert "this check is rough" in familiarity  # 8 photos per class, said plainly


def test_the_mistakes_show_the_photo_and_what_was_predicted(card):
    run, page = card
    mistake = run.metrics.mistakes()[0]
    gallery = section(page, "Example mistakes, and where the model looked")
    assert (f"{html.escape(mistake['name'])}: really <b>{mistake['true']}</b>, predicted <b>{mistake['predicted']}</b>"
            " (93 % sure)") in gallery


def test_text_from_the_data_is_escaped(tmp_path, base_loader, shapes):
    from quasar_core.data import Limits, load_uploads
    from quasar_core.runs.pipeline import train_run

    label = "<script>alert(1)</script>"
    items = [(f"{n}.png", shapes.png(shapes.image(kind, n)), label if kind == "circle" else kind)
             for kind in ("circle", "square") for n in range(6)]
    data = load_uploads(items, limits=Limits(), source="<b>photos</b>.zip")
    run = train_run(data, small_config(), tmp_path / "run", base_loader=base_loader)
    assert label in run.labels
    page = model_card_html(run.path, with_grad_cam=False)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert label not in outside_scripts(page) and "<b>photos</b>" not in page
    for script in re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S):
        assert "</script" not in script.lower() and label not in script


def test_the_comparison_appears_when_it_was_run(card, tmp_path):
    run, _ = card
    compared = copy_run(run, tmp_path / "compared")
    results = [{"weights": "imagenet", "fraction": 1.0, "images_per_class": 5, "accuracy": 0.9, "train_seconds": 2.0},
               {"weights": "none", "fraction": 1.0, "images_per_class": 5, "accuracy": 0.5, "train_seconds": 2.5}]
    write_json(compared.path / FILES.COMPARISON, {"results": results, "conclusion": "Transfer won on these photos."})
    out = write_model_card(compared.path, tmp_path / "cards" / "card.html", with_grad_cam=False)
    page = out.read_text(encoding="utf-8")
    assert "Transfer learning vs training from scratch, on this data" in page
    assert "Transfer won on these photos." in page


def test_a_model_opened_from_a_file_says_what_is_not_known(tiny_run, base_loader, tmp_path):
    from quasar_core.runs.export import model_bytes
    from quasar_core.runs.model_files import import_model

    opened = import_model(model_bytes(tiny_run, base_loader=base_loader), "their.keras", tmp_path / "opened")
    page = model_card_html(opened.path, with_grad_cam=False)
    assert "Accuracy: not measured (this model has no evaluation)." in page
    assert "This model was opened from a file: the photos it learned from are not known." in page
    assert "their.keras" in section(page, "Summary")
    assert "How well it does" not in page and "Photos unlike anything" not in page


def test_a_run_without_a_model_still_has_a_card(dataset, base_loader, tmp_path):
    from quasar_core.runs.pipeline import train_run

    cancel = threading.Event()
    cancel.set()
    stopped = train_run(dataset, small_config(), tmp_path / "stopped", base_loader=base_loader, cancel=cancel)
    page = model_card_html(stopped.path)
    assert "not measured" in section(page, "Summary") and "<h2>Limitations</h2>" in page

