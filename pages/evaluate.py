import streamlit as st

from quasar_core import charts, insights
from quasar_core.errors import QuasarError
from quasar_core.runs.folder import FILES
from quasar_core.runs.learned import familiarity_of
from quasar_core.wording import calibration_claim, estimate, percent, plural
from ui import explaining, layout, nav, state

GRAD_CAM_LIMIT = 12  # photos explained at once: each takes a fraction of a second

layout.page_intro(
    "Evaluate",
    "See how well the model names photos it never saw while learning, and where it goes wrong.",
)

run = state.current_run()
if run is not None and run.has_model and run.metrics is None:
    why = ("it was opened from a file without one, so there are no photos to measure it on" if run.opened_from_file
           else "its training stopped before the model was measured")
    layout.model_line(run)
    st.info(f"This model has no evaluation: {why}. Try it on your own photos instead, or train a model here to "
            "evaluate it.")
    nav.link(nav.PREDICT, "Try it on new photos")
    nav.link(nav.TRAIN, "Train a model")
elif layout.need_model(run is not None and run.metrics is not None, "its results"):
    evaluation = run.metrics
    layout.model_line(run)
    if st.button("Present", key="present", icon=":material/slideshow:", type="primary",
                 help="One screen to show this model to a room: large type, examples and a live try."):
        nav.go(nav.PRESENT)
    st.metric("Accuracy on photos the model being tested never saw",
              estimate(evaluation.accuracy, evaluation.accuracy_interval))
    right = int(round(evaluation.accuracy * evaluation.n_images))
    st.markdown(f"It named {right} of {evaluation.n_images} photos correctly that the model testing them had never "
                "seen (how it was measured: in the details below).")
    if evaluation.check_changes:  # the photo check changed photos: the number may read high, and its other end
        st.markdown(evaluation.check_note())
    if evaluation.doubt_note():  # labels that look wrong make it read low: the other end
        st.markdown(evaluation.doubt_note())
    st.caption("The range is where the true accuracy lies with 95 % confidence, given how many photos it was "
               "measured on. The model you keep learned from every photo.")
    selection = run.read(FILES.SELECTION)
    if selection:  # each setting's own score, before the correction for picking the best: for specialists
        with st.expander("Details for specialists: the settings Best accuracy tried"):
            st.dataframe([{"Setting": row["setting"], "Accuracy": estimate(row["accuracy"], None),
                           "Tested on": plural(row["photos"], "photo"), "Kept": "✓" if row["chosen"] else ""}
                          for row in selection], hide_index=True, key="selection_table")
            st.caption("Each setting's score before the correction for having picked the best of them; the number "
                       "above counts that choice.")

    st.subheader("What the numbers suggest")
    layout.hints(insights.all_hints(run.history, evaluation, run.report.counts if run.report else None, run.config),
                 none_text="Nothing to worry about: no sign of over- or under-fitting, no class often taken for "
                           "another, and the classes are balanced.")

    st.subheader("Class by class")
    st.markdown("*Precision*: when it says this class, how often it is right. *Recall*: of the photos of this "
                "class, how many it finds. *F1* combines both.")
    # Written by wording.percent ("91.7 %"), as everywhere else: the grid's own "percent" format wrote "91.67%".
    scores = ("Precision", "Recall", "F1")
    st.dataframe([{column: percent(value) if column in scores else value for column, value in row.items()}
                  for row in charts.per_class_table(evaluation)], hide_index=True, key="per_class",
                 column_config={column: st.column_config.TextColumn(alignment="right") for column in scores})

    st.subheader("How far to trust its confidence")
    st.markdown(layout.md(calibration_claim(evaluation.reliability)))
    st.plotly_chart(charts.reliability_figure(evaluation), key="reliability")
    if evaluation.calibration_error is not None:
        with st.expander("Details for specialists"):
            st.markdown(f"Expected calibration error: {percent(evaluation.calibration_error)} (the gap between stated "
                        f"confidence and accuracy, averaged over {len(evaluation.reliability)} bands of confidence "
                        "weighted by their photos). Measured by: " + layout.md(evaluation.method) + ".")
    familiarity = familiarity_of(run)
    if familiarity is not None:
        st.markdown(layout.md(familiarity.describe()))

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
                    f"{plural(len(chosen), 'photo')}.")
    else:
        chosen = evaluation.mistakes()
        st.markdown(f"**Its mistakes, most confident first** (the top losses): {len(chosen)} of "
                    f"{evaluation.n_images} photos." if chosen else "**No mistakes** on the photos it was tested on.")
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
    if chosen:
        nav.link(nav.CHECK, "Think some of these photos are in the wrong folder? Check your photos")

    st.subheader("Share it")
    st.download_button("Download the model card (HTML)", key="download_model_card",
                       data=explaining.model_card_maker(run.path), file_name=f"model-card-{run.name}.html",
                       mime="text/html", on_click="ignore")
    st.caption("One web page with the results, how sure they are, example mistakes and where the model looked. "
               "It opens offline, for people who do not use this app.")
    nav.link(nav.PREDICT, "Next: try it on new photos")
    nav.link(nav.LABEL, "Have photos without labels? Let the model help label them")
    nav.link(nav.COMPARE, "How much did ImageNet help? Compare with training from scratch")
