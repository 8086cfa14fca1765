"""Transfer learning vs training from scratch, for the current run: start, follow, stop, read back.

A quasar_core.jobs.ComparisonJob trains the run's settings twice for each share of the
training photos (from ImageNet weights and from random weights) in the process-wide job
queue, so it waits its turn like any training; it writes comparison.json into the run
folder. The session keeps only the job's id (ui.state). Nothing here imports TensorFlow
at import time.
"""

from __future__ import annotations

from quasar_core import jobs, planning, runs
from quasar_core.config import TrainConfig
from quasar_core.report import COMPARISON_FILE
from quasar_core.runs import Run
from ui import nav, resources, state, workspace

FRACTIONS = (0.25, 0.5, 1.0)  # shares of the training photos each kind of start is trained on


def current_job() -> jobs.ComparisonJob | None:
    """This session's latest comparison job, if the queue still has it and it belongs to this workspace."""
    job_id = state.comparison_job_id()
    job = jobs.default_queue().get(job_id) if job_id else None
    return job if isinstance(job, jobs.ComparisonJob) and job.owner == workspace.current_id() else None


def is_for(job: jobs.ComparisonJob, run: Run) -> bool:
    return job.run_dir.resolve() == run.path.resolve()


def saved(run: Run) -> dict | None:
    """The comparison written into the run folder earlier, if any finished training."""
    summary = runs.read_json(run.path / COMPARISON_FILE)
    return summary if isinstance(summary, dict) and summary.get("results") else None


def config_for(run: Run) -> TrainConfig:
    """The run's own settings; a run that started from random weights is compared with ImageNet's."""
    return run.config if run.config.weights != "none" else run.config.replace(weights="imagenet")


def trainings(fractions=None) -> int:
    return 2 * len(set(fractions or FRACTIONS))


def missing_photos(run: Run, dataset) -> tuple[str, nav.PageInfo, str] | None:
    """Why the comparison cannot start with the photos loaded now: (message, page, link label), or None."""
    if not run.report:
        return ("This model was opened from a file, so the photos it learned from are not known. Train a model "
                "on your photos here, then compare.", nav.TRAIN, "Train a model")
    if dataset is None:
        return ("The photos this model learned from are no longer loaded (photos are kept only while the page "
                "is open). Load the same photos again to compare.", nav.UPLOAD, "Upload photos")
    if list(dataset.labels) != list(run.labels) or dict(dataset.report.counts) != run.report.get("counts"):
        return ("The photos loaded now are not the ones this model learned from. Load those photos again, or "
                "train a model on these first.", nav.UPLOAD, "Upload photos")
    return None


def start(run: Run, dataset) -> jobs.ComparisonJob:
    """Check memory, load both VGG16 bases here in the script thread, and queue the comparison.

    Raises QuasarError subclasses with a plain message (too little memory, no weights).
    """
    config = config_for(run)
    planning.check_memory(config, len(dataset))
    bases = {"imagenet": resources.shared_base(config.weights), "none": resources.shared_base("none")}
    job = jobs.ComparisonJob(dataset, config, run.path, owner=workspace.current_id(), base_loader=lambda: bases,
                             fractions=FRACTIONS)
    jobs.default_queue().submit(job)
    state.set_comparison_job_id(job.job_id)
    return job


def overall_fraction(snapshot: jobs.JobSnapshot, total: int) -> float:
    """Share of the whole comparison done: finished trainings plus the current one's progress."""
    started = len(snapshot.messages)  # one "Training k of n" message as each training starts
    current = snapshot.progress.fraction if snapshot.progress is not None else 0.0
    return min(1.0, max(0.0, (max(started - 1, 0) + current) / max(total, 1)))


def results_table(results: list[dict]) -> list[dict]:
    return [{"Starting weights": "ImageNet" if r["weights"] == "imagenet" else "Random (from scratch)",
             "Training photos used": f"{r['fraction']:.0%} ({r['images_per_class']} per class)",
             "Accuracy on held-out photos": f"{r['accuracy']:.1%}",
             "Training time": planning.format_duration(r["train_seconds"])} for r in results]
