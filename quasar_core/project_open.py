"""Open project: a project file (quasar_core.project) restored into a workspace, or refused with nothing changed.

The file is checked like any upload (quasar_core.project_archive) while it is written into a
staging folder beside the workspace; the workspace's files, the photos' list and the runs must
then read back. Only then is anything renamed into place: a refused file changes nothing.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from quasar_core.config import TrainConfig
from quasar_core.data.records import Dataset, Limits
from quasar_core.data.zips import _member_path
from quasar_core.errors import QuasarError
from quasar_core.project_archive import (check_archive, check_content, check_manifest, kind_of, read_manifest,
                                         read_member, refuse)
from quasar_core.runs.folder import FILES, Run, disk_error, read_json, write_json
from quasar_core.wording import join_words, plural
from quasar_core.workspace import DECISION_ACTIONS, FOLDER, Decision, Workspace


@dataclass(frozen=True)
class ProjectOpened:
    name: str
    saved: str  # when the project was saved (ISO date)
    photos: int
    features: int
    runs: list[str]
    decisions: int
    settings: bool
    current_run: Path | None
    photos_left_out: bool

    def words(self) -> str:
        parts = [plural(self.photos, "photo")]
        if self.decisions:
            parts.append(f"{plural(self.decisions, 'decision')} about photos")
        if self.settings:
            parts.append("the settings")
        parts.append(plural(len(self.runs), "run"))
        try:
            saved = f" (saved {datetime.fromisoformat(self.saved).strftime('%-d %B %Y')})"
        except ValueError:
            saved = ""
        text = f"Opened {self.name}{saved}: {join_words(parts)}."
        if self.photos_left_out:
            text += (" The photos themselves were left out of it: training again works from their saved features, "
                     "but they cannot be shown.")
        return text



def open_project(source, into, *, cache_root=None, name: str | None = None,
                 limits: Limits | None = None) -> ProjectOpened:
    """Restore a project file (a path, or its bytes) into the workspace folder `into`.

    The workspace's photos, settings, decisions and photo check are replaced by the project's; its
    runs are added (a run of the same name is replaced). `cache_root` is the feature cache to fill
    (default: the workspace's own, as the dashboard keeps it). Raises ProjectRefused, naming the file
    and what to do, with nothing changed.
    """
    limits = limits if limits is not None else Limits.from_env()
    into = Path(into).resolve()
    if isinstance(source, (bytes, bytearray, memoryview)):
        handle, size, name = io.BytesIO(bytes(source)), len(source), repr(name or "The project file")
    else:
        path = Path(source)
        name = repr(name or path.name)
        if not path.is_file():
            raise QuasarError(f"{name} does not exist. Check the file name.")
        handle, size = open(path, "rb"), path.stat().st_size
    with handle, check_archive(handle, size, name, limits) as archive:
        manifest = check_manifest(read_manifest(archive, name), name)
        members = _members(archive, name, limits)
        runs = sorted({path.split("/")[1] for path, kind, _ in members if kind == "run"})
        for run_name in runs:
            if (into / run_name).is_dir() and _is_training(into / run_name):
                raise refuse(name, f"its run {run_name} is training in this workspace now. Wait until it ends.")
        into.parent.mkdir(parents=True, exist_ok=True)
        staging = into.parent / f".{into.name}.opening-{secrets.token_hex(4)}"
        try:
            for path, kind, info in members:
                content = read_member(archive, info, name)
                check_content(path, content, name, limits)
                target = staging.joinpath(*path.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            opened = _settle(staging, into, manifest, runs, name)
        except BaseException as err:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(err, OSError):
                raise disk_error(err, into) from None
            raise
    _move_into_place(staging, into, Path(cache_root) if cache_root else Workspace(into, workspace_id=into.name)
                     .cache().root, runs)
    return opened


def _members(archive: zipfile.ZipFile, name: str, limits: Limits) -> list[tuple[str, str, zipfile.ZipInfo]]:
    members = []
    for info in archive.infolist():
        path = _member_path(info)
        kind = "" if info.is_dir() else kind_of(path)
        if kind == "manifest" or info.is_dir():
            continue
        if not kind:
            raise refuse(name, f"it holds {path!r}, which a project file never holds. Open a file made by Save "
                               "project.")
        members.append((path, kind, info))
    photos = sum(1 for _, kind, _ in members if kind == "photo")
    if photos > limits.max_images:
        raise refuse(name, f"it holds {photos} photos and the limit is {limits.max_images} (set by QUASAR_MAX_IMAGES).")
    return members


def _is_training(run_dir: Path) -> bool:
    try:
        return Run.open(run_dir).state == "running"
    except (QuasarError, ValueError, TypeError, KeyError):
        return False


def _settle(staging: Path, into: Path, manifest: dict, runs: list[str], name: str) -> ProjectOpened:
    """Check what the workspace files say and point the photos at where they will be; the runs must open."""
    kept = staging / "workspace"
    kept.mkdir(parents=True, exist_ok=True)
    photos_folder = f"opened-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    photos = _settle_dataset(staging, kept, into / FOLDER / "photos" / photos_folder, name)
    decisions = read_json(kept / "decisions.json", [])
    settings = read_json(kept / "settings.json")
    try:
        if not isinstance(decisions, list) or any(Decision(**d).action not in DECISION_ACTIONS for d in decisions):
            raise ValueError("decisions")
        if settings is not None:
            TrainConfig.from_dict(settings["config"])  # raises on a setting out of its range
        if not isinstance(read_json(kept / "pinned.json", []), list):
            raise ValueError("pinned")
    except (TypeError, KeyError, ValueError):
        raise refuse(name, "its workspace files (settings, decisions) are damaged. Save the project again.") from None
    for run_name in runs:
        folder = staging / "runs" / run_name
        try:
            Run.open(folder)
        except (QuasarError, ValueError, TypeError, KeyError):
            raise refuse(name, f"its run {run_name} is damaged (its settings cannot be read). Save the project "
                               "again.") from None
        status = read_json(folder / FILES.STATUS, {})
        if isinstance(status, dict) and status.get("state") == "running":  # no process here writes it
            write_json(folder / FILES.STATUS, {**status, "state": "interrupted", "phase": "",
                                               "message": "The training was still running when the project was "
                                                          "saved; it did not finish."})
    current = manifest.get("current_run")
    return ProjectOpened(name=name, saved=str(manifest.get("saved") or ""), photos=photos,
                         features=sum(1 for _ in (staging / "features").rglob("*.qnf")), runs=runs,
                         decisions=len(decisions), settings=settings is not None,
                         current_run=into / current if current in runs else None,
                         photos_left_out=bool(manifest.get("photos_left_out")))


def _settle_dataset(staging: Path, kept: Path, photos_target: Path, name: str) -> int:
    """The dataset's sources rewritten from photos/NNNNNN.jpg to where the photos will be; returns their number."""
    data = read_json(kept / "dataset.json")
    if data is None:
        return 0
    try:
        dataset = Dataset.from_dict(data)
    except (KeyError, TypeError, ValueError):
        raise refuse(name, "its list of photos (workspace/dataset.json) is damaged. Save the project again.") from None
    samples = []
    for sample in dataset.samples:
        entry = {**sample.to_dict(), "source": None}
        if sample.source is not None:
            file = staging / "photos" / Path(sample.source.path).name
            if sample.source.path != f"photos/{file.name}" or sample.source.member or not file.is_file():
                raise refuse(name, f"its list of photos names {sample.name}, which it does not hold. Save the project "
                                   "again.")
            entry["source"] = {"path": str(photos_target / file.name), "member": None, "size": file.stat().st_size}
        samples.append(entry)
    if (staging / "photos").is_dir():
        (kept / "photos").mkdir(exist_ok=True)
        os.replace(staging / "photos", kept / "photos" / photos_target.name)
    write_json(kept / "dataset.json", {**data, "samples": samples})
    return sum(1 for entry in samples if entry["source"])


def _move_into_place(staging: Path, into: Path, cache_root: Path, runs: list[str]) -> None:
    """Renames only (the staging folder is beside the target): the workspace, then the runs, then the features."""
    into.mkdir(parents=True, exist_ok=True)
    replaced = staging / "replaced"
    replaced.mkdir()
    pinned = set(read_json(into / FOLDER / "pinned.json", [])) | set(read_json(staging / "workspace/pinned.json", []))
    if pinned:
        write_json(staging / "workspace" / "pinned.json", sorted(pinned))
    if (into / FOLDER).exists():
        os.replace(into / FOLDER, replaced / FOLDER)
    os.replace(staging / "workspace", into / FOLDER)
    for run_name in runs:
        if (into / run_name).exists():
            os.replace(into / run_name, replaced / run_name)
        os.replace(staging / "runs" / run_name, into / run_name)
    for entry in sorted((staging / "features").rglob("*.qnf")):
        target = cache_root / entry.parent.name / entry.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(entry, target)  # the cache may be on another disk (QUASAR_CACHE_DIR)
    shutil.rmtree(staging, ignore_errors=True)
