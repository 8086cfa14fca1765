"""Pieces every page shares: the opening sentence and banners, the data report, galleries."""

from __future__ import annotations

import io
import re

import streamlit as st

from quasar_core import charts, sample
from quasar_core.data import fit_within
from quasar_core.errors import DatasetError
from quasar_core.runs.folder import Run
from quasar_core.runs.report import describe
from quasar_core.runs.report import trained_when as trained_when_words
from quasar_core.wording import confidence, plural
from ui import comparing, job_control, nav, state, workspace

MAX_LISTED_PROBLEMS = 30
THUMBNAIL_SIDE = 160
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md(text: object) -> str:
    """Text shown literally in st.markdown (file names may hold *, _, $ or :emoji:)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def page_intro(title: str, purpose: str, *, page: nav.PageInfo | None = None) -> None:
    """The page title, the one sentence saying what the page is for, and banners about jobs running elsewhere
    (not the one this `page` itself shows)."""
    nav.through_app()
    st.title(title)
    st.markdown(purpose)
    _running_job_banner(page)


def _running_job_banner(page: nav.PageInfo | None) -> None:
    job = job_control.current_job()
    if page is not nav.TRAIN and job is not None and not job.finished:
        text = ("Your training kept running while the page reloaded." if state.reattached_job()
                else "Your model is training in the background.")
        with st.container(border=True):
            st.markdown(f":material/model_training: {text}")
            nav.link(nav.TRAIN, "Follow its progress on the Train page")
    comparison = comparing.current_job()
    if page is not nav.COMPARE and comparison is not None and not comparison.finished:
        with st.container(border=True):
            st.markdown(":material/compare_arrows: Your comparison with training from scratch is running "
                        "in the background.")
            nav.link(nav.COMPARE, "Follow it on the Compare page")


def model_line(run: Run) -> None:
    """"Model: …" and the way to another of the workspace's models (a reopened workspace opens on its latest,
    ui.workspace.latest_model); for a model opened from a file, where it came from."""
    with st.container(horizontal=True, vertical_alignment="center", key="model_line"):
        st.caption(f"Model: {md(describe_run(run))}")
        nav.link(nav.RUNS, "Switch model")
    if run.opened_from_file:
        st.caption(md(opened_words(run)))


def describe_run(run: Run) -> str:
    """"ants_bees.zip · 2 classes · 224 px · 93 % (90–95 %)"."""
    return describe(run)


def weights_words(weights: str) -> str:
    """"ImageNet weights", "random weights (from scratch)" or "weights from the file x.weights.h5"."""
    return {"imagenet": "ImageNet weights", "none": "random weights (from scratch)"}.get(
        weights, f"weights from the file {file_base_name(weights)}")


def trained_when(run: Run) -> str:
    return trained_when_words(run)


def opened_words(run: Run) -> str:
    """For a model opened from a file: where from, when it was trained, and the accuracy it came with."""
    text = f"Opened from {run.status.opened_from}; trained {trained_when(run)}. "
    if run.metrics is None:
        return text + "It came without an evaluation, so how accurate it is is not known: try it on photos you know."
    return text + f"Its accuracy when it was trained: {run.metrics.headline()}."


def need(condition: bool, message: str, page: nav.PageInfo, label: str,
         *more: tuple[nav.PageInfo, str]) -> bool:
    """When `condition` is false, say what is missing and link to the page that provides it (and to `more`)."""
    if not condition:
        st.info(message)
        for where, words in ((page, label), *more):
            nav.link(where, words)
    return condition


def need_model(condition: bool, what: str) -> bool:
    """need() for a page that shows a model: what to do, and where, when there is none (`what` it would show)."""
    if condition:
        return True
    others = any(run.has_model for run in workspace.current().runs())
    if others:  # e.g. the current one was deleted, or has no evaluation
        return need(False, f"Choose one of your models to see {what}, or train a new one.", nav.RUNS,
                    "Choose a model in Past runs", (nav.TRAIN, "Train a model"))
    return need(False, f"There is no model yet. Train one on your photos (a minute or two), and {what} show here.",
                nav.TRAIN, "Train a model", (nav.UPLOAD, "Or load your photos first"))


# --- photos --------------------------------------------------------------------------------------
@st.cache_data(max_entries=4000, show_spinner=False)
def _thumbnail(workspace_id: str, digest: str, _dataset, index: int, side: int) -> bytes | None:
    """A small JPEG of one photo, read again from its source (keyed by workspace and photo)."""
    from PIL import Image

    try:
        pixels = fit_within(_dataset.pixels(index), side)
    except DatasetError:
        return None
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def thumbnail(dataset, index: int, side: int = THUMBNAIL_SIDE) -> bytes | None:
    return _thumbnail(workspace.current_id(), dataset.samples[index].digest, dataset, index, side)


def data_report(dataset, *, examples_per_class: int = 8) -> None:
    """Photos per class, a row of examples for each class, and every problem in plain words."""
    report = dataset.report
    source = "the sample dataset" if report.source == str(sample.SAMPLE_DIR) else md(report.source)
    st.subheader("Your photos")
    st.markdown(f"**{plural(report.total, 'usable photo')} in {len(report.counts)} classes**, from {source}.")
    st.plotly_chart(charts.class_distribution_figure(report.counts), key="class_distribution")
    st.markdown("**Examples from each class**")
    for label in dataset.labels:
        chosen = [i for i, s in enumerate(dataset.samples) if s.label == label][:examples_per_class]
        st.caption(f"{md(label)} ({plural(report.counts.get(label, 0), 'photo')})")
        pictures = [thumbnail(dataset, i, 96) for i in chosen]
        st.image([p for p in pictures if p is not None], width=96)
    problems(report)


def problems(report) -> None:
    """Skipped files (and why), duplicates and warnings, or a line saying there were none."""
    groups = (
        (report.skipped(), st.warning, "file was skipped", "files were skipped"),
        (report.duplicates(), st.info, "duplicate was used only once", "duplicates were used only once"),
        (report.warnings(), st.warning, "thing to check", "things to check"),
    )
    if not report.problems:
        st.success("Problems found: none. Every file was used.")
        return
    for items, box, one, many in groups:
        if items:
            box(f"{len(items)} {one if len(items) == 1 else many}:\n\n" + _problem_lines(items, report.source))


def _problem_lines(items, source: str) -> str:
    lines = [f"- {_problem_words(p, source)}" for p in items[:MAX_LISTED_PROBLEMS]]
    if len(items) > MAX_LISTED_PROBLEMS:
        lines.append(f"- …and {len(items) - MAX_LISTED_PROBLEMS} more like these.")
    return "\n".join(lines)


def _problem_words(problem, source: str) -> str:
    """"**cat/a.jpg**: why", or just the sentence for a warning about the data as a whole."""
    if problem.file == source:
        return md(problem.reason[:1].upper() + problem.reason[1:])
    return f"**{md(problem.file)}**: {md(problem.reason)}"


def hints(items, *, none_text: str | None = None) -> None:
    """Plain-language hints (quasar_core.insights) as notes; `none_text` when there are none."""
    for hint in items:
        st.warning(md(hint.text), icon=":material/lightbulb:")
    if not items and none_text:
        st.success(none_text)


def first_capital(text: str) -> str:
    """"moved to Trouser" -> "Moved to Trouser" (str.capitalize would make it "Moved to trouser")."""
    return text[:1].upper() + text[1:]


def outlier_words(score: float) -> str:
    """photo_findings.Outlier.score (1 - typical distance / its distance) as people read it: "1.4 times as far…"."""
    return f"{1 / max(1 - score, 0.01):.1f} times as far from the other photos as a typical one"


def file_base_name(name: str) -> str:
    """"cat/2023/IMG 1.jpg" -> "IMG 1.jpg" (names in reports always use /)."""
    return name.rstrip("/").rsplit("/", 1)[-1] or name


def prediction_picture(run: Run, prediction: dict):
    """The photo of a prediction: its saved example, else the loaded photo of that name (None if neither)."""
    path = run.example_path(prediction)
    if path is not None:
        return str(path)
    dataset = state.dataset()
    if dataset is not None and "index" in prediction and prediction["index"] < len(dataset.samples) \
            and dataset.samples[prediction["index"]].name == prediction["name"]:
        return thumbnail(dataset, prediction["index"])
    return None


def prediction_gallery(run: Run, predictions: list[dict], *, limit: int = 24, per_row: int = 6,
                       overlays: list | None = None) -> None:
    """Photos with their true and predicted class and the model's confidence.

    With `overlays` (Grad-CAM images, in the order of `predictions`), only those photos are
    shown, each above where the model looked.
    """
    if overlays is not None:
        limit = len(overlays)
    shown = predictions[:limit]
    for start in range(0, len(shown), per_row):
        columns = st.columns(per_row)
        for offset, (column, prediction) in enumerate(zip(columns, shown[start : start + per_row])):
            with column:
                picture = prediction_picture(run, prediction)
                if picture is not None:
                    st.image(picture, width="stretch")
                overlay = overlays[start + offset] if overlays is not None else None
                if overlay is not None:
                    st.image(overlay, caption=f"Where it looked for {prediction['predicted']}", width="stretch")
                name = prediction["name"]
                base = file_base_name(name)
                # Just the file's own name (the class is said below it), so the caption wraps at its spaces
                # instead of breaking a long path mid-word; the full name is in the tooltip.
                st.caption(f"{md(base)}\n\nReally **{md(prediction['true'])}**, predicted "
                           f"**{md(prediction['predicted'])}** ({confidence(prediction['confidence'], 0)} sure)",
                           help=None if base == name else md(name))
    if len(predictions) > limit:
        st.caption(f"Showing the first {limit} of {len(predictions)}.")


def photos_to_try(label: str, *, key: str, multiple: bool = False) -> list[tuple[str, bytes]]:
    """An uploader and a "Use the camera" toggle (keys `<key>_upload`, `<key>_use_camera`, `<key>_camera`):
    the photos given, as (name, content)."""
    given = st.file_uploader(label, key=f"{key}_upload", accept_multiple_files=multiple)
    if not multiple:
        given = [given] if given is not None else []
    uploads = [(photo.name, photo.getvalue()) for photo in given or []]
    if st.toggle("Use the camera", key=f"{key}_use_camera"):
        shot = st.camera_input("Take a photo", key=f"{key}_camera")
        if shot is not None:
            uploads.append(("camera photo", shot.getvalue()))
    return uploads
