"""Transfer learning vs training from scratch, for the current run: start, follow, stop, read back.

A quasar_core.jobs.ComparisonJob reads the run's photos through VGG16 with its ImageNet weights
(mostly from the feature cache) and scores transfer from 25/50/100 % of them on the training's
folds, then trains a small CNN from random weights on the same photos, every layer, and tests it
on the first folds' photos (quasar_core.compare); it waits its turn in the process-wide queue like
any training and writes comparison.json into the run folder. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from quasar_core import jobs, planning
from quasar_core.compare import (
    FRACTIONS, SCRATCH_ARCHITECTURE, SCRATCH_EPOCHS, SCRATCH_MAX_SIDE, SCRATCH_PHASE, SCRATCH_STEP, WEIGHTS_WORDS,
)
from quasar_core.config import TrainConfig
from quasar_core.runs.folder import Run
from quasar_core.runs.pipeline import comparison_of
from quasar_core.progress import Progress
from quasar_core.wording import duration, estimate
from ui import job_control, nav, resources, state, workspace

SCRATCH_WORDS = SCRATCH_ARCHITECTURE
SCRATCH_BUDGET_WORDS = f"{SCRATCH_EPOCHS} epochs at up to {SCRATCH_MAX_SIDE} px, with left-right flips"
STEPS = ("Reading the photos", SCRATCH_STEP)  # each step's message begins so: VGG16 with ImageNet weights, then the CNN
STEP_WORDS = ("Reading the photos through VGG16 with ImageNet weights", SCRATCH_STEP)


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
    """Check memory, load VGG16 here in the script thread, and queue the comparison."""
    config = config_for(run)
    planning.check_memory(config, len(dataset))
    loaders = {"imagenet": resources.base_loader(config.weights)}
    for load in loaders.values():
        load()  # behind the page's spinner, not in the job
    here = workspace.current()
    job = jobs.ComparisonJob(dataset, config, run.path, owner=here.id, base_loader=loaders, cache=here.cache(),
                             fractions=FRACTIONS)
    jobs.default_queue().submit(job)
    state.set_comparison_job_id(job.job_id)
    return job


def _started(snapshot: jobs.JobSnapshot) -> int:
    return sum(1 for m in snapshot.messages if m.startswith(STEPS))


def overall_fraction(snapshot: jobs.JobSnapshot) -> float:
    """Share of the whole comparison done: finished steps plus the current one's progress."""
    started = _started(snapshot)
    progress = snapshot.progress
    current = progress.fraction if progress is not None and progress.phase in ("features", SCRATCH_PHASE) else 1.0
    return min(1.0, max(0.0, (max(started - 1, 0) + current) / len(STEPS)))


def headline(snapshot: jobs.JobSnapshot) -> str:
    """"Training a small network from scratch on your photos (2 of 2)": which step is running, in words."""
    started = _started(snapshot)
    if not started:
        return snapshot.messages[-1] if snapshot.messages else "Starting…"
    step = min(started, len(STEPS))
    return f"{STEP_WORDS[step - 1]} ({step} of {len(STEPS)})"


def progress_text(progress: Progress) -> str:
    """The current step's progress in words: the CNN's epochs and batches, or the feature pass's photos."""
    if progress.phase == SCRATCH_PHASE:
        if not progress.total_epochs:
            return "Testing the network trained from scratch on the photos it never saw"
        return (f"Epoch {progress.epoch} of {progress.total_epochs}, batch {progress.step} of {progress.total_steps}"
                + (f" · about {duration(progress.eta_seconds)} left in this step" if progress.eta_seconds else ""))
    return job_control.progress_text(progress, fine_tunes=False)


def _capital(words: str) -> str:
    return words[:1].upper() + words[1:]  # "ImageNet weights" stays ImageNet (str.capitalize lowers the rest)


def _learned(result: dict) -> str:
    """"25 % (10 per class)" for transfer's shares; "240 photos (48 per class)" for the one network from scratch."""
    if result["weights"] == "scratch":
        return f"{result['train_images']} photos ({result['images_per_class']} per class)"
    return f"{result['fraction'] * 100:.0f} % ({result['images_per_class']} per class)"


def results_table(results: list[dict]) -> list[dict]:
    return [{"Starting weights": _capital(WEIGHTS_WORDS[r["weights"]]),
             "Photos learned from": _learned(r),
             "Accuracy (95 % range)": estimate(r["accuracy"], r.get("accuracy_interval")),
             "Tested on": f"{r['test_images']} photos" if r.get("test_images") else "",
             "Training time": duration(r["train_seconds"])} for r in results]
