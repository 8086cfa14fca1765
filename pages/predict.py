import streamlit as st

from quasar_core import charts, data
from quasar_core.errors import QuasarError
from ui import layout, nav, predicting, state

layout.page_intro(
    "Predict",
    "Show the model a new photo and see what it thinks it is; download the model to use it elsewhere.",
)

run = state.current_run()
if layout.need(run is not None and run.has_model, "There is no trained model yet: train one, or reopen one of "
               "your past runs.", nav.TRAIN, "Train a model"):
    st.caption(f"Model: {layout.md(layout.describe_run(run))}")
    photo = st.file_uploader("Upload a photo", key="predict_upload")
    if st.toggle("Use the camera instead", key="use_camera"):
        photo = st.camera_input("Take a photo", key="predict_camera") or photo
    if photo is not None:
        try:
            with st.spinner("Looking at the photo…"):
                probabilities = predicting.classify(run, photo.getvalue(), photo.name)
        except data.ImageRejected as exc:
            st.error(f"{photo.name} cannot be used: {exc.reason}.")
        except QuasarError as exc:
            st.error(str(exc))
        else:
            best = max(probabilities, key=probabilities.get)
            image_column, chart_column = st.columns([1, 2])
            image_column.image(photo.getvalue(), caption=photo.name, width="stretch")
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
    else:
        st.info("Downloading models is not available in this installation (quasar_core.export is missing).")
