"""What a loaded dataset is: its photos (by reference, not pixels), the report, the limits.

A ``Dataset`` holds no pixels. Each ``Sample`` says where its photo is (``PhotoRef``: a file,
a zip member or, for API uploads, its bytes) and what was learned when it was checked
(digest, original size), so memory grows with the number of photos by a few hundred bytes
each, and a photo is decoded again only when it is needed (the feature pass, a gallery).
"""

from __future__ import annotations

import os
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quasar_core.data.images import decode_image, resize_square
from quasar_core.data.limits import MB, ImageRejected, Limits  # noqa: F401 (re-exported: the records' vocabulary)
from quasar_core.errors import DatasetError

PROBLEM_KINDS = ("skipped", "duplicate", "warning")


class DatasetRejected(DatasetError):
    """A ``DatasetError`` that also carries the report, so the caller can list what was skipped."""

    def __init__(self, message: str, report: "DataReport"):
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------- where photos are


class _ZipHandles:
    """Open zip archives shared by all the photos inside them (the central directory is read once).

    A zip deleted or replaced since it was opened is not read from the stale handle: deleted, its
    photos can no longer be read (FileNotFoundError); replaced, the new file is opened.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._open: dict[str, tuple[tuple, zipfile.ZipFile]] = {}

    def get(self, path: str) -> zipfile.ZipFile:
        status = os.stat(path)
        identity = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
        with self._lock:
            opened = self._open.get(path)
            if opened is not None and opened[0] != identity:
                self._open.pop(path)[1].close()  # members being read keep the old file open until they finish
                opened = None
            if opened is None:
                if len(self._open) > 16:  # a long-lived server: do not keep every zip ever read open
                    self._open.pop(next(iter(self._open)))[1].close()
                opened = self._open[path] = (identity, zipfile.ZipFile(path))
            return opened[1]


_ZIPS = _ZipHandles()


@dataclass(frozen=True, eq=False)
class PhotoRef:
    """Where a photo's bytes are: a file, a member of a zip file, or (API uploads) the bytes themselves."""

    path: str | None = None
    member: str | None = None
    size: int = 0
    data: bytes | None = field(default=None, repr=False)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        if self.member is None:
            with open(self.path, "rb") as handle:
                return handle.read(self.size + 1)  # bounded: the file may have grown since it was checked
        archive = _ZIPS.get(self.path)
        with archive.open(self.member) as member:
            return member.read(self.size)

    def to_dict(self) -> dict:
        if self.data is not None:
            raise ValueError("A photo held in memory cannot be saved by reference; save the uploads to a folder.")
        return {"path": self.path, "member": self.member, "size": self.size}

    @classmethod
    def from_dict(cls, d: dict) -> "PhotoRef":
        return cls(path=str(d["path"]), member=d.get("member"), size=int(d.get("size", 0)))


@dataclass(frozen=True)
class Sample:
    name: str  # as the user knows it: "cat/IMG_1.jpg"
    label: str
    original_size: tuple[int, int]  # (width, height) after EXIF orientation
    digest: str  # sha256 of the decoded RGB pixels: the photo's identity in the feature cache
    source: PhotoRef | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "label": self.label, "original_size": list(self.original_size),
                "digest": self.digest, "source": self.source.to_dict() if self.source else None}

    @classmethod
    def from_dict(cls, d: dict) -> "Sample":
        source = PhotoRef.from_dict(d["source"]) if d.get("source") else None
        return cls(str(d["name"]), str(d["label"]), tuple(int(v) for v in d["original_size"]), str(d["digest"]),
                   source)


@dataclass
class Problem:
    file: str
    reason: str
    kind: str  # "skipped" | "duplicate" | "warning"

    def __post_init__(self):
        if self.kind not in PROBLEM_KINDS:
            raise ValueError(f"Problem.kind must be one of {PROBLEM_KINDS}. Received: kind={self.kind!r}")


@dataclass
class DataReport:
    source: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def skipped(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "skipped"]

    def duplicates(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "duplicate"]

    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "warning"]

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "counts": dict(self.counts),
            "problems": [{"file": p.file, "reason": p.reason, "kind": p.kind} for p in self.problems],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DataReport":
        return cls(
            source=str(d["source"]),
            counts={str(k): int(v) for k, v in d.get("counts", {}).items()},
            problems=[Problem(str(p["file"]), str(p["reason"]), str(p["kind"])) for p in d.get("problems", [])],
        )

    def summary_lines(self) -> list[str]:
        per_class = ", ".join(f"{label} {count}" for label, count in self.counts.items())
        lines = [f"{self.source}: {self.total} usable images in {len(self.counts)} classes ({per_class})."]
        sections = (
            (self.skipped(), "file was skipped", "files were skipped"),
            (self.duplicates(), "duplicate was used once", "duplicates were used once"),
        )
        for problems, one, many in sections:
            if problems:
                lines.append(f"{len(problems)} {one if len(problems) == 1 else many}:")
                lines.extend(f"  {p.file}: {p.reason}" for p in problems)
        for p in self.warnings():
            about = "" if p.file == self.source else f"{p.file}: "  # a warning about the data as a whole
            lines.append(f"Warning: {about}{p.reason}")
        return lines


@dataclass
class Dataset:
    """Checked photos in class order: references and identities, no pixels (see the module docstring)."""

    samples: list[Sample]
    labels: list[str]
    report: DataReport
    # Photos found beside the classes in a folder named like "unlabelled/" (label assist): checked like the
    # others, not part of the classes, not saved with them (the workspace keeps them apart).
    unlabelled: list[Sample] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.samples)

    def _indices(self, indices) -> np.ndarray:
        if indices is None:
            return np.arange(len(self.samples), dtype=np.int64)
        return np.asarray(indices, dtype=np.int64).reshape(-1)

    def targets(self, indices=None) -> np.ndarray:
        index_of = {label: i for i, label in enumerate(self.labels)}
        return np.array([index_of[self.samples[i].label] for i in self._indices(indices)], dtype=np.int64)

    def pixels(self, index: int) -> np.ndarray:
        """The photo decoded again from its source, full size, uint8 RGB."""
        sample = self.samples[int(index)]
        if sample.source is None:
            raise DatasetError(f"{sample.name} was not kept with the dataset, so it cannot be read again.")
        try:
            data = sample.source.read()
        except (OSError, KeyError, zipfile.BadZipFile) as err:
            raise DatasetError(f"{sample.name} can no longer be read ({err}); load the photos again.") from None
        return decode_image(data, sample.name, limits=Limits(max_image_pixels=10**12)).pixels

    def images(self, indices=None, *, size: int) -> np.ndarray:
        """Photos resized to ``size`` x ``size`` float32 RGB (aspect not kept, like Keras), by THE resize."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"`size` must be a whole number of at least 1. Received: size={size!r}")
        chosen = self._indices(indices)
        out = np.empty((len(chosen), size, size, 3), dtype=np.float32)
        for row, i in enumerate(chosen):
            out[row] = resize_square(self.pixels(i), size)
        return out

    def median_source_side(self) -> float:
        if not self.samples:
            raise ValueError("The dataset has no samples, so it has no median image side.")
        return float(np.median([min(s.original_size) for s in self.samples]))

    def subset(self, indices, *, labels: dict[int, str] | None = None) -> "Dataset":
        """The chosen samples (optionally relabelled: index -> new label), with counts recomputed."""
        chosen = [self.samples[int(i)] for i in indices]
        if labels:
            chosen = [Sample(s.name, labels.get(int(i), s.label), s.original_size, s.digest, s.source)
                      for s, i in zip(chosen, indices)]
        names = sorted({s.label for s in chosen})
        counts = {label: sum(1 for s in chosen if s.label == label) for label in names}
        report = DataReport(self.report.source, counts, list(self.report.problems))
        ordered = sorted(chosen, key=lambda s: (names.index(s.label), s.name))
        return Dataset(ordered, names, report)

    def to_dict(self) -> dict:
        return {"labels": list(self.labels), "report": self.report.to_dict(),
                "samples": [s.to_dict() for s in self.samples]}

    @classmethod
    def from_dict(cls, d: dict) -> "Dataset":
        return cls([Sample.from_dict(s) for s in d["samples"]], [str(x) for x in d["labels"]],
                   DataReport.from_dict(d["report"]))


def source_exists(dataset: Dataset) -> bool:
    """Whether the photos can still be read (their folder or zip is still there)."""
    paths = {s.source.path for s in dataset.samples if s.source is not None and s.source.data is None}
    return all(Path(p).exists() for p in paths)
