"""Where photos come from: a folder of class folders, or uploaded files with their class names.

(Zip archives are in zips.py.) Both make a list of ``Entry``s — name, class, size, how to
read the bytes — and hand it to ``assembly.build_dataset``, which checks every photo.
Loaders given ``limits=None`` use ``Limits.from_env()``, so the QUASAR_* variables that error
messages point to really do change the limits.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable

from quasar_core.data.assembly import (BLANK_CLASS_FOLDER, NOT_IN_A_CLASS_FOLDER, UNLABELLED, Entry, ProgressFn,
                                       build_dataset, build_unlabelled, check_image_count, clean_class_name,
                                       is_ignored)
from quasar_core.data.zips import load_zip
from quasar_core.data.records import Dataset, Limits, PhotoRef, Problem
from quasar_core.errors import DatasetError, ResourceLimitError

ZIP_IN_FOLDER = "a zip inside the folder; unzip it and put its pictures in class folders"
MB = 1024**2


def _file_entry(name: str, label: str, file_path: Path, size: int) -> Entry:
    def read() -> bytes:
        with open(file_path, "rb") as handle:
            return handle.read(size + 1)  # bounded: the file may have grown since stat()

    return Entry(name, label, size, read, lambda data: PhotoRef(path=str(file_path.resolve()), size=len(data)))


def load_folder(path, *, limits: Limits | None = None, on_progress: ProgressFn | None = None,
                source: str | None = None, unlabelled: bool = False) -> Dataset:
    """Load ``path/<class>/<image>`` (images in deeper sub-folders belong to their top class folder).

    `unlabelled`: a folder of photos to label later, in sub-folders or not (assembly.build_unlabelled)."""
    limits = limits if limits is not None else Limits.from_env()
    root = Path(path)
    source = source or str(path)
    if not root.is_dir():
        raise DatasetError(f"The folder {source!r} does not exist. Give the folder that holds one folder per class.")

    problems: list[Problem] = []
    class_folders: dict[str, str] = {}  # label -> folder name as the user sees it
    entries: list[Entry] = []
    visited: set[str] = set()
    # Symlinked class folders are common in prepared datasets; the visited set stops link loops.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real_dir = os.path.realpath(dirpath)
        if real_dir in visited:
            dirnames[:] = []
            continue
        visited.add(real_dir)
        dirnames[:] = sorted(d for d in dirnames if not is_ignored([d]))
        relative_dir = Path(dirpath).relative_to(root).parts
        if len(relative_dir) == 1:
            class_folders.setdefault(clean_class_name(relative_dir[0]), relative_dir[0])
        for filename in sorted(filenames):
            parts = [*relative_dir, filename]
            if is_ignored(parts):
                continue
            name = "/".join(parts)
            file_path = Path(dirpath, filename)
            if len(parts) == 1 and not unlabelled:
                problems.append(Problem(name, NOT_IN_A_CLASS_FOLDER, "skipped"))
                continue
            label = UNLABELLED if unlabelled else clean_class_name(parts[0])
            if not label and not unlabelled:
                problems.append(Problem(name, BLANK_CLASS_FOLDER, "skipped"))
                continue
            if filename.lower().endswith(".zip"):
                problems.append(Problem(name, ZIP_IN_FOLDER, "skipped"))
                continue
            try:
                status = file_path.stat()
            except OSError as err:
                problems.append(Problem(name, f"could not be read ({err.strerror or err}); check the file", "skipped"))
                continue
            if not stat.S_ISREG(status.st_mode):  # a pipe or device would block or never end
                problems.append(Problem(name, "not a regular file; replace it with a picture file", "skipped"))
                continue
            size = status.st_size
            entries.append(_file_entry(name, label, file_path, size))

    check_image_count(len(entries), limits, source)
    if unlabelled:
        return build_unlabelled(source, entries, problems, limits, on_progress=on_progress)
    hint = None
    if len(class_folders) == 1:
        (only,) = class_folders.values()
        hint = f"If {only!r} holds your class folders, choose that folder instead."
    return build_dataset(source, entries, set(class_folders), problems, limits, single_class_hint=hint,
                         on_progress=on_progress)


def load_uploads(
    items: Iterable[tuple[str, bytes, str]], *, limits: Limits | None = None, source: str = "uploads"
) -> Dataset:
    """Load ``(file_name, data, class_name)`` triples, e.g. from a browser upload."""
    limits = limits if limits is not None else Limits.from_env()
    problems: list[Problem] = []
    entries: list[Entry] = []
    total_bytes = 0
    for file_name, data, class_name in items:
        label = clean_class_name(str(class_name))
        if not label:
            raise DatasetError(f"The file {file_name!r} has a blank class name. Give every class a name.")
        file_name = str(file_name).replace("\\", "/")
        total_bytes += len(data)
        if total_bytes > limits.max_upload_bytes:
            raise ResourceLimitError(
                f"The uploads add up to more than {limits.max_upload_bytes / MB:.0f} MB, the upload limit "
                "(set by QUASAR_MAX_UPLOAD_MB). Upload fewer or smaller pictures."
            )
        if is_ignored([p for p in file_name.split("/") if p]):
            continue
        name = f"{label}/{file_name}"
        if file_name.lower().endswith(".zip"):
            problems.append(Problem(name, "a zip file; upload it as a zip of class folders instead", "skipped"))
            continue
        data = bytes(data)
        entries.append(Entry(name, label, len(data), (lambda data=data: data), lambda read: PhotoRef(data=read)))
    check_image_count(len(entries), limits, source)
    return build_dataset(source, entries, set(), problems, limits)


def load_dataset(path, *, limits: Limits | None = None, on_progress: ProgressFn | None = None) -> Dataset:
    """A folder of class folders, or a ``.zip`` of them."""
    location = Path(path)
    if location.is_dir():
        return load_folder(location, limits=limits, on_progress=on_progress)
    if location.is_file() and location.suffix.lower() == ".zip":
        return load_zip(location, limits=limits, on_progress=on_progress)
    if not location.exists():
        raise DatasetError(f"{str(path)!r} does not exist. Give a folder of class folders or a .zip of them.")
    raise DatasetError(
        f"{str(path)!r} is neither a folder nor a .zip file. Give a folder of class folders or a .zip of them."
    )


def load_unlabelled(path, *, limits: Limits | None = None, on_progress: ProgressFn | None = None) -> Dataset:
    """Photos to label later: a folder or a ``.zip`` of photos, with or without sub-folders (label assist)."""
    location = Path(path)
    if location.is_dir():
        return load_folder(location, limits=limits, on_progress=on_progress, unlabelled=True)
    if location.is_file() and location.suffix.lower() == ".zip":
        return load_zip(location, limits=limits, on_progress=on_progress, unlabelled=True)
    if not location.exists():
        raise DatasetError(f"{str(path)!r} does not exist. Give a folder of photos or a .zip of them.")
    raise DatasetError(f"{str(path)!r} is neither a folder nor a .zip file. Give a folder of photos or a .zip of them.")
