"""The model card: one self-contained HTML file a stakeholder can open offline and read without help.

Plotly's JavaScript is embedded once, pictures are inline, nothing is fetched. Every number
is said with how it was measured and how sure it is; settings are in words, not keys.
"""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path

import numpy as np

from quasar_core import charts
from quasar_core.explain import explain_image
from quasar_core.insights import all_hints
from quasar_core.runs.folder import FILES, Run
from quasar_core.runs.learned import classifier_of, familiarity_of
from quasar_core.wording import calibration_claim, confidence, percent, plural

MAX_ERROR_EXAMPLES = 6
MAX_LISTED_PROBLEMS = 50


def _png_data_uri(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def describe(run: Run) -> str:
    """"ants_bees.zip · 2 classes · 224 px · about 93 % (90–95 %)" — a run named for people."""
    parts = [run.status.source or run.status.opened_from or run.name, plural(len(run.labels), "class", "classes"),
             f"{run.config.image_size} px"]
    if run.metrics is not None:
        low, high = run.metrics.accuracy_interval or (run.metrics.accuracy, run.metrics.accuracy)
        parts.append(f"{percent(run.metrics.accuracy, 0)} ({low * 100:.0f}–{high * 100:.0f} %)")
    return " · ".join(parts)


def labelling_words(run: Run) -> str | None:
    """How many of the photos were labelled with label assist, by hand and in bulk, and by which round (None when
    none was): "38 photos labelled by hand and 120 pre-labels accepted in bulk, in 2 rounds of label assist
    (round 1: 20 by hand and 120 in bulk; round 2: 18 by hand)"."""
    summary = (run.read(FILES.DOCTOR) or {}).get("labelling")
    if not summary:
        return None
    rounds = summary.get("rounds", [])
    each = "; ".join(f"round {r.get('round')}: " + " and ".join(
        part for part in (f"{r.get('by_hand', 0)} by hand" if r.get("by_hand") else "",
                          f"{r.get('bulk', 0)} in bulk" if r.get("bulk") else "") if part) for r in rounds)
    return (f"{plural(summary.get('by_hand', 0), 'photo')} labelled by hand and "
            f"{plural(summary.get('bulk', 0), 'pre-label')} accepted in bulk, in {plural(len(rounds), 'round')} of "
            f"label assist ({each})")


def trained_when(run: Run) -> str:
    if run.opened_from_file and not run.status.finished:
        return "an unknown date (the model file does not say)"
    moment = run.status.finished or run.status.started
    return time.strftime("%d %b %Y, %H:%M", time.localtime(moment)) if moment else "an unknown date"


def error_examples(run: Run, *, limit: int = MAX_ERROR_EXAMPLES, with_grad_cam: bool = True) -> list[dict]:
    """The most confidently wrong photos with their Grad-CAM overlay (where the model looked)."""
    from PIL import Image

    if run.metrics is None:
        return []
    model = classifier_of(run).model() if with_grad_cam and run.has_model else None
    examples = []
    for prediction in run.metrics.mistakes()[:limit]:
        path = run.example_path(prediction)
        if path is None:
            continue
        pixels = np.asarray(Image.open(path).convert("RGB"))
        item = {**prediction, "image": pixels}
        if model is not None:
            item["overlay"] = explain_image(model, pixels, run.labels, class_name=prediction["predicted"],
                                            min_side=160, image_size=run.config.image_size)["overlay"]
        examples.append(item)
    return examples


def _data_section(run: Run, figure) -> str:
    report, doctor = run.report, run.read(FILES.DOCTOR)
    if report is None:
        return "<h2>The data</h2><p>This model was opened from a file: the photos it learned from are not known.</p>"
    problems = report.problems
    listed = (_table([{"File": p.file, "What": p.kind, "Why": p.reason} for p in problems[:MAX_LISTED_PROBLEMS]])
              if problems else "")
    text = (f"<h2>The data</h2>{figure(charts.class_distribution_figure(report.counts))}"
            f"<p>{plural(report.total, 'usable photo')} from {html.escape(run.status.source or report.source)}. "
            f"Problems found: {'none' if not problems else len(problems)}.</p>{listed}")
    labelled = labelling_words(run)
    if labelled:
        rounds = (doctor or {}).get("labelling", {}).get("rounds", [])
        text += ("<h3>Photos labelled with the model's help</h3>"
                 f"<p>{html.escape(labelled)}: the model asked about the photos that taught it most, and its surest "
                 "pre-labels were accepted in bulk. Those pre-labels are a model's own answers (a few may be wrong) "
                 "and are among the photos the accuracy above was measured on.</p>" + _table([{"Round": r.get("round"), "Labelled by hand": r.get("by_hand", 0),
                                   "Accepted in bulk": r.get("bulk", 0)} for r in rounds]))
    if doctor and "found" in doctor:
        changes = doctor.get("changes", [])
        found = doctor.get("found", {})
        text += ("<h3>What the photo check found, and what was changed</h3><p>"
                 f"{plural(found.get('label_issues', 0), 'photo')} that may be in the wrong class, "
                 f"{plural(found.get('near_duplicates', 0), 'group')} of near-copies, "
                 f"{plural(found.get('outliers', 0), 'unusual photo')}. "
                 f"{plural(len(changes), 'change')} made before training.</p>")
        if changes:
            text += _table([{"Photo": c.get("file"), "Change": c.get("words")} for c in changes])
    return text


def model_card_html(run_dir: str | Path, *, with_grad_cam: bool = True) -> str:
    run = Run.open(run_dir)
    metrics = run.metrics
    sections, first = [], [True]

    def figure(fig) -> str:
        out = fig.to_html(full_html=False, include_plotlyjs="inline" if first[0] else False,
                          config={"displaylogo": False})
        first[0] = False
        return out

    headline = metrics.headline() if metrics else "not measured (this model has no evaluation)"
    start = "ImageNet weights" if run.config.weights != "none" else "random weights"
    sections.append(f"<h2>Summary</h2><p class='big'>Accuracy: {html.escape(headline)}.</p>"
                    f"<p>Classes: {html.escape(', '.join(run.labels))}. Trained on {html.escape(describe(run))}, "
                    f"on {trained_when(run)}, by transfer learning from VGG16 ({start}).</p>")
    sections.append(_data_section(run, figure))
    sections.append("<h2>Settings</h2>" + _table([{"Setting": k, "Value": v} for k, v in run.config.in_words()]))
    tuned = [r for r in run.history if r.get("phase") == "fine-tune"]
    if any(r.get("phase") == "head" for r in run.history):
        sections.append("<h2>How the classifier was chosen</h2>" + figure(charts.selection_figure(run.history)))
    if tuned:
        sections.append("<h2>Fine-tuning</h2>" + figure(charts.training_curves(run.history)))
    if metrics:
        sections.append("<h2>How well it does on photos it never saw</h2>"
                        f"<p>{html.escape(metrics.summary())}</p>"
                        + figure(charts.confusion_matrix_figure(metrics))
                        + _table([{k: (percent(v) if isinstance(v, float) else v) for k, v in row.items()}
                                  for row in charts.per_class_table(metrics)]))
        if metrics.reliability:
            sections.append("<h2>How far to trust its confidence</h2>"
                            f"<p>{html.escape(calibration_claim(metrics.reliability))}</p>"
                            f"<p>For specialists: the expected calibration error (stated confidence against accuracy, "
                            f"averaged over bands of confidence) is {percent(metrics.calibration_error or 0.0)}.</p>"
                            + figure(charts.reliability_figure(metrics)))
        examples = error_examples(run, with_grad_cam=with_grad_cam)
        if examples:
            cards = "".join(
                f"<figure><img src='{_png_data_uri(e['image'])}' alt='example'>"
                + (f"<img src='{_png_data_uri(e['overlay'])}' alt='where the model looked'>" if "overlay" in e else "")
                + f"<figcaption>{html.escape(e['name'])}: really <b>{html.escape(e['true'])}</b>, predicted "
                  f"<b>{html.escape(e['predicted'])}</b> ({confidence(e['confidence'], 0)} sure)</figcaption></figure>"
                for e in examples)
            sections.append("<h2>Example mistakes, and where the model looked</h2>"
                            "<p>The coloured overlay (Grad-CAM) shows the regions that pushed the model towards "
                            f"its answer: red most.</p><div class='gallery'>{cards}</div>")
    familiarity = familiarity_of(run)
    if familiarity is not None:
        sections.append("<h2>Photos unlike anything it learned</h2><p>" + html.escape(familiarity.describe()) + "</p>")
    comparison = run.read(FILES.COMPARISON)
    if comparison and comparison.get("results"):
        sections.append("<h2>Transfer learning vs training from scratch, on this data</h2>"
                        + figure(charts.comparison_figure(comparison["results"]))
                        + f"<p>{html.escape(comparison.get('conclusion', ''))}</p>")
    counts = run.report.counts if run.report else None
    limitations = [h.text for h in all_hints(run.history, metrics, counts, run.config)] + [
        "It learned from the photos it was given: photos taken differently (lighting, background, camera) may be "
        "classified less well.",
    ]
    sections.append("<h2>Limitations</h2><ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in limitations) + "</ul>")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Model card: {html.escape(', '.join(run.labels))}</title><style>{_CSS}</style></head><body>"
        f"<h1>Model card: {html.escape(', '.join(run.labels))}</h1><p class='sub'>Made with Quasar Nexus</p>"
        + "".join(f"<section>{s}</section>" for s in sections) + "</body></html>"
    )


def write_model_card(run_dir, out, *, with_grad_cam: bool = True) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(model_card_html(run_dir, with_grad_cam=with_grad_cam), encoding="utf-8")
    return out


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;
color:#1f2933} h1{margin-bottom:0} .sub{color:#616e7c;margin-top:.2em} section{margin:2em 0} .big{font-size:1.3em}
table{border-collapse:collapse;margin:.5em 0} th,td{border:1px solid #d9e2ec;padding:.3em .6em;text-align:left}
th{background:#f0f4f8} .gallery{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0;max-width:340px}
figure img{width:160px;image-rendering:pixelated;margin-right:4px} figcaption{font-size:.9em}
"""
