import streamlit as st

from quasar_core import charts, insights
from quasar_core.errors import QuasarError
from quasar_core.presets import preset_named
from quasar_core.selection import setting_words
from quasar_core.wording import duration
from ui import job_control, layout, nav, state

POLL_SECONDS = 1.0
CURVES_LOOK_FINE = "No sign of over- or under-fitting."
BEST = "Best accuracy"
DETAILS = "Details for specialists"  # the only place for the classifier's strength, epochs, folds and the like

layout.page_intro(
    "Train",
    "Train the classifier on your photos and watch it learn; you can stop it at any time.",
    page=nav.TRAIN,
)

dataset, job = state.dataset(), job_control.current_job()
config = state.config() or (preset_named(state.preset()).config(dataset) if dataset is not None else None)
active = job_control.is_active(job)
shown = job_control.snapshot(job).history if job is not None else getattr(state.current_run(), "history", [])
won = charts.choice_row(shown) if state.preset() == BEST else None  # Best's winner, once it is chosen

if config is not None:
    if won is not None:
        what = f"kept: **{layout.md(won['setting'])}**"
    elif state.preset() == BEST:
        what = "tries several settings and keeps the one that does best on your photos"
    else:
        what = layout.md(setting_words(config))
    st.markdown(f"Settings: **{state.preset()}** preset · {what} · {layout.md(layout.weights_words(config.weights))}")
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


def story(history, *, best: bool) -> None:
    """The one picture a stakeholder follows: Best's leaderboard as settings finish, else the learning story."""
    tried = charts.candidate_rows(history)
    if best or tried:
        if tried:
            st.plotly_chart(charts.leaderboard_figure(tried, charts.choice_row(history)), key="leaderboard_chart")
    elif charts.learning_rows(history):
        st.plotly_chart(charts.learning_story_figure(history), key="learning_chart")


def result(run) -> None:
    """How the kept model did on photos it never saw, in words; its hints (never of a model not kept)."""
    metrics, kept = run.metrics, charts.kept_model_history(run.history)
    if metrics is not None:
        low, high = metrics.accuracy_interval or (None, None)
        right = int(round(metrics.accuracy * metrics.n_images))
        st.markdown(f"It named {right} of {metrics.n_images} photos correctly that the model testing them had never "
                    f"seen: {charts.accuracy_words(metrics.accuracy, low, high)}.")
        if metrics.check_changes:  # the photo check changed photos: the number may read high, and its other end
            st.markdown(metrics.check_note())
    plain = insights.fit_hints([row for row in kept if row.get("phase") != "fine-tune"])
    tuned = insights.fit_hints(charts.fine_tune_rows(kept))  # in the details, beside the curves they are about
    poor = insights.accuracy_hint(metrics, run.config)
    layout.hints(plain, none_text=CURVES_LOOK_FINE if poor is None and not tuned and run.history else None)


def details(history, run=None) -> None:
    """The specialists' charts and words, folded away: the classifier's strength, fine-tuning, how it was measured."""
    kept = charts.kept_model_history(history)  # the strength search of the kept setting, not of every one tried
    heads, tuned = charts.head_rows(kept), charts.fine_tune_rows(history)
    measured = run.metrics.method if run is not None and run.metrics is not None else None
    if not (heads or tuned or measured):
        return
    with st.expander(DETAILS):
        if measured:
            st.markdown(f"Accuracy measured by {layout.md(measured)}.")
        if heads:
            st.plotly_chart(charts.selection_figure(kept), key="selection_chart")
        if tuned:
            st.plotly_chart(charts.training_curves(history), key="training_curves")
            choice = charts.choice_row(history)
            if choice is not None and not charts.tunes(choice["setting"]):
                st.caption("Fine-tuning was tried and not kept: these curves are of the model set aside.")
            layout.hints(insights.fit_hints(charts.fine_tune_rows(kept)))


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
    if active and state.preset() == BEST and won is None and charts.choice_row(snap.history) is not None:
        st.rerun()  # Best has chosen: the settings line above names the winner from now on
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
    latest = charts.status_line(snap.messages)  # one line, the latest step, not a column of every message
    ended_unchosen = finished and current.candidates and charts.choice_row(snap.history) is None
    if latest and (snap.state == "running" or ended_unchosen):  # a Best run without a choice row: its last sentence
        st.caption(layout.md(latest))
    story(snap.history, best=current.candidates is not None)
    run = job_control.adopt_result(current) if finished else None
    if finished:
        outcome(snap, run)
    details(snap.history, run)
    if run is not None and run.has_model:
        nav.link(nav.EVALUATE, "Next: see how good it is")


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
        result(run)
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
    story(run.history, best=False)
    result(run)
    details(run.history, run)
    nav.link(nav.EVALUATE, "See how good it is")
