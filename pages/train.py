import streamlit as st

from quasar_core import charts, insights, planning
from quasar_core.errors import QuasarError
from ui import job_control, layout, nav, state

POLL_SECONDS = 1.0
CURVES_LOOK_FINE = "The curves look healthy: no sign of over- or under-fitting."

layout.page_intro(
    "Train",
    "Train the classifier on your photos and watch it learn; you can stop it at any time.",
    show_job_banner=False,
)

dataset, config, job = state.dataset(), state.config(), job_control.current_job()
active = job_control.is_active(job)

if config is not None:
    st.markdown(
        f"Settings: **{state.preset()}** preset · {config.image_size} px images · {config.epochs} epochs · "
        f"{'fine-tuning' if config.fine_tunes else 'feature extraction'} · "
        f"{'ImageNet' if config.weights == 'imagenet' else config.weights} weights"
    )
with st.container(horizontal=True, key="training_buttons"):  # side by side, not a column apart
    start = st.button("Start training", key="start_training", type="primary",
                      disabled=active or dataset is None or config is None)
    stop = st.button("Stop", key="stop_training", disabled=not active)
layout.need(dataset is not None or job is not None, "Load your photos first.", nav.UPLOAD, "Upload photos")

if (start or state.take_autostart()) and not active and dataset is not None and config is not None:
    try:
        job_control.start(dataset, config)
    except QuasarError as exc:
        st.error(str(exc))
    else:
        st.rerun()  # redraw the buttons: Start off, Stop on
if stop and active:
    job.cancel()


@st.fragment(run_every=POLL_SECONDS if active else None)
def live_view():
    """Redrawn every second while training runs, without rerunning (or freezing) the page."""
    current = job_control.current_job()
    if current is None:
        return
    snap = job_control.snapshot(current)
    if snap.state == "queued":
        st.info(f"Waiting for another training on this server to finish: you are number {snap.queue_position} "
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
    if snap.history:  # before the first epoch an empty chart says nothing: the bar or the outcome does
        st.plotly_chart(charts.training_curves(snap.history), key="training_curves")
    if current.finished:
        run = job_control.adopt_result(current)
        if active:  # it ended since the page was drawn: redraw it all (buttons, next steps)
            st.rerun()
        outcome(snap, run)


def outcome(snap, run):
    """How the job ended, in words, and where to go next."""
    if snap.state == "failed":
        st.error(f"{snap.error} Change the settings or the photos and start again.")
    elif run is not None and run.has_model:
        ended = (f"{run.status.get('message', 'Training finished.')} "
                 f"It took {planning.format_duration(job_control.run_seconds(run))}.")
        poor = insights.accuracy_hint(run.metrics, run.config)
        if poor is None:
            st.success(ended)
        else:  # finished, but not good: no green tick next to a low score
            st.warning(f"{ended} {poor.text}", icon=":material/warning:")
        if run.metrics is not None:
            st.markdown(run.metrics.summary())
        layout.hints(insights.curve_hints(run.history), none_text=CURVES_LOOK_FINE if poor is None else None)
        nav.link(nav.EVALUATE, "Next: see how good it is")
    elif run is not None:
        st.warning(f"{run.status.get('message', 'Training ended without a model.')} Press Start training to try again.",
                   icon=":material/stop_circle:")
    else:
        st.warning("Stopped before training began. Press Start training to try again.", icon=":material/stop_circle:")

if job is not None:
    live_view()
elif state.current_run() is not None:
    run = state.current_run()
    st.markdown(f"Showing the current model: {layout.md(layout.describe_run(run))}.")
    if run.history:  # a model opened from a file has no curves
        st.plotly_chart(charts.training_curves(run.history), key="training_curves")
    layout.hints(insights.curve_hints(run.history), none_text=CURVES_LOOK_FINE if run.history else None)
    nav.link(nav.EVALUATE, "See how good it is")
