"""Starting, following and stopping this session's jobs (training, comparison, photo check), and the plan.

Jobs run in threads of the process-wide jobs.default_queue(); the session keeps only their
ids (ui.state), so a page can poll them and a reloaded page can find them again. Finished
jobs hold no results in memory: the run folder (or the workspace) does. Nothing here imports
TensorFlow at import time.
"""

from __future__ import annotations

from pathlib import Path

from quasar_core import jobs, planning
from quasar_core.errors import QuasarError, ResourceLimitError
from quasar_core.features.precision import choose_precision
from quasar_core.presets import preset_named
from quasar_core.progress import PHASE_ORDER, Progress
from quasar_core.runs.folder import Run, new_run_dir
from quasar_core.workspace import enforce_server_budget
from quasar_core.wording import duration
from ui import resources, state, workspace

ACTIVE_STATES = ("queued", "running")


def _mine(job_id, kind):
    job = jobs.default_queue().get(job_id) if job_id else None
    return job if isinstance(job, kind) and job.owner == workspace.current_id() else None


def current_job() -> jobs.TrainingJob | None:
    """This session's latest training, if the queue still has it and it belongs to this workspace."""
    job = _mine(state.job_id(), jobs.TrainingJob)
    return job if type(job) is jobs.TrainingJob else None


def current_check() -> jobs.CheckJob | None:
    return _mine(state.check_job_id(), jobs.CheckJob)


def is_active(job) -> bool:
    return job is not None and job.state in ACTIVE_STATES


def start(dataset, config) -> jobs.TrainingJob:
    """Check memory, load the shared VGG16 base here in the script thread, and queue the training.

    The Best preset's candidates are tried in the job. Raises QuasarError subclasses with a plain message.
    """
    candidates = preset_named(state.preset()).candidates(dataset, config) if state.preset() == "Best accuracy" else None
    planning.check_memory(config, len(dataset), candidates=candidates)
    resources.shared_base(config.weights)  # loaded once per server (behind a spinner), reused by every job
    here = workspace.current()
    job = jobs.TrainingJob(dataset, config, new_run_dir(here.root), owner=here.id,
                           base_loader=resources.base_loader(config.weights), cache=here.cache(), candidates=candidates,
                           doctor=here.check_summary())
    jobs.default_queue().submit(job)
    state.set_job_id(job.job_id)
    state.set_adopted_job_id(None)
    state.set_reattached_job(False)
    state.dismiss_reopen_offer()  # the new run will be the one to look at
    return job


def start_check(dataset, config) -> jobs.CheckJob:
    resources.shared_base(config.weights)
    here = workspace.current()
    job = jobs.CheckJob(dataset, config, here, owner=here.id, base_loader=resources.base_loader(config.weights),
                        cache=here.cache())
    jobs.default_queue().submit(job)
    state.set_check_job_id(job.job_id)
    return job


def start_upload_check(load, photos_folder: Path | None = None) -> jobs.UploadCheckJob:
    """Check an upload in the background: `load(on_progress)` returns the Dataset (or raises)."""
    earlier = current_upload_check()
    if is_active(earlier):  # a new upload replaces the one still being checked
        earlier.cancel()
    here = workspace.current()
    job = jobs.UploadCheckJob(load, owner=here.id, photos_folder=photos_folder)
    jobs.upload_queue().submit(job)
    state.set_upload_job_id(job.job_id)
    return job


def current_upload_check() -> jobs.UploadCheckJob | None:
    """This session's latest upload check, or (after a reload) the workspace's latest one."""
    job = jobs.upload_queue().get(state.upload_job_id()) if state.upload_job_id() else None
    if job is None and workspace.current_id():
        job = jobs.upload_queue().latest_for(workspace.current_id(), kind=jobs.UploadCheckJob)
        if job is not None:
            state.set_upload_job_id(job.job_id)
    return job if isinstance(job, jobs.UploadCheckJob) and job.owner == workspace.current_id() else None


def wait_for(job: jobs.UploadCheckJob, seconds: float) -> bool:
    """Wait up to `seconds` for an upload check to end; whether it has."""
    return jobs.upload_queue().wait(job, timeout=seconds)


def upload_progress_text(job: jobs.UploadCheckJob) -> str:
    """"Checking photo 40 of 3,000" (before the photos are counted: "Checking your photos…")."""
    job.seen()
    progress = job.progress
    if progress is None or not progress.total_steps:
        return "Checking your photos…"
    return f"Checking photo {progress.step:,} of {progress.total_steps:,}"


def snapshot(job) -> jobs.JobSnapshot:
    return job.snapshot(jobs.default_queue())


def adopt_result(job: jobs.TrainingJob) -> Run | None:
    """Once a training has ended, make its run the current run (once) and return it (None if none)."""
    try:
        run = Run.open(job.run_dir)
    except (QuasarError, ValueError, TypeError):
        run = None
        _remove_if_empty(job.run_dir)  # stopped while still waiting: nothing was written
    if state.adopted_job_id() != job.job_id:
        state.set_adopted_job_id(job.job_id)
        if run is not None and run.has_model:
            state.set_current_run(run)
            here = workspace.current()
            here.enforce_budget(keep={run.name})
            enforce_server_budget(here.root.parent, keep={run.name})
    return run


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()  # only succeeds on an empty folder
    except OSError:
        pass


def progress_text(progress: Progress, *, fine_tunes: bool) -> str:
    """"Step 2 of 4 · Reading your photos through VGG16 · photo 40 of 245, 3.2 photos/s · about 12 s left"."""
    phases = [p for p in PHASE_ORDER if p != "check" and (fine_tunes or p != "fine-tune")]
    parts = []
    if progress.phase in phases:
        parts.append(f"Step {phases.index(progress.phase) + 1} of {len(phases)}")
    parts.append(progress.label)
    if progress.total_epochs:
        parts.append(f"epoch {progress.epoch} of {progress.total_epochs}, batch {progress.step} of "
                     f"{progress.total_steps}")
    elif progress.phase == "features":
        rate = f", {progress.rate:.1f} photos/s" if progress.rate else ""
        parts.append(f"photo {progress.step} of {progress.total_steps}{rate}")
    elif progress.total_steps > 1:
        parts.append(f"{progress.step} of {progress.total_steps}")
    if progress.eta_seconds is not None:
        parts.append(f"about {duration(progress.eta_seconds)} left in this step")
    return " · ".join(parts)


def plan(dataset, config) -> planning.Plan:
    """Time for these settings on this machine (VGG16's speed measured once per server), cache hits included."""
    from quasar_core import backbone
    from quasar_core.features.cache import FeatureSpec
    from quasar_core.features.extract import FeaturePass

    if backbone.resolve_weights(config.weights) is not None and backbone.weights_file(config.weights) is None:
        resources.shared_base(config.weights)  # not on disk yet: fetched now, or why it cannot be said here first
    precision = choose_precision(config.precision)
    spec = FeatureSpec(backbone.weights_id(config.weights, seed=config.seed), config.image_size, precision.precision)
    probe = FeaturePass(spec=spec, network_for=None, cache=workspace.current().cache(),
                        augmentation=config.augmentation if config.augment else None, seed=config.seed)
    cached = probe.cached_count(dataset, views=config.views)
    candidates = preset_named(state.preset()).candidates(dataset, config) if state.preset() == "Best accuracy" \
        else None
    return planning.plan(dataset, config, rate_at_224=resources.forward_rate(config.weights), precision=precision,
                         cached_views=cached, candidates=candidates)


def memory_check(dataset, config) -> tuple[int | None, str | None]:
    """(bytes needed, None) when training fits in memory, else (None, what to do instead)."""
    try:
        candidates = preset_named(state.preset()).candidates(dataset, config) \
            if state.preset() == "Best accuracy" else None  # Best: its largest image size and views count
        return planning.check_memory(config, len(dataset), candidates=candidates), None
    except ResourceLimitError as exc:
        return None, str(exc)
