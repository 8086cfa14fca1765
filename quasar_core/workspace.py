"""A user's workspace on disk: their photos, the chosen settings, the photo check's decisions, their runs.

The dashboard keeps everything a user made here as well as in the session, so a reload, a
server restart or a ``kill -9`` loses nothing: the same ``?workspace=`` address opens the
same photos and settings again. Layout under ``<runs root>/<id>/``: the run folders, and
``_workspace/`` with ``photos/`` (uploads as uploaded), ``dataset.json`` (the checked
photos: references and report), ``settings.json`` and ``decisions.json``. The workspace's
feature cache is ``features/<id>/`` beside the runs root: workspaces never share runs,
photos or caches. Sizes are bounded: the oldest unpinned runs go first.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from quasar_core.config import TrainConfig
from quasar_core.data.records import Dataset, source_exists
from quasar_core.errors import QuasarError
from quasar_core.features.cache import FeatureCache, default_cache_dir
from quasar_core.runs.folder import Run, atomic_write, delete_run, list_runs, read_json, write_json

FOLDER = "_workspace"
RUNS_BUDGET_ENV = "QUASAR_WORKSPACE_RUNS_MB"
DEFAULT_RUNS_BUDGET_MB = 300
WORKSPACE_CACHE_ENV = "QUASAR_WORKSPACE_CACHE_MB"
DEFAULT_WORKSPACE_CACHE_MB = 1024
# What _workspace/ keeps beside photos/ (a project file carries them all: quasar_core.project).
KEPT_FILES = ("dataset.json", "settings.json", "decisions.json", "check.json", "pinned.json")
DECISION_ACTIONS = ("move", "remove", "keep")


@dataclass(frozen=True)
class Decision:
    """What the user decided about one photo on the Check my photos page."""

    file: str
    action: str  # "move" | "remove" | "keep"
    to: str | None = None  # the class a moved photo goes to

    def words(self) -> str:
        return {"move": f"moved to {self.to}", "remove": "left out", "keep": "kept as it is"}[self.action]


def _megabytes(env: str, default: float) -> int:
    raw = os.environ.get(env, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{env}={raw!r} is not valid: expected a number of megabytes.") from None
    if value <= 0:
        raise ValueError(f"{env}={raw!r} is not valid: expected a number of megabytes above 0.")
    return int(value * 1024**2)


class Workspace:
    def __init__(self, root: str | Path, *, workspace_id: str):
        self.root = Path(root)
        self.id = workspace_id
        self.folder = self.root / FOLDER
        self.photos = self.folder / "photos"

    # --- photos -----------------------------------------------------------------------------
    def new_photos_folder(self) -> Path:
        """A fresh folder for an upload (the previous photos stay until the new ones are accepted)."""
        path = self.photos / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        path.mkdir(parents=True)
        return path

    def save_upload(self, folder: Path, name: str, content: bytes) -> Path:
        """Keep one uploaded file as uploaded, under a safe name inside `folder`."""
        parts = [p for p in str(name).replace("\\", "/").split("/") if p not in ("", ".", "..")]
        target = folder.joinpath(*parts) if parts else folder / "upload"
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, content)
        return target

    def keep_dataset(self, dataset: Dataset, *, photos_folder: Path | None = None) -> None:
        """Remember the checked photos; earlier uploads that are no longer used are deleted."""
        write_json(self.folder / "dataset.json", dataset.to_dict())
        self.clear_decisions()
        (self.folder / "check.json").unlink(missing_ok=True)
        if self.photos.is_dir():
            for old in self.photos.iterdir():
                if old.is_dir() and (photos_folder is None or old.resolve() != photos_folder.resolve()):
                    shutil.rmtree(old, ignore_errors=True)

    def dataset(self) -> Dataset | None:
        """The photos loaded last (None if none, or if their files are gone)."""
        data = read_json(self.folder / "dataset.json")
        if not data:
            return None
        try:
            dataset = Dataset.from_dict(data)
        except (KeyError, TypeError, ValueError):
            return None
        return dataset if source_exists(dataset) else None

    def discard_photos(self) -> None:
        (self.folder / "dataset.json").unlink(missing_ok=True)
        self.clear_decisions()
        shutil.rmtree(self.photos, ignore_errors=True)

    # --- the photo check's decisions ----------------------------------------------------------------
    def decisions(self) -> list[Decision]:
        return [Decision(**d) for d in read_json(self.folder / "decisions.json", [])]

    def decide(self, decision: Decision) -> None:
        """Record a decision about a photo (replacing an earlier one about the same photo)."""
        kept = [d for d in self.decisions() if d.file != decision.file] + [decision]
        write_json(self.folder / "decisions.json", [d.__dict__ for d in kept])

    def undo(self, file: str) -> None:
        write_json(self.folder / "decisions.json", [d.__dict__ for d in self.decisions() if d.file != file])

    def clear_decisions(self) -> None:
        (self.folder / "decisions.json").unlink(missing_ok=True)

    def effective_dataset(self, dataset: Dataset | None = None) -> Dataset | None:
        """The photos with the decisions applied: moved photos relabelled, removed ones left out.

        The uploaded files are never changed; undoing a decision restores the photo.
        """
        dataset = dataset or self.dataset()
        if dataset is None:
            return None
        by_file = {d.file: d for d in self.decisions()}
        if not by_file:
            return dataset
        keep, labels = [], {}
        for index, sample in enumerate(dataset.samples):
            decision = by_file.get(sample.name)
            if decision is not None and decision.action == "remove":
                continue
            if decision is not None and decision.action == "move":
                labels[index] = decision.to
            keep.append(index)
        changed = dataset.subset(keep, labels=labels)
        if len(changed.labels) < 2:
            raise QuasarError("These changes would leave fewer than 2 classes to tell apart; undo some of them.")
        return changed

    def keep_check(self, report: dict) -> None:
        """What the photo check found (photo_findings.Findings.to_dict()), for these photos."""
        write_json(self.folder / "check.json", report)

    def check(self) -> dict | None:
        return read_json(self.folder / "check.json")

    def check_summary(self) -> dict | None:
        """What the photo check found and what the user changed (for a run's model card), or None."""
        found = (self.check() or {}).get("report")
        made = self.decisions()
        if not found and not made:
            return None
        found = found or {}
        return {"found": {"label_issues": len(found.get("label_issues", [])),
                          "near_duplicates": len(found.get("near_duplicates", [])),
                          "outliers": len(found.get("outliers", []))},
                "changes": [{"file": d.file, "words": d.words()} for d in made]}

    # --- settings ---------------------------------------------------------------------------
    def keep_settings(self, preset: str, config: TrainConfig, *, chosen: bool) -> None:
        write_json(self.folder / "settings.json", {"preset": preset, "config": config.to_dict(), "chosen": chosen})

    def settings(self) -> tuple[str, TrainConfig, bool] | None:
        data = read_json(self.folder / "settings.json")
        try:
            return str(data["preset"]), TrainConfig.from_dict(data["config"]), bool(data.get("chosen"))
        except (TypeError, KeyError, ValueError):
            return None

    # --- runs, cache and budgets --------------------------------------------------------------
    def runs(self) -> list[Run]:
        return list_runs(self.root)

    def cache(self, *, runs_root: Path | None = None) -> FeatureCache:
        root = default_cache_dir(runs_root=runs_root or self.root.parent)
        return FeatureCache(root / self.id, max_bytes=_megabytes(WORKSPACE_CACHE_ENV, DEFAULT_WORKSPACE_CACHE_MB))

    def pinned(self) -> set[str]:
        return set(read_json(self.folder / "pinned.json", []))

    def pin(self, run_name: str, pinned: bool = True) -> None:
        names = self.pinned() - {run_name} | ({run_name} if pinned else set())
        write_json(self.folder / "pinned.json", sorted(names))

    def enforce_budget(self, *, keep: set[str] = frozenset()) -> list[str]:
        """Delete the oldest unpinned runs until the runs fit the workspace's budget; returns their names."""
        budget = _megabytes(RUNS_BUDGET_ENV, DEFAULT_RUNS_BUDGET_MB)
        runs = sorted(self.runs(), key=lambda run: run.status.started or 0.0)
        sizes = {run.name: run.size_bytes() for run in runs}
        total = sum(sizes.values())
        protected = self.pinned() | set(keep)
        deleted = []
        for run in runs:
            if total <= budget:
                break
            if run.name in protected or run.state == "running":
                continue
            delete_run(run.path, self.root)
            total -= sizes[run.name]
            deleted.append(run.name)
        if deleted:
            write_json(self.folder / "deleted.json", {"runs": deleted, "when": time.time()})
        return deleted

    def recently_deleted(self) -> list[str]:
        return list((read_json(self.folder / "deleted.json") or {}).get("runs", []))


SERVER_BUDGET_ENV = "QUASAR_SERVER_MB"
DEFAULT_SERVER_BUDGET_MB = 5000


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else 0


def enforce_server_budget(runs_root: str | Path, *, keep: set[str] = frozenset()) -> list[str]:
    """Over the server's budget (runs, photos and feature caches of every workspace): delete the oldest
    unpinned runs of any workspace, then shrink the feature caches, oldest entries first. Returns the runs'
    folders deleted (each workspace's Past runs page says which of its runs went)."""
    runs_root = Path(runs_root)
    budget = _megabytes(SERVER_BUDGET_ENV, DEFAULT_SERVER_BUDGET_MB)
    features = default_cache_dir(runs_root=runs_root)
    total = _folder_bytes(runs_root) + _folder_bytes(features)
    if total <= budget:
        return []
    spaces = [Workspace(folder, workspace_id=folder.name) for folder in runs_root.iterdir() if folder.is_dir()] \
        if runs_root.is_dir() else []
    candidates = sorted(((run.status.started or 0.0, space, run) for space in spaces for run in space.runs()
                         if run.name not in space.pinned() and run.name not in keep and run.state != "running"),
                        key=lambda item: item[0])
    deleted = []
    for _, space, run in candidates:
        if total <= budget:
            break
        size = run.size_bytes()
        delete_run(run.path, space.root)
        write_json(space.folder / "deleted.json", {"runs": space.recently_deleted() + [run.name], "when": time.time()})
        total -= size
        deleted.append(f"{space.id}/{run.name}")
    if total > budget and features.is_dir():
        share = max(1, budget // 4)  # each workspace's cache may keep a quarter of the budget
        for folder in features.iterdir():
            if folder.is_dir():
                FeatureCache(folder, max_bytes=share).evict()
    return deleted
