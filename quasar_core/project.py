"""Save project / Open project: a whole workspace in one zip file, to take home and bring back.

On a hosted server (Streamlit Community Cloud) the app's disk goes with its container: a
reboot, a sleeping app or a redeploy loses every workspace. A project file carries what the
user made, and opening it (on another server, or after a reboot) restores all of it:

    manifest.json              format name and version, when it was saved, what is inside, the current run
    workspace/dataset.json     the checked photos (their sources point at photos/, or at nothing when the
                               photos were left out), settings.json, decisions.json, check.json, pinned.json
    photos/000001.jpg …        each photo as uploaded (a zip upload's photos one by one: no zip in the zip)
    features/ab/ab….qnf        the feature cache's small entries: VGG16's features of the photos and the
                               photo check's thumbnails, so a training after opening skips VGG16
    runs/<run>/…               the run folders as they are (model, charts' data, examples)

Saving is here; opening (quasar_core.project_open) checks the file like any upload
(quasar_core.project_archive) and changes nothing in the workspace when it refuses it.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import zipfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from quasar_core.data.records import Dataset
from quasar_core.errors import QuasarError
from quasar_core.features.cache import FeatureCache
from quasar_core.project_archive import FORMAT, MANIFEST, PHOTO_SUFFIXES, SAFE_PART, VERSION, ProjectRefused, kind_of
from quasar_core.project_open import ProjectOpened, open_project
from quasar_core.runs.folder import Run, disk_error, read_json
from quasar_core.wording import join_words, plural
from quasar_core.workspace import KEPT_FILES, Workspace

# Small cache entries travel: pooled features (about 2 KB a photo and view) and thumbnails (7 KB);
# fine-tuning's in-between activations (70-400 KB a photo) are recomputed from the photos instead.
SMALL_FEATURE_BYTES = 64 * 1024
# Already compressed (pictures, models, arrays of floats): stored as they are, not deflated again.
STORED_SUFFIXES = PHOTO_SUFFIXES + (".keras", ".h5", ".npz")

__all__ = ["FORMAT", "VERSION", "ProjectOpened", "ProjectRefused", "ProjectSaved", "open_project",
           "project_bytes", "save_project"]


@dataclass(frozen=True)
class ProjectSaved:
    photos: int
    features: int
    runs: list[str]
    left_out: list[str] = field(default_factory=list)  # in words: what could not be carried, and why
    photos_left_out: bool = False
    path: Path | None = None
    size_bytes: int = 0

    def words(self) -> str:
        parts = ["the photos left out" if self.photos_left_out else plural(self.photos, "photo"),
                 plural(len(self.runs), "run")]
        if self.features:
            parts.append(f"the saved features of photos ({self.features} entries)")
        what = join_words(parts)
        where = f" to {self.path} ({self.size_bytes / 1024**2:.1f} MB)" if self.path else ""
        left = f" Left out: {'; '.join(self.left_out)}." if self.left_out else ""
        return f"Saved the project{where}: {what}.{left}"


# --- saving ------------------------------------------------------------------------------------------------
def save_project(workspace_root, out, *, features_only: bool = False, current_run: str | None = None,
                 cache_root=None) -> ProjectSaved:
    """Write the project file `out` (all or nothing: a temporary name renamed into place).

    `current_run` names the run to reopen first (default: the newest with a model). `cache_root` is the
    feature cache to carry (default: a dashboard workspace's own; a plain folder of runs carries none).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(3)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            saved = write_project(handle, workspace_root, features_only=features_only, current_run=current_run,
                                  cache_root=cache_root)
        os.replace(tmp, out)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise disk_error(err, out) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return replace(saved, path=out, size_bytes=out.stat().st_size)


def project_bytes(workspace_root, **options) -> bytes:
    """The project file in memory (the dashboard's download)."""
    buffer = io.BytesIO()
    write_project(buffer, workspace_root, **options)
    return buffer.getvalue()


def write_project(handle, workspace_root, *, features_only: bool = False, current_run: str | None = None,
                  cache_root=None) -> ProjectSaved:
    root = Path(workspace_root)
    if not root.is_dir():
        raise QuasarError(f"{str(root)!r} is not a folder. Give a workspace folder (runs/<id>) or a folder of runs.")
    space = Workspace(root, workspace_id=root.name)
    runs = [run for run in space.runs() if run.state != "running" and SAFE_PART.fullmatch(run.name)]
    left_out = [f"{run.name} (still training)" for run in space.runs() if run.state == "running"]
    dataset = _kept_dataset(space)
    if dataset is None and not runs:
        raise QuasarError(f"{str(root)!r} holds no photos and no runs: there is nothing to save in a project.")
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        photos = 0 if dataset is None else _write_photos(archive, space, dataset, features_only=features_only)
        for kept in KEPT_FILES:
            if kept != "dataset.json" and (space.folder / kept).is_file():
                _write(archive, f"workspace/{kept}", (space.folder / kept).read_bytes())
        if cache_root is None and space.folder.is_dir():  # a dashboard workspace keeps its own cache
            cache_root = space.cache().root
        features = _write_features(archive, Path(cache_root)) if cache_root is not None else 0
        for run in runs:
            left_out += _write_run(archive, run)
        names = [run.name for run in runs]
        current = current_run if current_run in names else next((run.name for run in runs if run.has_model), None)
        manifest = {"format": FORMAT, "version": VERSION, "made_by": "Quasar Nexus",
                    "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "photos_left_out": features_only and dataset is not None,
                    "contents": {"photos": photos, "features": features, "runs": names,
                                 "decisions": len(space.decisions()), "settings": space.settings() is not None},
                    "current_run": current}
        write_json_member(archive, MANIFEST, manifest)
    return ProjectSaved(photos, features, names, left_out, photos_left_out=features_only and dataset is not None)


def _kept_dataset(space: Workspace) -> Dataset | None:
    data = read_json(space.folder / "dataset.json")
    try:
        return Dataset.from_dict(data) if data else None
    except (KeyError, TypeError, ValueError):
        raise QuasarError(f"{space.folder / 'dataset.json'} is damaged; load the photos again, then save.") from None


def _write_photos(archive: zipfile.ZipFile, space: Workspace, dataset: Dataset, *, features_only: bool) -> int:
    """Each photo as one member, its dataset entry pointing at it; with the photos left out, at nothing."""
    samples, written = [], 0
    for number, sample in enumerate(dataset.samples, start=1):
        entry = {**sample.to_dict(), "source": None}  # read from dataset.json: sources are files, never bytes
        if not features_only and sample.source is not None:
            try:
                content = sample.source.read()
            except (OSError, KeyError, zipfile.BadZipFile) as err:
                raise QuasarError(f"The photo {sample.name} can no longer be read ({err.__class__.__name__}): "
                                  "upload the photos again, or save the project with the photos left out.") from None
            suffix = Path(sample.name).suffix.lower()
            member = f"photos/{number:06d}{suffix if suffix in PHOTO_SUFFIXES else ''}"
            _write(archive, member, content)
            entry["source"] = {"path": member, "member": None, "size": len(content)}
            written += 1
        samples.append(entry)
    write_json_member(archive, "workspace/dataset.json", {**dataset.to_dict(), "samples": samples})
    return written


def _write_features(archive: zipfile.ZipFile, cache_root: Path) -> int:
    count = 0
    for _, size, path in sorted(FeatureCache(cache_root, max_bytes=1).entries()) if cache_root.is_dir() else []:
        if size <= SMALL_FEATURE_BYTES:
            try:
                content = path.read_bytes()
            except FileNotFoundError:
                continue  # evicted meanwhile by a training of another session
            _write(archive, f"features/{path.parent.name}/{path.name}", content)
            count += 1
    return count


def _write_run(archive: zipfile.ZipFile, run: Run) -> list[str]:
    """The run folder's files; returns, in words, any it cannot carry."""
    left_out = []
    for path in sorted(run.path.rglob("*")):
        rel = path.relative_to(run.path).parts
        if not path.is_file() or any(part.startswith(".") for part in rel):
            continue  # folders, and temporary files being written
        member = "/".join(("runs", run.name) + rel)
        if kind_of(member) != "run":
            left_out.append(f"{run.name}/{'/'.join(rel)} (not a kind of file a run keeps)")
            continue
        _write(archive, member, path.read_bytes())
    return left_out


def _write(archive: zipfile.ZipFile, member: str, content: bytes) -> None:
    stored = Path(member).suffix.lower() in STORED_SUFFIXES
    archive.writestr(member, content, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)


def write_json_member(archive: zipfile.ZipFile, member: str, data) -> None:
    _write(archive, member, json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"))
