import time

import streamlit as st

from quasar_core import sample
from quasar_core.data import DatasetRejected, Limits, load_folder, load_zip
from quasar_core.wording import plural
from quasar_core.errors import DatasetError, ResourceLimitError
from ui import job_control, layout, nav, state, uploads, workspace

POLL_SECONDS = 1.0
WAIT_SECONDS = 8.0  # a small upload (the sample's 300 photos: about a second) is shown in the same script run

layout.page_intro(
    "Upload photos",
    "Give the app your labelled photos, one class per folder, and see what it found in them.",
)


def use(load, photos_folder=None):
    """Check an upload in the background: `load(on_progress)` decodes every photo; the page shows "Checking photo
    N of M" meanwhile and stays responsive, and takes the result (take_upload) when the check has ended."""
    job = job_control.start_upload_check(load, photos_folder)
    bar = st.progress(0.0, text=job_control.upload_progress_text(job))
    deadline = time.monotonic() + WAIT_SECONDS
    while not job_control.wait_for(job, 0.25) and time.monotonic() < deadline:
        progress = job.progress
        bar.progress(progress.fraction if progress is not None and progress.total_steps else 0.0,
                     text=job_control.upload_progress_text(job))
    bar.empty()  # ended: its result below; still running: the progress below, polled


def take_upload(job) -> None:
    """An ended upload check: keep its photos in the workspace (once), or say plainly why nothing could be used."""
    if not job.taken:
        job.taken = True
        if job.state == "done":
            workspace.keep_photos(job.result, photos_folder=job.photos_folder)
        else:
            uploads.discard(job.photos_folder)
    if job.state == "cancelled":
        st.info("The check of your last upload was stopped; nothing of it was kept.")
    elif job.state == "failed":
        st.error(job.error)
        if job.report is not None:
            layout.problems(job.report)
    else:
        dataset = job.result
        if dataset.unlabelled:
            st.info(f"{plural(len(dataset.unlabelled), 'photo')} in a folder for photos to label were kept apart "
                    "from the classes: the model can pre-label them on the Label more page.")


def keep_to_label(load, photos_folder) -> None:
    """Photos to label later: checked like any upload, then added to the workspace's."""
    try:
        with st.spinner("Checking every photo…"):
            photos = load()
    except DatasetRejected as exc:
        st.error(str(exc))
        layout.problems(exc.report)
        uploads.discard(photos_folder)
        return
    except (DatasetError, ResourceLimitError, ValueError) as exc:
        st.error(str(exc))
        uploads.discard(photos_folder)
        return
    added = uploads.keep_to_label(photos)
    st.success(f"{plural(added, 'new photo')} to label kept" + (f" ({len(photos) - added} already here)."
                                                                if added < len(photos) else "."))
    layout.problems(photos.report)


limits = Limits.from_env()
tabs = ["A zip of class folders", "Photos per class", "The sample dataset", "Photos to label"]
if uploads.local_folders_allowed():
    tabs.append("A folder on this computer")
zip_tab, per_class_tab, sample_tab, later_tab, *local_tab = st.tabs(tabs)

with zip_tab:
    st.markdown("Zip a folder that holds one folder per class (for example `cats/` and `dogs/`) and upload it.")
    archive = st.file_uploader("Zip file", key="upload_zip")
    if st.button("Check and use this zip", key="load_zip", disabled=archive is None):
        folder, path = uploads.save_zip(archive.name, archive.getvalue())
        use(lambda on_progress, path=path, name=archive.name: load_zip(path, limits=limits, name=name,
                                                                       on_progress=on_progress), folder)

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
            try:
                folder = uploads.save_per_class([(name, f.name, f.getvalue()) for name, files in filled for f in files])
            except (ResourceLimitError, DatasetError) as exc:
                st.error(str(exc))
            else:
                use(lambda on_progress, folder=folder: load_folder(folder, limits=limits, source="your uploads",
                                                                   on_progress=on_progress), folder)

with sample_tab:
    st.markdown("300 small photos of clothing in 5 classes (Fashion-MNIST), to try the app without your own.")
    if st.button("Use the sample dataset", key="load_sample"):
        use(lambda on_progress: sample.load_sample(limits=limits))

with later_tab:
    st.markdown("Photos you have not labelled yet — a zip of them or the photos themselves, no class folders "
                "needed. A model trained on your labelled photos pre-labels them on the Label more page. (A folder "
                "named `unlabelled` inside a zip of class folders works too.)")
    later_zip = st.file_uploader("A zip of photos to label", key="upload_unlabelled_zip", type=["zip"])
    later_files = st.file_uploader("Or the photos themselves", key="upload_unlabelled_files",
                                   accept_multiple_files=True)
    if st.button("Check and keep these photos to label", key="load_unlabelled",
                 disabled=later_zip is None and not later_files):
        if later_zip is not None:
            folder, path = uploads.save_zip(later_zip.name, later_zip.getvalue())
            keep_to_label(lambda: load_zip(path, limits=limits, name=later_zip.name, unlabelled=True), folder)
        else:
            try:
                folder = uploads.save_photos([(f.name, f.getvalue()) for f in later_files])
            except (ResourceLimitError, DatasetError) as exc:
                st.error(str(exc))
            else:
                keep_to_label(lambda: load_folder(folder, limits=limits, source="your photos to label",
                                                  unlabelled=True), folder)

if local_tab:
    with local_tab[0]:
        st.markdown("The server runs on this computer, so it can read a folder of class folders directly: no zip, no "
                    "upload (this is on because QUASAR_ALLOW_LOCAL_FOLDERS=1; never turn it on for a shared server).")
        path = st.text_input("Folder path", key="local_folder", placeholder="/home/me/photos")
        if st.button("Check and use this folder", key="load_local", disabled=not path.strip()):
            use(lambda on_progress, path=path.strip(): load_folder(path, limits=uploads.local_limits(),
                                                                   on_progress=on_progress))

upload_job = job_control.current_upload_check()
checking_upload = job_control.is_active(upload_job)


@st.fragment(run_every=POLL_SECONDS if checking_upload else None)
def upload_progress() -> None:
    """"Checking photo N of M" while the upload check runs; the whole page reruns once it has ended."""
    current = job_control.current_upload_check()
    if current is None or current.finished:
        if checking_upload:
            st.rerun()
        return
    with st.container(horizontal=True):
        progress = current.progress
        st.progress(progress.fraction if progress is not None and progress.total_steps else 0.0,
                    text=job_control.upload_progress_text(current))
        st.button("Stop", key="stop_upload_check", on_click=current.cancel)


if checking_upload:
    upload_progress()
elif upload_job is not None:
    take_upload(upload_job)
pool = uploads.to_label()
if pool is not None:
    st.caption(f"{plural(len(pool), 'photo')} to label kept in this workspace.")
    nav.link(nav.LABEL, "Label them with the model's help")
dataset = state.dataset()
if dataset is not None:
    layout.data_report(dataset)
    nav.link(nav.CHECK, "Next: check your photos for wrong labels and copies")
    nav.link(nav.CONFIGURE, "Or go straight to the training settings")
