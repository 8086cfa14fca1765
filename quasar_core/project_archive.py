"""A project file from outside, checked like any upload before a single file of it is kept.

The zip's own protections (quasar_core.data.zips) come first, from the central directory alone:
the file's size, how many entries it declares, what its members would unpack to, zip bombs,
``..`` or absolute paths, password-protected members and zips inside it. Then each member is
checked for what its place says it is: the workspace's JSON files parse, photos are pictures
within the pixel limit, cached features are feature-cache entries, and a run's files are the
kinds a run folder holds — arrays without pickles, models made only of stock Keras layers (the
check of quasar_core.runs.model_files; such a model is later loaded with Keras' safe_mode). The
two zip-based kinds a run holds (.npz arrays, the .keras model) get the bomb checks inside too.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from pathlib import PurePosixPath

import numpy as np
from PIL import Image

from quasar_core.data.records import MB, Limits
from quasar_core.data.zips import (BOMB_MEMBER_BYTES, BOMB_RATIO, CENTRAL_DIRECTORY_BYTES_PER_ENTRY,
                                   _central_directory_size, _is_unsafe, _member_path)
from quasar_core.errors import QuasarError
from quasar_core.features.cache import MAGIC as FEATURE_MAGIC
from quasar_core.features.cache import SUFFIX as FEATURE_SUFFIX
from quasar_core.runs.folder import FILES
from quasar_core.runs.model_files import check_model_config, read_keras_config
from quasar_core.workspace import KEPT_FILES

FORMAT = "quasar-nexus-project"
VERSION = 1  # raised when a change would mislead an older reader
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 1 * MB
# A run folder's kinds of file; anything else is neither written by a run nor opened from a project.
RUN_FILE_SUFFIXES = (".json", ".npz", ".keras", ".jpg", ".jpeg", ".png", ".h5")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
PHOTO_NAME = re.compile(r"[0-9]{6}(\.[a-z]{3,4})?")
FEATURE_NAME = re.compile(r"([0-9a-f]{2})/\1[0-9a-f]{62}" + re.escape(FEATURE_SUFFIX))


class ProjectRefused(QuasarError):
    """A project file that was not opened; the message names the file, says why and what to do."""


def refuse(name: str, reason: str) -> ProjectRefused:
    return ProjectRefused(f"{name} was not opened: {reason} Nothing in this workspace was changed.")


def check_archive(handle, size: int, name: str, limits: Limits) -> zipfile.ZipFile:
    """The opened zip, once its size, entry count, unpacked size and every member's path are acceptable."""
    if size > limits.max_upload_bytes:
        raise refuse(name, f"it is {size / MB:.1f} MB and the upload limit is {limits.max_upload_bytes / MB:.0f} MB "
                           "(set by QUASAR_MAX_UPLOAD_MB). Raise the limit, or save the project with the photos "
                           "left out.")
    not_a_project = refuse(name, "it is not a zip file, or it is damaged. Open a file made by Save project.")
    directory = _central_directory_size(handle, size)
    if directory is None:
        raise not_a_project
    # Photos, their features (a few per photo) and the runs' files.
    max_entries = 20 * limits.max_images + 20_000
    count, directory_bytes = directory
    if count > max_entries or directory_bytes > max_entries * CENTRAL_DIRECTORY_BYTES_PER_ENTRY:
        raise refuse(name, f"it holds about {max(count, directory_bytes // CENTRAL_DIRECTORY_BYTES_PER_ENTRY)} "
                           f"files, more than the {max_entries} a project of at most {limits.max_images} photos "
                           "holds (set by QUASAR_MAX_IMAGES).")
    handle.seek(0)
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise not_a_project from None
    try:
        _check_members(archive.infolist(), name, limits)
    except ProjectRefused:
        archive.close()
        raise
    return archive


def _check_members(infos: list[zipfile.ZipInfo], name: str, limits: Limits) -> None:
    declared = sum(info.file_size for info in infos)
    if declared > limits.max_extracted_bytes:
        raise refuse(name, f"it would unpack to {declared / MB:.0f} MB and the limit is "
                           f"{limits.max_extracted_bytes / MB:.0f} MB (set by QUASAR_MAX_EXTRACTED_MB). "
                           "Raise the limit, or save the project with the photos left out.")
    for info in infos:
        path = _member_path(info)
        if _is_unsafe(path):
            raise refuse(name, f"it holds {path!r}, a path that points outside the project's folder, which only a "
                               "tampered file does. Open a file made by Save project.")
        if _is_bomb(info):
            raise refuse(name, f"{path!r} unpacks from {info.compress_size / MB:.2f} MB to "
                               f"{info.file_size / MB:.0f} MB, which only a zip bomb does.")
        if info.flag_bits & 0x1:
            raise refuse(name, f"{path!r} is password-protected. Save the project again.")
        if path.lower().endswith(".zip"):
            raise refuse(name, f"it holds another zip ({path!r}); a project never does. Open a file made by Save "
                               "project.")


def _is_bomb(info: zipfile.ZipInfo) -> bool:
    return info.file_size > BOMB_MEMBER_BYTES and info.file_size > BOMB_RATIO * max(info.compress_size, 1)


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> bytes:
    try:
        with archive.open(info) as member:
            # zipfile stops at the declared size and checks the CRC: a lying header cannot grow this read.
            return member.read(info.file_size)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as err:
        raise refuse(name, f"{_member_path(info)!r} is damaged inside it ({err.__class__.__name__}). "
                           "Save the project again.") from None


def read_manifest(archive: zipfile.ZipFile, name: str) -> dict:
    try:
        info = archive.getinfo(MANIFEST)
    except KeyError:
        raise refuse(name, f"it is not a Quasar Nexus project file (it has no {MANIFEST} inside). Open a file made "
                           "by Save project; to use a single model, open it on the Past runs page.") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise refuse(name, f"its {MANIFEST} is implausibly large.")
    return parse_json(read_member(archive, info, name), MANIFEST, name)


def check_manifest(manifest, name: str) -> dict:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise refuse(name, "it is not a Quasar Nexus project file (its manifest names another format). "
                           "Open a file made by Save project.")
    version = manifest.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise refuse(name, "its manifest is damaged (no format version). Save the project again.")
    if version > VERSION:
        raise refuse(name, f"it was saved by a newer Quasar Nexus (project format {version}; this one opens format "
                           f"{VERSION}). Update Quasar Nexus, then open it again.")
    return manifest


def parse_json(content: bytes, member: str, name: str):
    try:
        return json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise refuse(name, f"its {member} is damaged (not readable JSON). Save the project again.") from None


# --- each member, by its place in the project ------------------------------------------------------------
def kind_of(path: str) -> str:
    """"manifest", "workspace", "photo", "feature" or "run"; ProjectRefused-worthy paths give ""."""
    parts = PurePosixPath(path).parts
    if path == MANIFEST:
        return "manifest"
    if len(parts) == 2 and parts[0] == "workspace" and parts[1] in KEPT_FILES:
        return "workspace"
    if len(parts) == 2 and parts[0] == "photos" and PHOTO_NAME.fullmatch(parts[1]):
        return "photo"
    if parts[:1] == ("features",) and FEATURE_NAME.fullmatch("/".join(parts[1:])):
        return "feature"
    if (3 <= len(parts) <= 4 and parts[0] == "runs" and all(SAFE_PART.fullmatch(p) for p in parts[1:])
            and (len(parts) == 3 or parts[2] in (FILES.EXAMPLES, FILES.CHECKPOINT))
            and PurePosixPath(path).suffix.lower() in RUN_FILE_SUFFIXES):
        return "run"
    return ""


def check_content(path: str, content: bytes, name: str, limits: Limits) -> None:
    """Refuse a member whose bytes are not what its place in the project says."""
    kind = kind_of(path)
    suffix = PurePosixPath(path).suffix.lower()
    if kind == "workspace" or suffix == ".json":
        parse_json(content, path, name)
    elif kind == "photo" or suffix in (".jpg", ".jpeg", ".png"):
        check_picture(path, content, name, limits)
    elif kind == "feature":
        if not content.startswith(FEATURE_MAGIC):
            raise refuse(name, f"{path!r} is not a cached feature.")
    elif suffix == ".npz":
        check_inner_zip(path, content, name, limits)
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as arrays:
                for key in arrays.files:
                    arrays[key]  # every array read once: a pickled object raises here, not later
        except Exception:
            raise refuse(name, f"{path!r} is not a plain array file (it may hold Python objects).") from None
    elif suffix == ".keras":
        check_inner_zip(path, content, name, limits)
        where = f"the model {path!r}"
        try:
            check_model_config(read_keras_config(content, name=where), name=where)
        except QuasarError as err:
            raise refuse(name, str(err)) from None
    elif suffix == ".h5":
        if PurePosixPath(path).parts[2:3] != (FILES.CHECKPOINT,) or not content.startswith(HDF5_MAGIC):
            raise refuse(name, f"{path!r} is not a fine-tuning checkpoint.")


def check_picture(path: str, content: bytes, name: str, limits: Limits) -> None:
    """A picture within the pixel limit, read from its header (decoding waits until the photo is used)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit below is ours
            with Image.open(io.BytesIO(content)) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise refuse(name, f"{path!r} has far more pixels than the limit of {limits.max_image_pixels / 1e6:.0f} "
                           "megapixels (set by QUASAR_MAX_IMAGE_PIXELS).") from None
    except Exception:  # Pillow raises many types on what is not a picture
        raise refuse(name, f"{path!r} is not a picture.") from None
    if width * height > limits.max_image_pixels:
        raise refuse(name, f"{path!r} is {width}x{height} pixels, over the limit of "
                           f"{limits.max_image_pixels / 1e6:.0f} megapixels (set by QUASAR_MAX_IMAGE_PIXELS).")


def check_inner_zip(path: str, content: bytes, name: str, limits: Limits) -> None:
    """The zip-based files of a run (arrays, a model) get the same bomb checks inside."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as inner:
            infos = inner.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise refuse(name, f"{path!r} is damaged. Save the project again.") from None
    if sum(info.file_size for info in infos) > limits.max_extracted_bytes or any(_is_bomb(i) for i in infos):
        raise refuse(name, f"{path!r} would unpack to far more than it holds, which only a zip bomb does.")
    if any(_member_path(info).lower().endswith(".zip") or _is_unsafe(_member_path(info)) for info in infos):
        raise refuse(name, f"{path!r} holds another zip or an unsafe path; a run's files never do.")
