import streamlit as st

from quasar_core.errors import QuasarError
from quasar_core.runs.folder import delete_run
from quasar_core.runs.learned import forget
from quasar_core.runs.pipeline import recover_run
from quasar_core.runs.report import labelling_words
from ui import comparing, job_control, layout, nav, predicting, resources, state, workspace

STATE_WORDS = {"done": "finished", "cancelled": "stopped early", "failed": "failed", "interrupted": "interrupted"}

layout.page_intro(
    "Past runs",
    "Every model trained in this workspace, newest first: reopen one to evaluate or use it, or delete it.",
)

here = workspace.current()
current, job, comparison = state.current_run(), job_control.current_job(), comparing.current_job()
busy_dir = job.run_dir.resolve() if job_control.is_active(job) else None
comparing_dir = comparison.run_dir.resolve() if job_control.is_active(comparison) else None
listed = here.runs()
pinned = here.pinned()
st.caption("This workspace's address (with ?workspace=…) is its key: bookmark it to come back to these runs. "
           "When the runs take more room than allowed, the oldest ones that are not pinned are deleted first.")
if here.recently_deleted():
    st.info(f"To make room, the oldest unpinned runs were deleted: {layout.md(', '.join(here.recently_deleted()))}.")

with st.container(border=True):
    st.markdown("**Open a model** saved from Quasar Nexus to use it here. The file is checked first: models that "
                "carry code are refused.")
    model_file = st.file_uploader("Open a model (.keras or a Quasar export .zip)", type=["keras", "zip"],
                                  key="open_model_upload")
    if st.button("Open this model", key="open_model", disabled=model_file is None):
        try:
            with st.spinner(f"Checking and opening {model_file.name}…"):
                opened = predicting.open_model(model_file.getvalue(), model_file.name, here.root)
        except QuasarError as exc:
            st.error(str(exc))
        else:
            state.set_current_run(opened)
            nav.go(nav.PREDICT)

if layout.need(bool(listed), "No runs yet in this workspace: train a model and it is listed here.", nav.TRAIN,
               "Train a model", (nav.UPLOAD, "Or load your photos first")):
    for run in listed:
        is_current = current is not None and current.path.resolve() == run.path.resolve()
        training = busy_dir is not None and run.path.resolve() == busy_dir
        with st.container(border=True):
            info, reopen, pin, delete = st.columns([4, 1, 1, 1])
            words = "training now" if training else STATE_WORDS.get(run.state, run.state)
            if run.opened_from_file:
                words = f"opened from {run.status.opened_from}"
            info.markdown(f"**{layout.md(layout.describe_run(run))}**" + (" (current)" if is_current else ""))
            info.caption(f"{layout.md(layout.first_capital(words))} · trained "
                         f"{layout.md(layout.trained_when(run))} · classes: {layout.md(', '.join(run.labels))}")
            labelled = labelling_words(run)
            if labelled:
                info.caption(layout.md(layout.first_capital(labelled)) + ".")
            if run.state in ("failed", "interrupted") and run.status.message:
                info.caption(layout.md(run.status.message))
            if run.recoverable and not training:
                if reopen.button("Recover", key=f"recover_{run.name}",
                                 help="Keep the fine-tuning of its last finished epoch."):
                    try:
                        with st.spinner("Rebuilding the model from its last finished epoch…"):
                            recovered = recover_run(run.path, base_loader=resources.base_loader(run.config.weights))
                    except QuasarError as exc:
                        st.error(str(exc))
                    else:
                        state.set_current_run(recovered)
                        nav.go(nav.PREDICT)
            elif reopen.button("Reopen", key=f"reopen_{run.name}", disabled=not run.has_model or is_current,
                               help=None if run.has_model else "This run has no usable model."):
                state.set_current_run(run)
                nav.go(nav.EVALUATE if run.metrics is not None else nav.PREDICT)
            pin.checkbox("Pin", value=run.name in pinned, key=f"pin_{run.name}", help="Pinned runs are never deleted "
                         "to make room.", on_change=lambda name=run.name: here.pin(name, name not in here.pinned()))
            busy = training or run.path.resolve() == comparing_dir
            with delete.popover("Delete", disabled=busy,
                                help="Stop its training or comparison, or let it end, to delete it." if busy else None):
                st.markdown("Delete this run and its model for good?")
                if st.button("Yes, delete it", key=f"delete_{run.name}", type="primary"):
                    try:
                        delete_run(run.path, here.root)
                    except QuasarError as exc:
                        st.error(str(exc))
                    else:
                        forget(run.path.resolve())
                        if is_current:
                            state.set_current_run(None)
                        st.rerun()
