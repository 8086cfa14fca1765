"""The model card: one self-contained HTML file with the data, settings, curves, errors and limits."""

import re

import pytest

from quasar_core.report import COMPARISON_FILE, model_card_html, write_model_card
from quasar_core.runs import train_run, write_json


@pytest.fixture(scope="module")
def run(tmp_path_factory, dataset, split, base, tiny_config):
    return train_run(dataset, tiny_config, tmp_path_factory.mktemp("card") / "run", base=base, split=split)


def test_the_card_holds_every_section_and_needs_no_network(run):
    html = model_card_html(run.path)
    for heading in ("Summary", "The data", "Settings", "Training curves",
                    "How well it does on images it never saw", "Limitations"):
        assert f"<h2>{heading}" in html
    assert run.metrics.summary() in html
    assert all(label in html for label in run.labels)
    # self-contained: plotly.js is inlined once, images are data URIs, nothing is fetched
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S)
    assert sum(len(script) > 1_000_000 for script in scripts) == 1  # plotly.js itself, once
    outside_scripts = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert not re.search(r"""<[^>]+(src|href)=["']https?://""", outside_scripts)
    assert not re.search(r"""<script[^>]+src=""", html)
    if run.metrics.mistakes():
        assert "Example mistakes, and where the model looked" in html
        assert html.count("data:image/png;base64,") >= 2  # the photo and its Grad-CAM overlay


def test_the_comparison_appears_when_it_was_run(run, tmp_path):
    results = [{"weights": "imagenet", "fraction": 1.0, "images_per_class": 5, "accuracy": 0.9, "train_seconds": 2.0},
               {"weights": "none", "fraction": 1.0, "images_per_class": 5, "accuracy": 0.5, "train_seconds": 2.5}]
    write_json(run.path / COMPARISON_FILE, {"results": results, "conclusion": "Transfer won on these photos."})
    try:
        out = write_model_card(run.path, tmp_path / "cards" / "card.html", with_grad_cam=False)
        html = out.read_text(encoding="utf-8")
        assert "Transfer learning vs training from scratch, on this data" in html
        assert "Transfer won on these photos." in html
    finally:
        (run.path / COMPARISON_FILE).unlink()


def test_text_from_the_data_is_escaped(tmp_path, base, tiny_config, shapes):
    from quasar_core.data import load_uploads, split_dataset

    label = "<script>alert(1)</script>"
    items = [(f"{n}.png", shapes.png(shapes.image(cls, n)), label if cls == "circle" else cls)
             for cls in ("circle", "square") for n in range(6)]
    data = load_uploads(items)
    run = train_run(data, tiny_config.replace(epochs=1), tmp_path / "run", base=base, split=split_dataset(data))
    html = model_card_html(run.path, with_grad_cam=False)
    assert label not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
