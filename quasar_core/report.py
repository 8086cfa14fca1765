"""The model card: one self-contained HTML file a stakeholder can open offline.

Plotly's JavaScript is embedded once, images are inline PNGs, nothing is fetched.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from . import charts
from .insights import all_hints
from .runs import Run, read_json

COMPARISON_FILE = "comparison.json"
MAX_ERROR_EXAMPLES = 6


def _png_data_uri(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure_html(figure, *, first: bool) -> str:
    return figure.to_html(full_html=False, include_plotlyjs="inline" if first else False,
                          config={"displaylogo": False})


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.values()) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.1%}" if 0 <= value <= 1 else f"{value:.3g}"
    return "" if value is None else str(value)


def error_examples(run: Run, *, limit: int = MAX_ERROR_EXAMPLES, with_grad_cam: bool = True) -> list[dict]:
    """The most confidently wrong held-out images with their Grad-CAM overlay (where the model looked)."""
    from PIL import Image

    if run.metrics is None:
        return []
    examples = []
    model = run.classifier().model_ if with_grad_cam and run.has_model else None
    for prediction in run.metrics.mistakes()[:limit]:
        path = run.example_path(prediction)
        if path is None:
            continue
        pixels = np.asarray(Image.open(path).convert("RGB"))
        item = {**prediction, "image": pixels}
        if model is not None:
            from .explain import explain_image

            item["overlay"] = explain_image(model, pixels, run.labels, class_name=prediction["predicted"],
                                            min_side=160)["overlay"]
        examples.append(item)
    return examples


def model_card_html(run_dir: str | Path, *, with_grad_cam: bool = True) -> str:
    run = Run.open(run_dir)
    config, metrics = run.config, run.metrics
    report = run.report or {}
    counts = report.get("counts", {})
    problems = report.get("problems", [])
    comparison = read_json(run.path / COMPARISON_FILE)
    sections = []
    first = True

    def figure(fig):
        nonlocal first
        out = _figure_html(fig, first=first)
        first = False
        return out

    summary = metrics.summary() if metrics else "This run has no held-out evaluation."
    sections.append(f"<h2>Summary</h2><p>{html.escape(summary)}</p><p>Classes: "
                    f"{html.escape(', '.join(run.labels))}. Trained by transfer learning from VGG16 "
                    f"({'ImageNet weights' if config.weights != 'none' else 'random weights'}), "
                    f"{html.escape(config.mode)}, {config.image_size} px images.</p>")
    sections.append("<h2>The data</h2>" + (figure(charts.class_distribution_figure(counts)) if counts else "")
                    + f"<p>{sum(counts.values())} usable images. Problems found: {len(problems)}.</p>"
                    + _table([{"File": p.get("file"), "Kind": p.get("kind"), "Reason": p.get("reason")}
                              for p in problems[:50]]))
    sections.append("<h2>Settings</h2>" + _table([{"Setting": k, "Value": str(v)}
                                                  for k, v in config.to_dict().items()]))
    if run.history:
        sections.append("<h2>Training curves</h2>" + figure(charts.training_curves(run.history)))
    if metrics:
        sections.append("<h2>How well it does on images it never saw</h2>"
                        + figure(charts.confusion_matrix_figure(metrics))
                        + _table(charts.per_class_table(metrics)))
        examples = error_examples(run, with_grad_cam=with_grad_cam)
        if examples:
            cards = "".join(
                f"<figure><img src='{_png_data_uri(e['image'])}' alt='example'>"
                + (f"<img src='{_png_data_uri(e['overlay'])}' alt='where the model looked'>" if "overlay" in e else "")
                + f"<figcaption>{html.escape(e['name'])}: really <b>{html.escape(e['true'])}</b>, predicted "
                  f"<b>{html.escape(e['predicted'])}</b> ({e['confidence']:.0%})</figcaption></figure>"
                for e in examples)
            sections.append("<h2>Example mistakes, and where the model looked</h2>"
                            "<p>The coloured overlay (Grad-CAM) shows the regions that pushed the model towards "
                            f"its answer: red most.</p><div class='gallery'>{cards}</div>")
    if comparison and comparison.get("results"):
        sections.append("<h2>Transfer learning vs training from scratch, on this data</h2>"
                        + figure(charts.comparison_figure(comparison["results"]))
                        + f"<p>{html.escape(comparison.get('conclusion', ''))}</p>")
    hints = all_hints(run.history, metrics, counts, run.config)
    limitations = [h.text for h in hints] + [
        f"The model only knows these {len(run.labels)} classes: shown anything else, it still picks one of them.",
        f"Accuracy was measured on {metrics.n_images if metrics else 0} held-out images; with few images the true "
        "accuracy can differ by several points.",
        "It learned from the pictures it was given: photos taken differently (lighting, background, camera) "
        "may be classified less well.",
    ]
    sections.append("<h2>Limitations</h2><ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in limitations)
                    + "</ul>")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Model card: {html.escape(', '.join(run.labels))}</title><style>{_CSS}</style></head><body>"
        f"<h1>Model card</h1><p class='sub'>Quasar Nexus run {html.escape(run.name)}</p>"
        + "".join(f"<section>{s}</section>" for s in sections) + "</body></html>"
    )


def write_model_card(run_dir, out, *, with_grad_cam: bool = True) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(model_card_html(run_dir, with_grad_cam=with_grad_cam), encoding="utf-8")
    return out


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;
color:#1f2933} h1{margin-bottom:0} .sub{color:#616e7c;margin-top:.2em} section{margin:2em 0}
table{border-collapse:collapse;margin:.5em 0} th,td{border:1px solid #d9e2ec;padding:.3em .6em;text-align:left}
th{background:#f0f4f8} .gallery{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0;max-width:340px}
figure img{width:160px;image-rendering:pixelated;margin-right:4px} figcaption{font-size:.9em}
"""
