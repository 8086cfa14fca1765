"""From a list of files to a checked Dataset: decode each in a stream, drop duplicates, check, warn.

Every photo is read and decoded once here, with a bounded number in flight (two decoding
threads: Pillow and hashlib release the GIL), and only its identity is kept (digest, size,
where it is), so checking 50,000 photos needs the memory of a few. Everything a user must
know — skipped files and why, duplicates, limits, classes too small — is reported here,
before VGG16 starts.
"""

from __future__ import annotations

import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from quasar_core.data.images import decode_image
from quasar_core.data.records import MB, Dataset, DatasetRejected, DataReport, ImageRejected, Limits, PhotoRef, \
    Problem, Sample
from quasar_core.errors import ResourceLimitError

ProgressFn = Callable[[int, int], None]  # (photos checked, photos to check)
IMBALANCE_RATIO = 3.0  # the one imbalance rule (insights.py words it for the Evaluate page)
FEW_IMAGES_PER_CLASS = 20
DECODE_THREADS = 2
IN_FLIGHT = 16  # photos decoded at once: bounds memory whatever the number of photos


IGNORED_FILE_NAMES = frozenset({"thumbs.db", "desktop.ini"})
IGNORED_FOLDER_NAMES = frozenset({"__macosx"})
NOT_IN_A_CLASS_FOLDER = "not inside a class folder; move it into the folder of its class"
BLANK_CLASS_FOLDER = "its class folder name is blank; rename the folder"
# Photos to label later: the label of their samples (no class folder can be blank), and the folder names
# that hold them beside the class folders ("unlabelled/", "to label/"…: compared lower-case, _ and - as spaces).
UNLABELLED = ""
UNLABELLED_FOLDER_NAMES = frozenset({"unlabelled", "unlabeled", "not labelled", "not labeled", "to label",
                                     "unsorted"})


def is_unlabelled_folder(name: str) -> bool:
    return " ".join(clean_class_name(name).lower().replace("_", " ").replace("-", " ").split()) in \
        UNLABELLED_FOLDER_NAMES


def clean_class_name(raw: str) -> str:
    # macOS writes names decomposed (NFD); "Café" typed on Windows is composed (NFC).
    return unicodedata.normalize("NFC", raw).strip()


def is_ignored(parts: list[str]) -> bool:
    if any(part.startswith(".") or part.lower() in IGNORED_FOLDER_NAMES for part in parts):
        return True
    return bool(parts) and parts[-1].lower() in IGNORED_FILE_NAMES


class UnreadableFile(Exception):
    """A file's bytes could not be had; the message is the Problem reason."""


@dataclass
class Entry:
    """A file to check: its name as the user knows it, its class, and how to get its bytes (now and later)."""

    name: str
    label: str
    size: int
    read: Callable[[], bytes]
    ref: Callable[[bytes], PhotoRef]  # where to find it again, given the bytes just read


def check_image_count(count: int, limits: Limits, source: str) -> None:
    if count > limits.max_images:
        raise ResourceLimitError(
            f"{source} has {count} files in its class folders; the limit is {limits.max_images} images "
            "(set by QUASAR_MAX_IMAGES, or --max-images on the command line). Use fewer images per class, "
            "or raise the limit."
        )


def file_too_large_reason(size: int, limits: Limits) -> str:
    return (
        f"file too large ({size / MB:.1f} MB; files over {limits.max_upload_bytes / MB:.0f} MB are not read, "
        "set by QUASAR_MAX_UPLOAD_MB); shrink it or remove it"
    )


def _check_one(entry: Entry, limits: Limits) -> Sample | Problem:
    if entry.size > limits.max_upload_bytes:
        return Problem(entry.name, file_too_large_reason(entry.size, limits), "skipped")
    try:
        data = entry.read()
    except UnreadableFile as err:
        return Problem(entry.name, str(err), "skipped")
    except OSError as err:
        return Problem(entry.name, f"could not be read ({err.strerror or err}); check the file's permissions",
                       "skipped")
    if len(data) > limits.max_upload_bytes:
        return Problem(entry.name, file_too_large_reason(len(data), limits), "skipped")
    try:
        decoded = decode_image(data, entry.name, limits=limits)
    except ImageRejected as rejected:
        return Problem(entry.name, rejected.reason, "skipped")
    return Sample(entry.name, entry.label, decoded.original_size, decoded.digest, entry.ref(data))


def build_dataset(source: str, entries: list[Entry], class_folders: set[str], problems: list[Problem],
                  limits: Limits, *, single_class_hint: str | None = None,
                  on_progress: ProgressFn | None = None) -> Dataset:
    # A folder named like "unlabelled/" holds photos to label later: checked alike, kept apart from the classes.
    later = sorted((e for e in entries if is_unlabelled_folder(e.label)), key=lambda e: e.name)
    ordered = sorted((e for e in entries if not is_unlabelled_folder(e.label)), key=lambda e: e.name)
    class_folders = {name for name in class_folders if not is_unlabelled_folder(name)}
    labels_with_files = {entry.label for entry in ordered}
    decoded = _decode(ordered + later, limits, problems, on_progress)
    unlabelled = [Sample(s.name, UNLABELLED, s.original_size, s.digest, s.source) for s in decoded
                  if is_unlabelled_folder(s.label)]
    decoded = [s for s in decoded if not is_unlabelled_folder(s.label)]

    samples = _drop_duplicates(decoded, problems)
    for label in sorted(class_folders - labels_with_files):
        problems.append(Problem(f"{label}/", "an empty class folder, so it was ignored. Put pictures in it or "
                                "remove it.", "warning"))
    counts = {label: 0 for label in sorted(labels_with_files)}
    for sample in samples:
        counts[sample.label] += 1
    report = DataReport(source=source, counts=counts, problems=problems)
    _check_dataset(report, limits, single_class_hint)
    _add_dataset_warnings(report)
    labels = sorted(counts)
    ordered_samples = sorted(samples, key=lambda s: (labels.index(s.label), s.name))
    dataset = Dataset(samples=ordered_samples, labels=labels, report=report)
    dataset.unlabelled = _drop_duplicates(unlabelled, problems, known={s.digest: s for s in samples})
    return dataset


def _decode(entries: list[Entry], limits: Limits, problems: list[Problem], on_progress) -> list[Sample]:
    decoded: list[Sample] = []
    with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="quasar-decode") as pool:
        for start in range(0, len(entries), IN_FLIGHT):
            for result in pool.map(lambda e: _check_one(e, limits), entries[start : start + IN_FLIGHT]):
                (decoded if isinstance(result, Sample) else problems).append(result)
            if on_progress is not None:
                on_progress(min(start + IN_FLIGHT, len(entries)), len(entries))
    return decoded


def build_unlabelled(source: str, entries: list[Entry], problems: list[Problem], limits: Limits, *,
                     on_progress: ProgressFn | None = None) -> Dataset:
    """Photos to label later (no classes): each checked like any upload, copies used once. A Dataset without
    labels whose samples' label is UNLABELLED; refused (DatasetRejected) when none is usable."""
    ordered = sorted(entries, key=lambda e: e.name)
    decoded = [Sample(s.name, UNLABELLED, s.original_size, s.digest, s.source)
               for s in _decode(ordered, limits, problems, on_progress)]
    samples = sorted(_drop_duplicates(decoded, problems), key=lambda s: s.name)
    report = DataReport(source=source, counts={}, problems=problems)
    if not samples:
        skipped = f" {len(report.skipped())} files were skipped; the report says why." if report.skipped() else ""
        raise DatasetRejected(f"No usable photos were found in {source}. Give JPEG or PNG photos.{skipped}", report)
    return Dataset(samples=samples, labels=[], report=report)


def _drop_duplicates(decoded: list[Sample], problems: list[Problem], *,
                     known: dict[str, Sample] | None = None) -> list[Sample]:
    """One sample per picture; with `known` (digest -> a labelled photo), photos to label that are already
    labelled are left out too."""
    by_digest: dict[str, list[Sample]] = {}
    for sample in decoded:
        by_digest.setdefault(sample.digest, []).append(sample)
    kept: list[Sample] = []
    for digest, copies in by_digest.items():
        if known is not None and digest in known:
            problems.extend(Problem(s.name, f"same picture as {known[digest].name}, which is labelled; used once",
                                    "duplicate") for s in copies)
            continue
        classes = sorted({s.label for s in copies})
        if len(classes) > 1:
            quoted = _join_words([repr(c) for c in classes])
            for sample in copies:
                problems.append(Problem(
                    sample.name,
                    f"the same picture is in classes {quoted}; it was left out because its label is ambiguous "
                    "— keep it in one class",
                    "skipped",
                ))
            continue
        first, *others = copies
        kept.append(first)
        problems.extend(Problem(s.name, f"same picture as {first.name}; used once", "duplicate") for s in others)
    return kept


def _join_words(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _check_dataset(report: DataReport, limits: Limits, single_class_hint: str | None) -> None:
    counts, source = report.counts, report.source
    skipped_note = ""
    if report.skipped():
        skipped_note = f" {len(report.skipped())} files were skipped; the report says why."
    if sum(counts.values()) == 0:
        raise DatasetRejected(
            f"No usable images were found in {source}. Put the pictures in one folder per class "
            f"(for example cat/ and dog/), as JPEG or PNG files.{skipped_note}",
            report,
        )
    if len(counts) < 2:
        (only,) = counts
        hint = f" {single_class_hint}" if single_class_hint else ""
        raise DatasetRejected(
            f"Only one class ({only!r}) was found in {source}; at least 2 are needed to learn to tell classes apart. "
            f"Add a folder of pictures for each other class.{hint}",
            report,
        )
    needed = limits.min_images_per_class
    too_small = [label for label, count in counts.items() if count < needed]
    if too_small:
        sentences = []
        for label in too_small:
            has = f"has only {counts[label]} usable images" if counts[label] else "has no usable images"
            sentences.append(
                f"Class {label!r} {has} ({needed} needed). Add more pictures of {label} or remove the folder."
            )
        raise DatasetRejected(" ".join(sentences) + skipped_note, report)


def imbalance_warning(counts: dict[str, int]) -> str | None:
    """The one imbalance rule, in words (the Upload page and the Evaluate page's hints both show it)."""
    if len(counts) < 2:
        return None
    largest = max(counts, key=counts.get)
    smallest = min(counts, key=counts.get)
    if counts[largest] < IMBALANCE_RATIO * max(counts[smallest], 1):
        return None
    return (f"the classes are unbalanced: {largest!r} has {counts[largest]} images but {smallest!r} only "
            f"{counts[smallest]}, so the model may favour {largest!r}. Add pictures of {smallest!r} if you can.")


def _add_dataset_warnings(report: DataReport) -> None:
    """Warnings about the data as a whole, each a full sentence that says what to do.

    A warning about one class is filed under its folder ("Bag/") and does not name the class
    again; one that several classes share is said once, filed under the source.
    """
    counts = report.counts
    unbalanced = imbalance_warning(counts)
    if unbalanced:
        report.problems.append(Problem(report.source, unbalanced, "warning"))
    few = {label: count for label, count in counts.items() if count < FEW_IMAGES_PER_CLASS}
    unreliable = f"results are unreliable with fewer than {FEW_IMAGES_PER_CLASS} per class"
    if len(few) == 1:
        ((label, count),) = few.items()
        report.problems.append(Problem(
            f"{label}/",
            f"only {count} usable {_images(count)}; {unreliable}. Add more pictures of this class if you can.",
            "warning",
        ))
    elif few:
        if len(set(few.values())) == 1:
            count = next(iter(few.values()))
            have = f"{_join_words([repr(label) for label in few])} have only {count} usable {_images(count)} each"
        else:
            have = "few usable images in " + _join_words([f"{label!r} ({count})" for label, count in few.items()])
        report.problems.append(Problem(
            report.source, f"{have}; {unreliable}. Add more pictures of these classes if you can.", "warning"
        ))


def _images(count: int) -> str:
    return "image" if count == 1 else "images"
