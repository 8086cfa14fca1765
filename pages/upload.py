import streamlit as st

from quasar_core import data, sample
from quasar_core.errors import DatasetError, ResourceLimitError
from ui import layout, nav, settings_form, state

layout.page_intro(
    "Upload photos",
    "Give the app your labelled photos, one class per folder, and see what it found in them.",
)


def use(load):
    """Run a loader; keep its dataset, or say plainly why nothing could be used."""
    try:
        with st.spinner("Checking every photo…"):
            dataset = load()
    except data.DatasetRejected as exc:
        st.error(str(exc))
        layout.problems(exc.report)
        return
    except (DatasetError, ResourceLimitError, ValueError) as exc:
        st.error(str(exc))
        return
    state.set_dataset(dataset)
    settings_form.adapt_to_photos(dataset)


limits = data.Limits.from_env()
zip_tab, per_class_tab, sample_tab = st.tabs(["A zip of class folders", "Photos per class", "The sample dataset"])

with zip_tab:
    st.markdown("Zip a folder that holds one folder per class (for example `cats/` and `dogs/`) and upload it.")
    archive = st.file_uploader("Zip file", key="upload_zip")
    if st.button("Check and use this zip", key="load_zip", disabled=archive is None):
        use(lambda: data.load_zip(archive, limits=limits, name=archive.name))

with per_class_tab:
    st.markdown("Type each class's name and drop its photos next to it.")
    rows = []
    for row in range(state.class_rows()):
        name_column, files_column = st.columns([1, 2])
        name = name_column.text_input("Class name", key=f"class_name_{row}", placeholder=f"Class {row + 1}")
        files = files_column.file_uploader(f"Photos of {name or f'class {row + 1}'}", key=f"class_files_{row}",
                                           accept_multiple_files=True)
        rows.append((name.strip(), files or []))
    st.button("Add another class", key="add_class_row", on_click=state.add_class_row)
    filled = [(name, files) for name, files in rows if files]
    if st.button("Check and use these photos", key="load_photos", disabled=not filled):
        unnamed = [files[0].name for name, files in filled if not name]
        if unnamed:
            st.error(f"The photos starting with {unnamed[0]!r} have no class name. Type a name next to them.")
        else:
            items = [(f.name, f.getvalue(), name) for name, files in filled for f in files]
            use(lambda: data.load_uploads(items, limits=limits, source="your uploads"))

with sample_tab:
    st.markdown("300 small photos of clothing in 5 classes (Fashion-MNIST), to try the app without your own.")
    if st.button("Use the sample dataset", key="load_sample"):
        use(lambda: sample.load_sample(limits=limits))

dataset = state.dataset()
if dataset is not None:
    layout.data_report(dataset)
    nav.link(nav.CONFIGURE, "Next: choose the training settings")
