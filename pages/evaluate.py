import streamlit as st

from quasar_core import charts, insights
from quasar_core.errors import QuasarError
from ui import explaining, layout, nav, state

GRAD_CAM_LIMIT = 12  # photos explained at once: each takes a fraction of a second

layout.page_intro(
    "Evaluate",
    "See how well the model names photos it never saw while learning, and where it goes wrong.",
)

run = state.current_run()
if run is not None and run.has_model and run.metrics is None:
    st.info("This model has no held-out evaluation: it was opened from a file (or its training stopped before "
            "the final test), so there are no held-back photos to measure it on. Try it on your own photos "
            "instead, or train a model here to evaluate it.")
    nav.link(nav.PREDICT, "Try it on new photos")
elif layout.need(run is not None and run.metrics is not None,
                 "There is no evaluated model yet: train one, or reopen one of your past runs.",
                 nav.TRAIN, "Train a model"):
    evaluation = run.metrics
    st.caption(f"Model: {layout.md(layout.describe_run(run))}")
    st.metric("Accuracy on held-out photos", f"{evaluation.accuracy:.1%}")
    st.markdown(evaluation.summary())

    st.subheader("What the numbers suggest")
    layout.hints(insights.all_hints(run.history, evaluation, (run.report or {}).get("counts"), run.config),
                 none_text="Nothing to worry about: no sign of over- or under-fitting, no class often taken for "
                           "another, and the classes are balanced.")

    st.subheader("Class by class")
    st.markdown("*Precision*: when it says this class, how often it is right. *Recall*: of the photos of this "
                "class, how many it finds. *F1* combines both.")
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(charts.per_class_table(evaluation), hide_index=True, key="per_class",
                 column_config={"Precision": percent, "Recall": percent, "F1": percent})

    st.subheader("What it confuses")
    st.markdown("Each row is the real class, each column what the model said; the diagonal is right. "
                "Click a square to see its photos.")
    normalize = st.toggle("Show shares of each row instead of counts", key="normalize_confusion")
    event = st.plotly_chart(charts.confusion_matrix_figure(evaluation, normalize=normalize),
                            on_select="rerun", selection_mode="points", key="confusion_matrix")
    cell = charts.selected_cell(event.selection.points, labels=evaluation.labels)
    if cell is not None:
        true_label, predicted_label = cell
        chosen = evaluation.cell(true_label, predicted_label)
        st.markdown(f"**Really {layout.md(true_label)}, predicted {layout.md(predicted_label)}**: "
                    f"{len(chosen)} photo{'' if len(chosen) == 1 else 's'}.")
    else:
        chosen = evaluation.mistakes()
        st.markdown(f"**Its mistakes, most confident first** (the top losses): {len(chosen)} of "
                    f"{evaluation.n_images} photos." if chosen else "**No mistakes** on the held-out photos.")
    overlays = None
    if chosen and st.toggle("Show where the model looked (Grad-CAM)", key="show_grad_cam",
                            help="Colours the parts of each photo that pushed the model towards its answer, red "
                                 "most. Worked out when you ask, for the first photos shown."):
        try:
            with st.spinner("Working out where the model looked…"):
                overlays = [explaining.example_overlay(run, p) for p in chosen[:GRAD_CAM_LIMIT]]
        except QuasarError as exc:
            st.warning(str(exc))
    layout.prediction_gallery(run, chosen, overlays=overlays)

    st.subheader("Share it")
    st.download_button("Download the model card (HTML)", key="download_model_card",
                       data=explaining.model_card_maker(run.path), file_name=f"model-card-{run.name}.html",
                       mime="text/html", on_click="ignore")
    st.caption("One web page with the results, the curves, example mistakes and where the model looked. "
               "It opens offline, for people who do not use this app.")
    nav.link(nav.PREDICT, "Next: try it on new photos")
    nav.link(nav.COMPARE, "How much did ImageNet help? Compare with training from scratch")
