import streamlit as st

from quasar_core import charts, insights
from quasar_core.errors import QuasarError
from quasar_core.presets import preset_named
from quasar_core.selection import setting_words
from quasar_core.wording import duration
from ui import job_control, layout, nav, state

POLL_SECONDS = 1.0
CURVES_LOOK_FINE = "No sign of over- or under-fitting."

layout.page_intro(
    "Train",
    "Train the classifier on your photos and watch it learn; you can stop it at any time.",
    page=nav.TRAIN,
)

dataset, job = state.dataset(), job_control.current_job()
config = state.config() or (preset_named(state.preset()).config(dataset) if dataset is not None else None)
active = job_control.is_active(job)

if config is not None:
    st.markdown(f"Settings: **{state.preset()}** preset · {layout.md(setting_words(config))} · "
                f"{layout.md(layout.weights_words(config.weights))}")
with st.container(horizontal=True, key="training_buttons"):  # side by side, not a column apart
    start = st.button("Start training", key="start_training", type="primary", disabled=active or dataset is None)
    stop = st.button("Stop", key="stop_training", disabled=not active)
if active:  # whenever Start is off, the page says why
    st.caption("Start is off while this training runs: stop it, or wait for it to finish.")
else:
    layout.need(dataset is not None, "Start is off until there are photos: load your photos first.",
                nav.UPLOAD, "Upload photos")

if (start or state.take_autostart()) and not active and dataset is not None:
    try:
        job_control.start(dataset, config)
    except QuasarError as exc:
        st.error(str(exc))
    else:
        st.rerun()  # redraw the buttons: Start off, Stop on
if stop and active:
    job.cancel()


def charts_of(history) -> None:
    if any(row.get("phase") == "head" for row in history):
        st.plotly_chart(charts.selection_figure(history), key="selection_chart")
    if any(row.get("phase") == "fine-tune" for row in history):
        st.plotly_chart(charts.training_curves(history), key="training_curves")


@st.fragment(run_every=POLL_SECONDS if active else None)
def live_view():
    """Redrawn every second while training runs, without rerunning (or freezing) the page."""
    current = job_control.current_job()
    if current is None:
        return
    finished = current.finished  # read once: if it ends while this draws, the next poll shows the end
    if finished and active:  # it ended since the page was drawn: redraw it all (buttons, next steps),
        job_control.adopt_result(current)  # before drawing a chart the full rerun would draw again
        st.rerun()
    snap = job_control.snapshot(current)
    if snap.state == "queued":
        st.info(f"Waiting for another job on this server to finish: you are number {snap.queue_position} "
                "in line. It starts by itself.")
    elif snap.state == "running":
        if current.cancel_event.is_set():
            st.warning("Stopping after the current batch; what was learned so far is kept.")
        if snap.progress is not None:
            st.progress(snap.progress.fraction,
                        text=job_control.progress_text(snap.progress, fine_tunes=current.config.fine_tunes))
        else:
            st.progress(0.0, text="Starting…")
    for message in snap.messages:
        st.info(message)
    charts_of(snap.history)
    if finished:
        outcome(snap, job_control.adopt_result(current))


def outcome(snap, run):
    """How the job ended, in words, and where to go next."""
    if snap.state == "failed":
        st.error(f"{snap.error} Change the settings or the photos and start again.")
    elif run is not None and run.has_model:
        ended = f"{run.status.message} It took {duration(run.status.seconds)}."
        poor = insights.accuracy_hint(run.metrics, run.config)
        if poor is None:
            st.success(ended)
        else:  # finished, but not good: no green tick next to a low score
            st.warning(f"{ended} {poor.text}", icon=":material/warning:")
        if run.metrics is not None:
            st.markdown(layout.md(run.metrics.summary()))
        layout.hints(insights.fit_hints(run.history), none_text=CURVES_LOOK_FINE if poor is None else None)
        nav.link(nav.EVALUATE, "Next: see how good it is")
    elif run is not None:
        st.warning(f"{run.status.message or 'Training ended without a model.'} Press Start training to try again.",
                   icon=":material/stop_circle:")
    elif current_abandoned():
        st.warning("It never started: nobody was waiting for it any more. Press Start training to try again.")
    else:
        st.warning("Stopped before training began. Press Start training to try again.", icon=":material/stop_circle:")


def current_abandoned() -> bool:
    current = job_control.current_job()
    return current is not None and current.abandoned


if job is not None:
    live_view()
elif state.current_run() is not None:
    run = state.current_run()
    st.markdown(f"Showing the current model: {layout.md(layout.describe_run(run))}.")
    charts_of(run.history)
    layout.hints(insights.fit_hints(run.history), none_text=CURVES_LOOK_FINE if run.history else None)
    nav.link(nav.EVALUATE, "See how good it is")
