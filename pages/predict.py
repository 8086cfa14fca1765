import streamlit as st

from quasar_core import charts, data
from quasar_core.errors import QuasarError
from ui import explaining, layout, nav, predicting, state

layout.page_intro(
    "Predict",
    "Show the model a new photo and see what it thinks it is; download the model to use it elsewhere.",
)


def where_it_looked(run, content: bytes, name: str, best: str) -> None:
    """The Grad-CAM overlay for the predicted class, or for another class the user picks."""
    picture = st.container()
    others = [label for label in run.labels if label != best]
    explained = st.selectbox("Where it looked for", [best, *others],
                             key=f"explain_class_{explaining.photo_id(content)}",  # a new photo starts on its answer
                             help="Pick another class to see what in the photo looks like it to the model.")
    try:
        with st.spinner("Working out where the model looked…"):
            result = explaining.photo_explanation(run, content, name, explained)
    except QuasarError as exc:
        picture.info(str(exc))
    else:
        picture.image(result["overlay"], width="stretch",
                      caption=f"Where it looked for {explained} ({result['probability']:.1%}); red mattered most")


def offer_checked_export(run, format: str) -> None:
    """A button that writes and checks the export, then its download with what the check found."""
    title, description = predicting.CHECKED_FORMATS[format]
    prepared = state.prepared_export(str(run.path), format)
    if prepared is None:
        if st.button(f"Prepare the {title} download", key=f"prepare_{format}", help=f"{title}: {description}."):
            try:
                with st.spinner(f"Writing the {title} model and checking it against the model's own predictions "
                                "(a few seconds)…"):
                    state.set_prepared_export(str(run.path), format, predicting.prepare_export(run, format))
            except QuasarError as exc:
                st.error(f"{exc} Download the zip instead, which holds the model as it was trained.")
            else:
                st.rerun()  # redraw with the download in place of the button
        else:
            st.caption(f"{title}: {description}. It is written and checked when you ask (a few seconds).")
        return
    st.download_button(f"Download the {title} model", key=f"download_{format}", data=prepared.reader(),
                       file_name=prepared.file_name, mime=prepared.mime, on_click="ignore")
    st.caption(f":material/verified: {title} {prepared.check_text}.")


run = state.current_run()
if layout.need(run is not None and run.has_model, "There is no trained model yet: train one, or reopen one of "
               "your past runs.", nav.TRAIN, "Train a model"):
    st.caption(f"Model: {layout.md(layout.describe_run(run))}")
    photo = st.file_uploader("Upload a photo", key="predict_upload")
    if st.toggle("Use the camera instead", key="use_camera"):
        photo = st.camera_input("Take a photo", key="predict_camera") or photo
    if photo is not None:
        content = photo.getvalue()
        try:
            with st.spinner("Looking at the photo…"):
                try:  # one pass through VGG16 both classifies the photo and explains the answer
                    probabilities = explaining.photo_explanation(run, content, photo.name)["probabilities"]
                except explaining.CannotExplain:
                    probabilities = predicting.classify(run, content, photo.name)
        except data.ImageRejected as exc:
            st.error(f"{photo.name} cannot be used: {exc.reason}.")
        except QuasarError as exc:
            st.error(str(exc))
        else:
            best = max(probabilities, key=probabilities.get)
            image_column, cam_column, chart_column = st.columns([1, 1, 2])
            image_column.image(content, caption=photo.name, width="stretch")
            with cam_column:
                where_it_looked(run, content, photo.name, best)
            with chart_column:
                st.markdown(f"It is most likely **{layout.md(best)}** ({probabilities[best]:.1%} sure).")
                st.plotly_chart(charts.probability_bars(probabilities), key="probability_bars")

    st.subheader("Take the model with you")
    if predicting.export_available():
        st.download_button("Download the model (zip: model, labels, metrics)", key="download_run",
                           data=predicting.zip_maker(run.path), file_name=f"quasar-{run.name}.zip",
                           mime="application/zip", on_click="ignore")
        st.caption("The zip holds model.keras (it takes RGB photos of any size), its labels, settings and "
                   "test results, and a predict.py that runs it with Python and TensorFlow.")
        if predicting.can_check_exports(run):
            st.markdown("Other formats are checked before they are offered: each must give the same answers as "
                        f"the model on its held-out photos. Outputs are probabilities in this class order: "
                        f"{layout.md(', '.join(run.labels))}.")
            for format in predicting.CHECKED_FORMATS:
                offer_checked_export(run, format)
        else:
            st.caption("SavedModel and TFLite files are checked against the model's held-out photos before they "
                       "are offered; a model opened from a file has none, so use the zip.")
    else:
        st.info("Downloading models is not available in this installation (quasar_core.export is missing).")
