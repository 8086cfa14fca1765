"""Transfer learning vs training from scratch, for the current run: start, follow, stop, read back.

A quasar_core.jobs.ComparisonJob runs VGG16 twice over the run's photos (ImageNet weights,
mostly from the feature cache, and random weights) and scores 25/50/100 % of them on the
same folds (quasar_core.compare); it waits its turn in the process-wide queue like any
training and writes comparison.json into the run folder. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from quasar_core import jobs, planning
from quasar_core.compare import FRACTIONS, WEIGHTS_WORDS
from quasar_core.config import TrainConfig
from quasar_core.runs.folder import Run
from quasar_core.runs.pipeline import comparison_of
from quasar_core.wording import duration, estimate
from ui import nav, resources, state, workspace

PASSES = 2  # VGG16 passes over the photos: ImageNet weights, then random weights


def current_job() -> jobs.ComparisonJob | None:
    job_id = state.comparison_job_id()
    job = jobs.default_queue().get(job_id) if job_id else None
    return job if isinstance(job, jobs.ComparisonJob) and job.owner == workspace.current_id() else None


def is_for(job: jobs.ComparisonJob, run: Run) -> bool:
    return job.run_dir.resolve() == run.path.resolve()


def saved(run: Run) -> dict | None:
    return comparison_of(run)


def config_for(run: Run) -> TrainConfig:
    """The run's own settings (without fine-tuning: the comparison is of where VGG16 starts from)."""
    config = run.config.replace(mode="feature-extraction", precision=run.status.precision or run.config.precision)
    return config if config.weights != "none" else config.replace(weights="imagenet")


def missing_photos(run: Run, dataset) -> tuple[str, nav.PageInfo, str] | None:
    """Why the comparison cannot start with the photos loaded now: (message, page, link label), or None."""
    if run.report is None:
        return ("This model was opened from a file, so the photos it learned from are not known. Train a model "
                "on your photos here, then compare.", nav.TRAIN, "Train a model")
    if dataset is None:
        return ("The photos this model learned from are no longer loaded. Load the same photos again to compare.",
                nav.UPLOAD, "Upload photos")
    if list(dataset.labels) != list(run.labels) or dict(dataset.report.counts) != dict(run.report.counts):
        return ("The photos loaded now are not the ones this model learned from. Load those photos again, or "
                "train a model on these first.", nav.UPLOAD, "Upload photos")
    return None


def start(run: Run, dataset) -> jobs.ComparisonJob:
    """Check memory, load both VGG16 bases here in the script thread, and queue the comparison."""
    config = config_for(run)
    planning.check_memory(config, len(dataset))
    loaders = {"imagenet": resources.base_loader(config.weights), "none": resources.base_loader("none")}
    for load in loaders.values():
        load()  # behind the page's spinner, not in the job
    here = workspace.current()
    job = jobs.ComparisonJob(dataset, config, run.path, owner=here.id, base_loader=loaders, cache=here.cache(),
                             fractions=FRACTIONS)
    jobs.default_queue().submit(job)
    state.set_comparison_job_id(job.job_id)
    return job


def overall_fraction(snapshot: jobs.JobSnapshot) -> float:
    """Share of the whole comparison done: finished passes plus the current one's progress."""
    started = sum(1 for m in snapshot.messages if m.startswith("Reading the photos"))
    current = snapshot.progress.fraction if snapshot.progress is not None and snapshot.progress.phase == "features" \
        else 1.0
    return min(1.0, max(0.0, (max(started - 1, 0) + current) / PASSES))


def headline(snapshot: jobs.JobSnapshot) -> str:
    """"Reading the photos through VGG16 with random weights (2 of 2)": which pass is running, in words."""
    started = sum(1 for m in snapshot.messages if m.startswith("Reading the photos"))
    if not started:
        return snapshot.messages[-1] if snapshot.messages else "Starting…"
    words = ("ImageNet weights", "random weights")[min(started, PASSES) - 1]
    return f"Reading the photos through VGG16 with {words} ({min(started, PASSES)} of {PASSES})"


def _capital(words: str) -> str:
    return words[:1].upper() + words[1:]  # "ImageNet weights" stays ImageNet (str.capitalize lowers the rest)


def results_table(results: list[dict]) -> list[dict]:
    return [{"Starting weights": _capital(WEIGHTS_WORDS[r["weights"]]),
             "Photos learned from": f"{r['fraction'] * 100:.0f} % ({r['images_per_class']} per class)",
             "Accuracy (95 % range)": estimate(r["accuracy"], r.get("accuracy_interval")),
             "Training time": duration(r["train_seconds"])} for r in results]
