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
from quasar_core.data.assembly import UNLABELLED
from quasar_core.data.records import DataReport, Dataset, Sample, source_exists
from quasar_core.errors import QuasarError
from quasar_core.features.cache import FeatureCache, default_cache_dir
from quasar_core.runs.folder import Run, atomic_write, delete_run, list_runs, read_json, write_json

FOLDER = "_workspace"
RUNS_BUDGET_ENV = "QUASAR_WORKSPACE_RUNS_MB"
DEFAULT_RUNS_BUDGET_MB = 300
WORKSPACE_CACHE_ENV = "QUASAR_WORKSPACE_CACHE_MB"
DEFAULT_WORKSPACE_CACHE_MB = 1024
# What _workspace/ keeps beside photos/ (a project file carries them all: quasar_core.project).
KEPT_FILES = ("dataset.json", "settings.json", "decisions.json", "check.json", "pinned.json", "labelling.json",
              "label_rounds.json")
DECISION_ACTIONS = ("move", "remove", "keep")
# Label assist's decisions about photos to label (labelling.json): given a class (by hand, or accepted in bulk
# from the confident band), skipped for now, or not any of the classes.
LABEL_ACTIONS = ("label", "skip", "none")


@dataclass(frozen=True)
class Decision:
    """What the user decided about one photo on the Check my photos page."""

    file: str
    action: str  # "move" | "remove" | "keep"; label assist: "label" | "skip" | "none"
    to: str | None = None  # the class a moved (or labelled) photo goes to
    how: str | None = None  # label assist: "hand" (one by one) or "bulk" (the confident band accepted)
    round: int | None = None  # label assist: the labelling round it was made in (1 = the first batch)

    def words(self) -> str:
        if self.action == "label":
            return f"labelled {self.to}" + (" (a pre-label accepted in bulk)" if self.how == "bulk" else "")
        return {"move": f"moved to {self.to}", "remove": "left out", "keep": "kept as it is", "skip": "skipped for now",
                "none": "not any of these classes"}[self.action]

    def to_dict(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if value is not None or key == "to"}


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
        """Remember the checked photos; earlier uploads that are no longer used are deleted. Photos to label
        (kept, plus the dataset's own `unlabelled` ones) stay; decisions about the old photos go."""
        pool = self._merged_pool(self._stored()[1], dataset.unlabelled, dataset)[0]
        self._write_photos(dataset, pool)
        self.clear_decisions()
        self.clear_labelling()
        (self.folder / "check.json").unlink(missing_ok=True)
        used = {self._upload_folder(s) for s in pool} | ({photos_folder.resolve()} if photos_folder else set())
        if self.photos.is_dir():
            for old in self.photos.iterdir():
                if old.is_dir() and old.resolve() not in used:
                    shutil.rmtree(old, ignore_errors=True)

    def _stored(self) -> tuple[Dataset | None, list[Sample]]:
        """dataset.json: (the labelled photos or None, the photos to label). Both live in one file, so a
        project file carries the photos to label like the others (their label is the blank UNLABELLED)."""
        data = read_json(self.folder / "dataset.json")
        if not data:
            return None, []
        try:
            everything = Dataset.from_dict(data)
        except (KeyError, TypeError, ValueError):
            return None, []
        labelled = [s for s in everything.samples if s.label != UNLABELLED]
        pool = [s for s in everything.samples if s.label == UNLABELLED]
        dataset = Dataset(labelled, everything.labels, everything.report) if everything.labels else None
        return dataset, pool

    def _write_photos(self, dataset: Dataset | None, pool: list[Sample]) -> None:
        data = dataset.to_dict() if dataset is not None else {"labels": [], "report": DataReport("").to_dict(),
                                                              "samples": []}
        data["samples"] += [s.to_dict() for s in pool]
        write_json(self.folder / "dataset.json", data)

    def _upload_folder(self, sample: Sample) -> Path | None:
        try:
            return (self.photos / Path(sample.source.path).resolve().relative_to(self.photos.resolve()).parts[0]
                    ).resolve()
        except (AttributeError, TypeError, ValueError, IndexError):
            return None

    def dataset(self) -> Dataset | None:
        """The photos loaded last (None if none, or if their files are gone)."""
        dataset = self._stored()[0]
        return dataset if dataset is not None and source_exists(dataset) else None

    def discard_photos(self) -> None:
        (self.folder / "dataset.json").unlink(missing_ok=True)
        self.clear_decisions()
        self.clear_labelling()
        shutil.rmtree(self.photos, ignore_errors=True)

    # --- photos to label (label assist) ------------------------------------------------------------
    def unlabelled(self) -> Dataset | None:
        """The photos to label (a Dataset without labels; the ones already labelled included), or None."""
        labelled, pool = self._stored()
        known = {s.digest for s in labelled.samples} if labelled is not None else set()
        pool = [s for s in pool if s.digest not in known]
        dataset = Dataset(pool, [], DataReport("photos to label", {}, []))
        return dataset if pool and source_exists(dataset) else None

    def keep_unlabelled(self, photos: Dataset) -> int:
        """Add checked photos to label (load_unlabelled's) to those kept; returns how many were new."""
        labelled, pool = self._stored()
        pool, added = self._merged_pool(pool, photos.samples, labelled)
        self._write_photos(labelled, pool)
        return added

    @staticmethod
    def _merged_pool(pool: list[Sample], new: list[Sample], labelled: Dataset | None) -> tuple[list[Sample], int]:
        """The pool with the new photos added: copies (of a kept or labelled photo) once, names made unique."""
        digests = {s.digest for s in pool} | ({s.digest for s in labelled.samples} if labelled else set())
        names = {s.name for s in pool}
        merged, added = list(pool), 0
        for sample in new:
            if sample.digest in digests:
                continue
            name, number = sample.name, 1
            while name in names:
                number += 1
                stem, dot, suffix = sample.name.rpartition(".")
                name = f"{stem} ({number}).{suffix}" if dot else f"{sample.name} ({number})"
            merged.append(Sample(name, UNLABELLED, sample.original_size, sample.digest, sample.source))
            digests.add(sample.digest)
            names.add(name)
            added += 1
        return merged, added

    def discard_unlabelled(self) -> None:
        """Forget the photos to label and every decision about them (their files go with the next upload)."""
        self._write_photos(self._stored()[0], [])
        self.clear_labelling()

    def labelling(self) -> list[Decision]:
        """Label assist's decisions, oldest first (unreadable entries are ignored)."""
        entries = read_json(self.folder / "labelling.json", [])
        kept = []
        for entry in entries if isinstance(entries, list) else []:
            try:
                kept.append(Decision(**entry))
            except TypeError:
                continue
        return [d for d in kept if d.action in LABEL_ACTIONS]

    def label(self, decision: Decision) -> None:
        """Record a decision about a photo to label (replacing an earlier one about the same photo)."""
        if decision.action not in LABEL_ACTIONS:
            raise ValueError(f"A labelling decision is one of {', '.join(LABEL_ACTIONS)}; got {decision.action!r}.")
        kept = [d for d in self.labelling() if d.file != decision.file] + [decision]
        write_json(self.folder / "labelling.json", [d.to_dict() for d in kept])

    def label_many(self, decisions: list[Decision]) -> None:
        """Several decisions at once (accepting the confident band)."""
        files = {d.file for d in decisions}
        write_json(self.folder / "labelling.json",
                   [d.to_dict() for d in [d for d in self.labelling() if d.file not in files] + list(decisions)])

    def undo_label(self, file: str) -> None:
        write_json(self.folder / "labelling.json", [d.to_dict() for d in self.labelling() if d.file != file])

    def clear_labelling(self) -> None:
        (self.folder / "labelling.json").unlink(missing_ok=True)
        (self.folder / "label_rounds.json").unlink(missing_ok=True)

    def label_rounds(self) -> list[dict]:
        """Each finished labelling round: {"round", "labelled", "accuracy", "low", "high", "tested", …}."""
        rounds = read_json(self.folder / "label_rounds.json", [])
        return [r for r in rounds if isinstance(r, dict)] if isinstance(rounds, list) else []

    def keep_label_round(self, row: dict) -> None:
        """Record a round (one with the same number is replaced)."""
        rounds = [r for r in self.label_rounds() if r.get("round") != row.get("round")] + [row]
        write_json(self.folder / "label_rounds.json", sorted(rounds, key=lambda r: r.get("round", 0)))

    def _labelled_in(self, labels: list[str]) -> list[Sample]:
        """Photos to label that were given one of `labels`, as samples of that class."""
        pool = {s.name: s for s in (self.unlabelled() or Dataset([], [], DataReport(""))).samples}
        return [Sample(d.file, d.to, pool[d.file].original_size, pool[d.file].digest, pool[d.file].source)
                for d in self.labelling() if d.action == "label" and d.to in labels and d.file in pool]

    # --- the photo check's decisions ----------------------------------------------------------------
    def decisions(self) -> list[Decision]:
        return [Decision(**d) for d in read_json(self.folder / "decisions.json", [])]

    def decide(self, decision: Decision) -> None:
        """Record a decision about a photo (replacing an earlier one about the same photo)."""
        kept = [d for d in self.decisions() if d.file != decision.file] + [decision]
        write_json(self.folder / "decisions.json", [d.to_dict() for d in kept])

    def undo(self, file: str) -> None:
        write_json(self.folder / "decisions.json", [d.to_dict() for d in self.decisions() if d.file != file])

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
        labelled_in = self._labelled_in(dataset.labels)
        if labelled_in:  # label assist's labels join the photos like the photo check's changes
            samples = dataset.samples + labelled_in
            counts = {label: sum(1 for s in samples if s.label == label) for label in dataset.labels}
            dataset = Dataset(sorted(samples, key=lambda s: (dataset.labels.index(s.label), s.name)),
                              list(dataset.labels), DataReport(dataset.report.source, counts,
                                                               list(dataset.report.problems)))
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
        labelling = self.labelling_summary()
        if not found and not made:
            return {"labelling": labelling} if labelling else None
        found = found or {}
        return {"found": {"label_issues": len(found.get("label_issues", [])),
                          "near_duplicates": len(found.get("near_duplicates", [])),
                          "outliers": len(found.get("outliers", []))},
                "changes": [{"file": d.file, "words": d.words(), "action": d.action} for d in made],
                **({"labelling": labelling} if labelling else {})}

    def labelling_summary(self) -> dict | None:
        """How the photos labelled with label assist got their labels (for a run's model card), or None:
        {"by_hand": n, "bulk": n, "rounds": [{"round": r, "by_hand": n, "bulk": n}, …]}."""
        dataset = self.dataset()
        joined = {s.name for s in self._labelled_in(dataset.labels)} if dataset is not None else set()
        made = [d for d in self.labelling() if d.action == "label" and d.file in joined]
        if not made:
            return None
        rounds = sorted({d.round or 1 for d in made})

        def count(how: str, round_: int | None = None) -> int:
            return sum(1 for d in made if (d.how or "hand") == how and round_ in (None, d.round or 1))

        return {"by_hand": count("hand"), "bulk": count("bulk"),
                "rounds": [{"round": r, "by_hand": count("hand", r), "bulk": count("bulk", r)} for r in rounds]}

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
