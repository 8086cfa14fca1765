"""Zip archives of class folders, read in place and never extracted: safe against hostile zips.

Refused before a single member is decompressed: archives over the upload limit, central
directories with implausibly many entries, members whose declared sizes add up past the
extraction limit, and zip bombs (a large member that shrank hundreds of times). Members with
``..`` or absolute paths, nested zips and password-protected members are skipped by name.
"""

from __future__ import annotations

import io
import os
import re
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable

from quasar_core.data.assembly import (BLANK_CLASS_FOLDER, NOT_IN_A_CLASS_FOLDER, UNLABELLED, Entry, ProgressFn,
                                       UnreadableFile, build_dataset, build_unlabelled, check_image_count,
                                       clean_class_name, is_ignored)
from quasar_core.data.records import MB, Dataset, Limits, PhotoRef, Problem
from quasar_core.errors import DatasetError, ResourceLimitError

ZIP_IN_ZIP = "a zip inside the zip; unzip it and upload its folders"
UNSAFE_ZIP_PATH = "unsafe path in the zip (it points outside the zip's folder); remove it"
# A member this big that shrank more than this is a zip bomb, not a photo.
BOMB_MEMBER_BYTES = 10 * MB
BOMB_RATIO = 200
# Average size allowed per central-directory record: real ones are ~100 bytes.
CENTRAL_DIRECTORY_BYTES_PER_ENTRY = 256


def load_zip(source, *, limits: Limits | None = None, name: str | None = None,
             on_progress: ProgressFn | None = None, unlabelled: bool = False) -> Dataset:
    """Load a zip of class folders (optionally all under one top folder), reading members in memory.

    `unlabelled`: a zip of photos to label later, in folders or not (assembly.build_unlabelled)."""
    limits = limits if limits is not None else Limits.from_env()
    if isinstance(source, (str, os.PathLike)):
        zip_path = Path(source)
        name = name or zip_path.name
        if not zip_path.is_file():
            raise DatasetError(f"The zip {name!r} does not exist. Check the file name.")
        size = zip_path.stat().st_size
        _check_archive_size(size, name, limits)
        with open(zip_path, "rb") as handle:
            return _load_zip_file(handle, size, name, limits, on_progress, zip_path=str(zip_path.resolve()),
                                  unlabelled=unlabelled)
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = name or "upload.zip"
        _check_archive_size(len(source), name, limits)
        return _load_zip_file(io.BytesIO(bytes(source)), len(source), name, limits, on_progress,
                              unlabelled=unlabelled)
    if hasattr(source, "read"):
        name = name or Path(str(getattr(source, "name", "") or "upload.zip")).name
        handle, size = _seekable_copy(source, name, limits)
        return _load_zip_file(handle, size, name, limits, on_progress, unlabelled=unlabelled)
    raise ValueError(f"`source` must be a path, bytes or a binary file object. Received: source={source!r}")


def _seekable_copy(source: BinaryIO, name: str, limits: Limits) -> tuple[BinaryIO, int]:
    try:
        start = source.tell()
        source.seek(0, io.SEEK_END)
        size = source.tell() - start
        source.seek(start)
    except (AttributeError, OSError, ValueError):
        # Not seekable: read at most one byte over the limit to know it is too big.
        data = source.read(limits.max_upload_bytes + 1)
        _check_archive_size(len(data), name, limits)
        return io.BytesIO(data), len(data)
    _check_archive_size(size, name, limits)
    if start:
        return io.BytesIO(source.read()), size
    return source, size


def _check_archive_size(size: int, name: str, limits: Limits) -> None:
    if size > limits.max_upload_bytes:
        raise ResourceLimitError(
            f"{name} is {size / MB:.1f} MB; the upload limit is {limits.max_upload_bytes / MB:.0f} MB "
            "(set by QUASAR_MAX_UPLOAD_MB). Upload a smaller zip, or raise the limit."
        )


def _max_zip_entries(limits: Limits) -> int:
    # Room for folder entries and macOS "._" companions next to every image.
    return 10 * limits.max_images + 1000


# Average size allowed per central-directory record: real ones are ~100 bytes.
CENTRAL_DIRECTORY_BYTES_PER_ENTRY = 256


def _central_directory_size(handle: BinaryIO, size: int) -> tuple[int, int] | None:
    """(entry count, directory bytes) from the end-of-central-directory record, read before
    zipfile parses the directory: millions of tiny entries would otherwise fill memory."""
    tail_length = min(size, 22 + 65535)
    handle.seek(size - tail_length)
    tail = handle.read(tail_length)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    count, directory_bytes = struct.unpack("<HI", tail[at + 10 : at + 16])
    if count != 0xFFFF and directory_bytes != 0xFFFFFFFF:
        return count, directory_bytes
    locator = tail[at - 20 : at] if at >= 20 else b""
    if not locator.startswith(b"PK\x06\x07"):
        return None
    (record_offset,) = struct.unpack("<Q", locator[8:16])
    if record_offset + 56 > size:
        return None
    handle.seek(record_offset)
    record = handle.read(56)
    if not record.startswith(b"PK\x06\x06"):
        return None
    count, directory_bytes = struct.unpack("<QQ", record[32:48])
    return count, directory_bytes


def _member_path(info: zipfile.ZipInfo) -> str:
    name = info.filename
    if not info.flag_bits & 0x800:
        # No UTF-8 flag: zipfile decoded as cp437, but macOS and Linux zippers write UTF-8 anyway.
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return name.replace("\\", "/")


_DRIVE = re.compile(r"^[A-Za-z]:")


def _is_unsafe(path: str) -> bool:
    return path.startswith("/") or bool(_DRIVE.match(path)) or ".." in path.split("/")


def _load_zip_file(handle: BinaryIO, size: int, name: str, limits: Limits, on_progress: ProgressFn | None,
                   *, zip_path: str | None = None, unlabelled: bool = False) -> Dataset:
    """Photos of a zip on disk are found again by (zip, member); those of a zip in memory keep their bytes."""
    not_a_zip = DatasetError(f"{name} is not a zip file, or it is damaged. Zip the class folders again and retry.")
    directory = _central_directory_size(handle, size)
    if directory is None:
        raise not_a_zip
    entry_count, directory_bytes = directory
    max_entries = _max_zip_entries(limits)
    # The count can lie, so the directory's byte size is bounded too.
    if entry_count > max_entries or directory_bytes > max_entries * CENTRAL_DIRECTORY_BYTES_PER_ENTRY:
        shown = max(entry_count, directory_bytes // CENTRAL_DIRECTORY_BYTES_PER_ENTRY)
        raise ResourceLimitError(
            f"{name} holds about {shown} entries; at most {max_entries} are read for a limit of "
            f"{limits.max_images} images (set by QUASAR_MAX_IMAGES). Use fewer images, or raise the limit."
        )
    handle.seek(0)
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise not_a_zip from None

    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        _refuse_zip_bomb(members, name, limits)

        problems: list[Problem] = []
        folders: list[list[str]] = []
        files: list[tuple[list[str], zipfile.ZipInfo, str]] = []
        for info in archive.infolist():
            path = _member_path(info)
            if _is_unsafe(path):
                problems.append(Problem(path, UNSAFE_ZIP_PATH, "skipped"))
                continue
            parts = [p for p in path.split("/") if p not in ("", ".")]
            if not parts or is_ignored(parts):
                continue
            if info.is_dir():
                folders.append(parts)
            else:
                files.append((parts, info, path))

        # Zipping a folder puts everything under one top folder: look inside it for the classes
        # (files lying directly in that top folder are then outside any class folder).
        tops = {parts[0] for parts, _, _ in files}
        if len(tops) == 1 and any(len(parts) >= 3 for parts, _, _ in files):
            (top,) = tops
            files = [(parts[1:], info, path) for parts, info, path in files]
            folders = [parts[1:] for parts in folders if parts[0] == top and len(parts) > 1]

        class_folders = {clean_class_name(parts[0]) for parts in folders}
        entries: list[Entry] = []
        for parts, info, path in files:
            if path.lower().endswith(".zip"):
                problems.append(Problem(path, ZIP_IN_ZIP, "skipped"))
                continue
            if info.flag_bits & 0x1 and unlabelled:
                problems.append(Problem(path, "password-protected; zip it again without a password", "skipped"))
                continue
            if unlabelled:  # photos to label later: wherever they are in the zip
                entries.append(Entry(path, UNLABELLED, info.file_size, _member_reader(archive, info),
                                     _reference(zip_path, info)))
                continue
            if len(parts) == 1:
                problems.append(Problem(path, NOT_IN_A_CLASS_FOLDER, "skipped"))
                continue
            label = clean_class_name(parts[0])
            class_folders.add(label)
            if not label:
                problems.append(Problem(path, BLANK_CLASS_FOLDER, "skipped"))
                continue
            if info.flag_bits & 0x1:
                problems.append(Problem(path, "password-protected; zip it again without a password", "skipped"))
                continue
            entries.append(Entry(path, label, info.file_size, _member_reader(archive, info), _reference(zip_path, info)))
        class_folders.discard("")

        check_image_count(len(entries), limits, name)
        if unlabelled:
            return build_unlabelled(name, entries, problems, limits, on_progress=on_progress)
        return build_dataset(name, entries, class_folders, problems, limits, on_progress=on_progress)


def _refuse_zip_bomb(members: list[zipfile.ZipInfo], name: str, limits: Limits) -> None:
    """Refuse from the central directory alone, before a single member is decompressed."""
    declared = sum(info.file_size for info in members)
    if declared > limits.max_extracted_bytes:
        raise ResourceLimitError(
            f"{name} would unpack to {declared / MB:.0f} MB; the limit is {limits.max_extracted_bytes / MB:.0f} MB "
            "(set by QUASAR_MAX_EXTRACTED_MB). Upload fewer images, or raise the limit."
        )
    for info in members:
        if info.file_size > BOMB_MEMBER_BYTES and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
            raise ResourceLimitError(
                f"{name} was refused: {info.filename!r} unpacks from {info.compress_size / MB:.2f} MB to "
                f"{info.file_size / MB:.0f} MB, which only a zip bomb does. Zip the images again from their folders."
            )


def _member_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with archive.open(info) as member:
                # zipfile stops at the declared size and checks the CRC, so a lying header
                # cannot make this read grow past what the bomb check already allowed.
                return member.read(info.file_size)
        except NotImplementedError as err:
            raise UnreadableFile(
                f"uses a compression method that cannot be read ({err}); zip it again with standard settings"
            ) from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as err:
            raise UnreadableFile(f"damaged inside the zip ({err}); zip the folder again") from None

    return read


def _reference(zip_path: str | None, info: zipfile.ZipInfo):
    if zip_path is None:
        return lambda data: PhotoRef(data=data)
    return lambda data: PhotoRef(path=zip_path, member=info.filename, size=info.file_size)


