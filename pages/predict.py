import numpy as np
import streamlit as st

from quasar_core import charts, predicting as answers
from quasar_core.errors import QuasarError
from quasar_core.wording import confidence as sure
from ui import explaining, layout, nav, predicting, state

SHOWN_IN_DETAIL = 12

layout.page_intro(
    "Predict",
    "Show the model new photos and see what it thinks they are — and whether they look like any of its classes; "
    "download the model or share it as an app.",
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
                      caption=f"Where it looked for {explained} ({sure(result['probability'])}); red mattered most")


def answer(run, result: dict, content: bytes, *, explain: bool) -> None:
    image_column, cam_column, chart_column = st.columns([1, 1, 2])
    image_column.image(content, caption=result["image"], width="stretch")
    with chart_column:
        if result["unknown"]:
            st.warning(f"This doesn't look like any of your classes ({layout.md(', '.join(run.labels))}). The "
                       f"closest is {layout.md(result['label'])}, but the photo is unlike the ones it learned from.")
        else:
            confidence = result["probabilities"][result["label"]]
            st.markdown(f"It is most likely **{layout.md(result['label'])}** ({sure(confidence)} sure).")
        st.plotly_chart(charts.probability_bars(result["probabilities"], unknown=result["unknown"]),
                        key=f"probability_bars_{explaining.photo_id(content)}")
    if explain:
        with cam_column:
            where_it_looked(run, content, result["image"], result["label"])


def offer_checked_export(run, format: str) -> None:
    """A button that writes and checks the export, then its download with what the check found."""
    title, description, _ = predicting.CHECKED_FORMATS[format]
    prepared = state.prepared_export(str(run.path), format)
    if prepared is None:
        if st.button(f"Prepare: {title}", key=f"prepare_{format}", help=f"{title}: {description}."):
            try:
                with st.spinner(f"Writing {title} and checking it against the model's own answers (a few seconds)…"):
                    state.set_prepared_export(str(run.path), format, predicting.prepare_export(run, format))
            except QuasarError as exc:
                st.error(f"{exc} Download the zip instead, which holds the model as it was trained.")
            else:
                st.rerun()  # redraw with the download in place of the button
        else:
            st.caption(f"{title}: {description}. It is written and checked when you ask (a few seconds).")
        return
    st.download_button(f"Download: {title}", key=f"download_{format}", data=prepared.reader(),
                       file_name=prepared.file_name, mime=prepared.mime, on_click="ignore")
    st.caption(f":material/verified: {title} {prepared.check_text}.")


run = state.current_run()
if layout.need_model(run is not None and run.has_model, "its answers"):
    layout.model_line(run)
    uploads = layout.photos_to_try("Upload photos (one, or many to check whether new photos are like the old)",
                                   key="predict", multiple=True)
    if uploads:
        try:
            with st.spinner("Looking at the photos…"):
                results, problems = predicting.classify(run, uploads)
        except QuasarError as exc:
            st.error(str(exc))
        else:
            for problem in problems:
                st.error(layout.md(problem))
            if len(results) > 1 and (drift := answers.drift_sentence(results)):
                st.subheader("Do the new photos look like the training photos?")
                st.markdown(layout.md(drift))
                st.plotly_chart(charts.familiarity_histogram(
                    np.array([r["familiarity"] for r in results]), np.array([r["unknown"] for r in results]),
                    threshold=answers.familiar_threshold(run)), key="familiarity_histogram")
            content = dict(uploads)
            for result in results[:SHOWN_IN_DETAIL]:
                answer(run, result, content[result["image"]], explain=len(results) == 1)
            if len(results) > SHOWN_IN_DETAIL:
                st.dataframe([{"Photo": r["image"], "Answer": answers.answer_words(r, run.labels)}
                              for r in results], hide_index=True, key="all_answers")

    st.subheader("Take the model with you")
    st.download_button("Download the model (zip: model, labels, results, predict.py)", key="download_run",
                       data=predicting.zip_maker(run), file_name=f"quasar-{run.name}.zip",
                       mime="application/zip", on_click="ignore")
    st.caption("The zip holds model.keras (it takes photos of any size), its labels, settings and results, and a "
               "predict.py that runs it with Python and TensorFlow and says when a photo looks like none of the "
               "classes.")
    if predicting.can_check_exports(run):
        st.markdown("These are checked before they are offered: each must give the model's own answers on its "
                    f"photos. Outputs are probabilities in this class order: {layout.md(', '.join(run.labels))}.")
        for format in predicting.CHECKED_FORMATS:
            offer_checked_export(run, format)
    else:
        st.caption("The other formats are checked against the model's own photos before they are offered; a model "
                   "opened from a file has none, so use the zip.")
