import streamlit as st

from quasar_core import charts, insights
from quasar_core.errors import QuasarError
from quasar_core.presets import preset_named
from quasar_core.wording import confidence, percent, plural
from ui import checking, job_control, layout, nav, state

POLL_SECONDS = 1.0
SHOWN_PER_FINDING = 12

layout.page_intro(
    "Check my photos",
    "Find the photos that may hurt your model — ones that look like another class, near-copies, photos unlike the "
    "rest — and decide what to change (your uploaded files are never modified).",
)
if (notice := state.take_notice()) is not None:
    st.warning(notice)

original = checking.original_dataset()
job = job_control.current_check()
active = job_control.is_active(job)


def photo(name: str, caption: str) -> None:
    index = checking.index_of(original, name)
    picture = layout.thumbnail(original, index) if index is not None else None
    if picture is not None:
        st.image(picture, width="stretch")
    st.caption(caption)


def choices(name: str, key: str, *, move_to: str | None = None) -> None:
    """Move / Remove / Keep for one photo, or what was decided and Undo."""
    decided = checking.decisions().get(name)
    if decided is not None:
        st.markdown(f"*{layout.md(layout.first_capital(decided.words()))}*")
        st.button("Undo", key=f"undo_{key}", on_click=checking.undo, args=(name,))
        return
    with st.container(horizontal=True):
        if move_to is not None:
            st.button(f"Move to «{move_to}»", key=f"move_{key}", on_click=checking.decide, args=(name, "move", move_to))
        st.button("Remove", key=f"remove_{key}", on_click=checking.decide, args=(name, "remove"))
        st.button("Keep", key=f"keep_{key}", on_click=checking.decide, args=(name, "keep"))


def grid(items, draw) -> None:
    for start in range(0, len(items), 4):
        for column, item in zip(st.columns(4), items[start : start + 4]):
            with column:
                draw(item)


@st.fragment(run_every=POLL_SECONDS if active else None)
def progress_view() -> None:
    current = job_control.current_check()
    if current is None or current.finished:
        if active:
            st.rerun()
        if current is not None and current.state == "failed":
            st.error(current.error)
        return
    snap = job_control.snapshot(current)
    if snap.state == "queued":
        st.info(f"Waiting for another job on this server to finish: you are number {snap.queue_position} in line.")
    elif snap.progress is not None:
        st.progress(snap.progress.fraction, text=job_control.progress_text(snap.progress, fine_tunes=False))


if layout.need(original is not None, "There are no photos to check yet. Load your photos first.", nav.UPLOAD,
               "Upload photos"):
    config = state.config() or preset_named(state.preset()).config(original)
    with st.container(horizontal=True):
        start = st.button("Check my photos", key="start_check", type="primary", disabled=active)
        stop = st.button("Stop", key="stop_check", disabled=not active)
    st.caption(f"Each photo is read through VGG16 once at {config.image_size} px (the training reuses it), then tested "
               "by models that never saw it.")
    if start and not active:
        try:
            job_control.start_check(original, config)
        except QuasarError as exc:
            st.error(str(exc))
        else:
            st.rerun()
    if stop and active:
        job.cancel()
    if job is not None:
        progress_view()

    found = checking.result()
    if found is not None and not active:
        report = found.report
        st.subheader("What the check found")
        more_photos = insights.more_photos_hints(report.classes)
        layout.hints(more_photos, none_text=insights.more_photos_summary(report.classes))
        made = checking.decisions()
        flagged = {i.file: f"may be {i.suggested}, not {i.given}" if insights.likely_wrong(i)
                   else f"the model is unsure: {i.given} or {i.suggested}" for i in report.label_issues}
        flagged.update({o.file: "unlike the other photos" for o in report.outliers})
        for group in report.near_duplicates:
            flagged.update({name: "a near-copy of another photo" for name in group.files})

        wrong = [issue for issue in report.label_issues if insights.likely_wrong(issue)]
        unsure = [issue for issue in report.label_issues if not insights.likely_wrong(issue)]

        def doubted(issue) -> None:
            own = confidence(1 - issue.score, 0)
            photo(issue.file, f"{layout.file_base_name(issue.file)} — labelled {issue.given}, looks like "
                              f"{issue.suggested} (models that never saw it gave {issue.given} {own})")
            choices(issue.file, f"label_{issue.file}", move_to=issue.suggested)

        st.markdown(f"**Photos that may be in the wrong class** ({len(wrong)})")
        if wrong:
            st.caption("Models that never saw these photos hardly see their class in them: look at each. "
                       + insights.list_track_record(likely=True))
            grid(wrong[:SHOWN_PER_FINDING], doubted)
        else:
            st.success("None: no photo looks clearly like another class to models that never saw it.")
        if unsure:
            st.markdown(f"**Photos the model is unsure about** ({len(unsure)})")
            st.caption("These lean a little towards another class. Often the label is right and the photo is just "
                       "hard (a small subject, a busy background): change one only if you see it is wrong. "
                       + insights.list_track_record(likely=False))
            grid(unsure[:SHOWN_PER_FINDING], doubted)

        st.markdown(f"**Near-copies** ({len(report.near_duplicates)} groups)")
        for number, group in enumerate(report.near_duplicates[:SHOWN_PER_FINDING]):
            classes = ", ".join(sorted(set(group.classes)))
            st.caption(f"{plural(len(group.files), 'photo')}, {percent(group.similarity, 0)} alike, in {classes}"
                       + (" — the same picture in two classes confuses the model" if len(set(group.classes)) > 1
                          else ""))
            grid(list(group.files), lambda name: (photo(name, layout.file_base_name(name)),
                                                  choices(name, f"dup_{number}_{name}")))
        if not report.near_duplicates:
            st.success("None found.")

        st.markdown(f"**Photos unlike the rest** ({len(report.outliers)})")
        grid(list(report.outliers[:SHOWN_PER_FINDING]), lambda outlier: (
            photo(outlier.file, f"{layout.file_base_name(outlier.file)} — {layout.outlier_words(outlier.score)}"),
            choices(outlier.file, f"outlier_{outlier.file}")))

        st.subheader("All your photos on one map")
        st.markdown("Each dot is a photo, placed by what VGG16 sees in it: photos that look alike lie close. "
                    "Flagged photos are outlined; click one to see it.")
        event = st.plotly_chart(charts.photo_map_figure(found.points, found.labels, found.names, flagged=flagged),
                                on_select="rerun", selection_mode="points", key="photo_map")
        chosen = charts.selected_photo(event.selection.points)
        if chosen is not None:
            photo(chosen, f"{chosen}" + (f" — {flagged[chosen]}" if chosen in flagged else ""))

        st.subheader("Which class needs more photos")
        st.plotly_chart(charts.learning_curve_figure(report.classes), key="learning_curves")

        if made:
            st.subheader(f"Your changes ({len(made)})")
            for name, decision in made.items():
                st.markdown(f"- **{layout.md(name)}**: {layout.md(decision.words())}")
            st.button("Undo all changes", key="undo_all", on_click=checking.undo_all)
            st.caption("The next training uses the photos with these changes; the features are cached, so it takes "
                       "seconds.")
    nav.link(nav.CONFIGURE, "Next: choose the training settings")
