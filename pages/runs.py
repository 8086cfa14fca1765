import streamlit as st

from quasar_core import runs
from quasar_core.errors import QuasarError
from ui import comparing, job_control, layout, nav, predicting, resources, state, workspace

layout.page_intro(
    "Past runs",
    "Every model trained in this workspace, newest first: reopen one to evaluate or use it, or delete it.",
)

root = workspace.current_runs_root()
current, job, comparison = state.current_run(), job_control.current_job(), comparing.current_job()
busy_dir = job.run_dir.resolve() if job_control.is_active(job) else None
comparing_dir = comparison.run_dir.resolve() if job_control.is_active(comparison) else None
listed = runs.list_runs(root)
st.caption("This workspace's address (with ?workspace=…) is its key: bookmark it to come back to these runs.")

with st.container(border=True):
    st.markdown("**Open a model** saved from Quasar Nexus to use it here. The file is checked first: models that "
                "carry code are refused.")
    model_file = st.file_uploader("Open a model (.keras or a Quasar export .zip)", type=["keras", "zip"],
                                  key="open_model_upload")
    if st.button("Open this model", key="open_model", disabled=model_file is None):
        try:
            with st.spinner(f"Checking and opening {model_file.name}…"):
                opened = predicting.open_model(model_file.getvalue(), model_file.name, root)
        except QuasarError as exc:
            st.error(str(exc))
        else:
            state.set_current_run(opened)
            nav.go(nav.PREDICT)

if layout.need(bool(listed), "No runs yet in this workspace.", nav.TRAIN, "Train a model"):
    for run in listed:
        is_current = current is not None and current.path.resolve() == run.path.resolve()
        training = busy_dir is not None and run.path.resolve() == busy_dir
        with st.container(border=True):
            info, reopen, delete = st.columns([4, 1, 1])
            state_words = {"done": "finished", "cancelled": "stopped early", "failed": "failed",
                           "interrupted": "recovered after an interruption",
                           "running": "training now" if training else "interrupted"}.get(run.state, run.state)
            if run.report is None and run.state == "done":  # no data report: it came from a model file
                state_words = "opened from a file"
            info.markdown(f"**{layout.md(layout.describe_run(run))}**" + (" (current)" if is_current else ""))
            info.caption(f"{state_words.capitalize()} · classes: {layout.md(', '.join(run.labels))} · "
                         f"folder {layout.md(run.name)}")
            if runs.recoverable(run) and not training:
                # The server stopped mid-training: the last finished epoch's weights were saved.
                if reopen.button("Recover", key=f"recover_{run.name}",
                                 help="Rebuild the model from the last finished epoch."):
                    try:
                        with st.spinner("Rebuilding the model from its last finished epoch…"):
                            recovered = runs.recover_run(run.path, base=resources.shared_base(run.config.weights))
                    except QuasarError as exc:
                        st.error(str(exc))
                    else:
                        state.set_current_run(recovered)
                        nav.go(nav.PREDICT)
            elif reopen.button("Reopen", key=f"reopen_{run.name}", disabled=not run.has_model or is_current):
                state.set_current_run(run)
                nav.go(nav.EVALUATE if run.metrics is not None else nav.PREDICT)
            busy = training or run.path.resolve() == comparing_dir
            with delete.popover("Delete", disabled=busy,
                                help="Stop its training or comparison, or let it end, to delete it." if busy else None):
                st.markdown("Delete this run and its model for good?")
                if st.button("Yes, delete it", key=f"delete_{run.name}", type="primary"):
                    try:
                        runs.delete_run(run.path, root)
                    except QuasarError as exc:
                        st.error(str(exc))
                    else:
                        if is_current:
                            state.set_current_run(None)
                        st.rerun()
