"""Uploaded photos are kept in the workspace as uploaded, then checked from there.

So nothing the user uploaded is lost on a reload or a restart, and the checked dataset
refers to files on disk instead of holding them in memory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from quasar_core.data import Limits
from quasar_core.data.records import MB
from quasar_core.errors import ResourceLimitError
from ui import workspace

LOCAL_FOLDERS_ENV = "QUASAR_ALLOW_LOCAL_FOLDERS"
LOCAL_IMAGES_ENV = "QUASAR_MAX_LOCAL_IMAGES"
DEFAULT_LOCAL_IMAGES = 50_000


def save_zip(name: str, content: bytes) -> tuple[Path, Path]:
    """(the upload's folder, the zip file in it)."""
    here = workspace.current()
    folder = here.new_photos_folder()
    return folder, here.save_upload(folder, Path(name).name or "photos.zip", content)


def save_per_class(files: list[tuple[str, str, bytes]]) -> Path:
    """Files as (class name, file name, bytes) saved as <folder>/<class>/<file>; returns the folder."""
    entries = [(f"{label.replace('/', ' ')}/{_base_name(name)}", content) for label, name, content in files]
    return _save_new_folder(entries, "uploads")


def save_photos(files: list[tuple[str, bytes]]) -> Path:
    """Photos to label later, as (file name, bytes), saved side by side in a new folder; returns the folder."""
    return _save_new_folder([(_base_name(name), content) for name, content in files], "photos")


def _base_name(name: str) -> str:
    return Path(name.replace(chr(92), "/")).name  # a browser may send a Windows path


def _save_new_folder(entries: list[tuple[str, bytes]], what: str) -> Path:
    """(path inside the folder, bytes) saved in a new upload folder of the workspace, within the upload limit."""
    limits = Limits.from_env()
    total = sum(len(content) for _, content in entries)
    if total > limits.max_upload_bytes:
        raise ResourceLimitError(
            f"The {what} add up to {total / MB:.0f} MB, more than the upload limit of "
            f"{limits.max_upload_bytes / MB:.0f} MB (set by QUASAR_MAX_UPLOAD_MB). Upload fewer or smaller photos.")
    here = workspace.current()
    folder = here.new_photos_folder()
    for relative, content in entries:
        here.save_upload(folder, relative, content)
    return folder


def keep_to_label(photos) -> int:
    """Checked photos to label (a Dataset from load_unlabelled) join the workspace's; returns how many were new."""
    return workspace.current().keep_unlabelled(photos)


def to_label():
    """The workspace's photos to label (a Dataset without classes), or None."""
    return workspace.current().unlabelled()


def discard(folder: Path | None) -> None:
    """An upload that was not accepted: its files are not kept."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def local_folders_allowed() -> bool:
    return os.environ.get(LOCAL_FOLDERS_ENV, "").strip() == "1"


def local_limits() -> Limits:
    raw = os.environ.get(LOCAL_IMAGES_ENV, "").strip()
    return Limits.from_env(max_images=int(raw) if raw.isdigit() else DEFAULT_LOCAL_IMAGES)
