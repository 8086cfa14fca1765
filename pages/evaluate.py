import streamlit as st

from quasar_core import charts
from ui import layout, nav, state

layout.page_intro(
    "Evaluate",
    "See how well the model names photos it never saw while learning, and where it goes wrong.",
)

run = state.current_run()
if layout.need(run is not None and run.metrics is not None,
               "There is no evaluated model yet: train one, or reopen one of your past runs.",
               nav.TRAIN, "Train a model"):
    evaluation = run.metrics
    st.caption(f"Model: {layout.md(layout.describe_run(run))}")
    st.metric("Accuracy on held-out photos", f"{evaluation.accuracy:.1%}")
    st.markdown(evaluation.summary())

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
                    f"{len(chosen)} photos.")
    else:
        chosen = evaluation.mistakes()
        st.markdown(f"**Its mistakes**, most confident first: {len(chosen)} of {evaluation.n_images} photos."
                    if chosen else "**No mistakes** on the held-out photos.")
    layout.prediction_gallery(run, chosen)
    nav.link(nav.PREDICT, "Next: try it on new photos")
