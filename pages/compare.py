import streamlit as st

from quasar_core import charts
from quasar_core.wording import join_words
from quasar_core.errors import QuasarError
from ui import comparing, job_control, layout, nav, state

POLL_SECONDS = 1.0

layout.page_intro(
    "Compare",
    "See what starting from ImageNet is worth on your own photos, against a small network trained from random "
    "weights on the same photos.",
    page=nav.COMPARE,
)


def show_results(summary: dict) -> None:
    """The chart, the conclusion in words, and the numbers."""
    st.plotly_chart(charts.comparison_figure(summary["results"]), key="comparison_chart")
    st.markdown(f"**{layout.md(summary['conclusion'])}**")
    if summary.get("method"):
        st.caption(f"Measured by {layout.md(summary['method'])}; times are what a training of each would take.")
    if any(r["weights"] == "none" for r in summary["results"]):
        st.caption("Compared before the small network from scratch existed: VGG16 with random weights, frozen, under "
                   "a trained top layer. Press Compare again for a network trained from scratch.")
    if summary.get("cancelled"):
        st.caption("Stopped early: only the trainings that finished are shown.")
    st.dataframe(comparing.results_table(summary["results"]), hide_index=True, key="comparison_table")


run, dataset, job = state.current_run(), state.dataset(), comparing.current_job()
active = job_control.is_active(job)


@st.fragment(run_every=POLL_SECONDS if active else None)
def live_view(run) -> None:
    """Redrawn every second while the comparison runs, without rerunning (or freezing) the page."""
    job = comparing.current_job()
    if job is None:
        return
    snap = job_control.snapshot(job)
    if not comparing.is_for(job, run):
        st.info(f"Your comparison for another model (folder {layout.md(job.run_dir.name)}) is "
                f"{'running' if job_control.is_active(job) else 'over'}; reopen that model to see it.")
    if snap.state == "queued":
        st.info(f"Waiting for another training on this server to finish: you are number {snap.queue_position} "
                "in line. It starts by itself.")
    elif snap.state == "running":
        if job.cancel_event.is_set():
            st.warning("Stopping after the current batch; the trainings that finished are kept.")
        st.progress(comparing.overall_fraction(snap), text=comparing.headline(snap))
        if snap.progress is not None:
            st.caption(comparing.progress_text(snap.progress))
    if snap.state in job_control.ACTIVE_STATES:
        return
    if active:  # it ended since the page was drawn: redraw it all (buttons)
        st.rerun()
    if not comparing.is_for(job, run):
        return
    if snap.state == "failed":
        st.error(f"{snap.error} Check the settings on the Configure page, then compare again.")
    summary = comparing.saved(run)
    if summary and summary.get("results"):
        show_results(summary)
    elif snap.state == "cancelled":
        st.warning("Stopped before the first training finished, so there is nothing to show. Press "
                   "Compare again to start over.")


if layout.need_model(run is not None and run.has_model, "how much ImageNet helped it"):
    layout.model_line(run)
    shares = join_words([f"{f * 100:.0f} %" for f in sorted(set(comparing.FRACTIONS))])
    st.markdown(f"Two ways to learn from your photos. **Transfer**: VGG16 reads them with its ImageNet weights "
                f"(mostly remembered from the training) and a model learns from {shares} of them; every photo is "
                "tested by models that never saw it. **From scratch**: a small network "
                f"({comparing.SCRATCH_WORDS}) starts from random weights and learns every layer from your photos "
                f"({comparing.SCRATCH_BUDGET_WORDS}); it is tested on a fifth of the photos it never saw, where the "
                "transfer model is scored too. Each accuracy comes with its range, so you can see whether a "
                "difference is real. The network from scratch takes minutes.")
    if run.config.weights == "none":
        st.caption("This model itself started from random weights; the comparison starts from ImageNet's.")
    saved = comparing.saved(run)
    problem = comparing.missing_photos(run, dataset)
    with st.container(horizontal=True, key="comparison_buttons"):  # side by side, not a column apart
        start = st.button("Compare again" if saved else "Compare with training from scratch",
                          key="start_comparison", type="primary", disabled=active or problem is not None)
        stop = st.button("Stop", key="stop_comparison", disabled=not active)
    if problem is not None and not active:
        message, page, label = problem
        st.info(message)
        nav.link(page, label)
    if start and not active and problem is None:
        try:
            comparing.start(run, dataset)
        except QuasarError as exc:
            st.error(str(exc))
        else:
            st.rerun()  # redraw the buttons: Compare off, Stop on
    if stop and active:
        job.cancel()

    if job is not None and (active or comparing.is_for(job, run)):
        live_view(run)
    elif saved:
        show_results(saved)
