"""The training-job queue: admission in arrival order, cancelling, failures, owners.

Jobs are held at their start by a "gate" in their base loader (which the queue calls in the
job's thread once the job is admitted), so the tests decide when each job may go on.
"""

from __future__ import annotations

import threading

import pytest

from quasar_core import jobs
from quasar_core.backbone import load_vgg16
from quasar_core.config import TrainConfig
from quasar_core.jobs import CONCURRENCY_ENV, JobQueue, TrainingJob

WAIT = 60  # generous upper bounds for joins; never asserted as timings


class Gate:
    """A base loader that reports when the job started and waits to be opened."""

    def __init__(self, base, *, before_return=None):
        self.base = base
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.before_return = before_return

    def __call__(self):
        self.entered.set()
        assert self.opened.wait(WAIT), "the test never opened the gate"
        if self.before_return:
            self.before_return()
        return self.base

    def open(self):
        self.opened.set()


@pytest.fixture
def queue():
    return JobQueue(max_running=1)


@pytest.fixture
def gates():
    made = []
    yield made
    for gate in made:  # never leave a job thread waiting
        gate.open()


def job(dataset, config, run_dir, loader, owner="alice"):
    return TrainingJob(dataset, config, run_dir, owner=owner, base_loader=loader)


def test_second_job_waits_until_the_first_finishes(queue, gates, dataset, tiny_config, base, runs_dir):
    first_gate = Gate(base)
    seen_when_second_started = {}

    def second_loader():
        seen_when_second_started["first_state"] = first.state
        return base

    gates.append(first_gate)
    first = job(dataset, tiny_config.replace(epochs=2), runs_dir / "first", first_gate)
    queue.submit(first)
    assert first_gate.entered.wait(WAIT)
    second = queue.submit(job(dataset, tiny_config.replace(epochs=2), runs_dir / "second", second_loader,
                              owner="bob"))
    first_view, second_view = first.snapshot(queue), second.snapshot(queue)
    assert (first_view.state, first_view.queue_position) == ("running", 0)
    assert (second_view.state, second_view.queue_position) == ("queued", 1)
    assert not queue.wait(second, timeout=0.5)  # still waiting while the first holds the only slot
    assert "first_state" not in seen_when_second_started
    first_gate.open()
    assert queue.wait(first, WAIT) and queue.wait(second, WAIT)
    assert seen_when_second_started["first_state"] == "done"
    for finished in (first, second):
        view = finished.snapshot(queue)
        assert (view.state, view.queue_position, view.error) == ("done", 0, None)
        assert [row["epoch"] for row in view.history] == [1, 2]
        assert view.progress is not None
        assert finished.run.state == "done" and finished.run.has_model
        assert finished.dataset is None  # the images are let go once the job ends


def test_cancelling_a_queued_job_never_runs_it(queue, gates, dataset, tiny_config, base, runs_dir):
    first_gate = Gate(base, before_return=lambda: first.cancel())
    gates.append(first_gate)
    first = job(dataset, tiny_config, runs_dir / "first", first_gate)
    queue.submit(first)
    assert first_gate.entered.wait(WAIT)
    started = threading.Event()

    def second_loader():
        started.set()
        return base

    second = queue.submit(job(dataset, tiny_config, runs_dir / "second", second_loader))
    assert second.snapshot(queue).queue_position == 1
    second.cancel()
    assert queue.wait(second, WAIT)
    assert second.snapshot(queue).state == "cancelled"
    assert second.snapshot(queue).queue_position == 0
    assert not started.is_set() and second.run is None
    assert not (runs_dir / "second").exists()
    first_gate.open()
    assert queue.wait(first, WAIT)


def test_cancelling_a_running_job_ends_it_cancelled(queue, dataset, tiny_config, base, runs_dir):
    def loader():
        running.cancel()  # the user presses Stop while VGG16 is being loaded
        return base

    running = job(dataset, tiny_config, runs_dir / "run", loader)
    queue.submit(running)
    assert queue.wait(running, WAIT)
    assert (running.state, running.error) == ("cancelled", None)
    assert running.run.state == "cancelled" and not running.run.has_model


def test_a_failing_job_ends_failed_with_the_message_and_frees_its_slot(queue, dataset, tiny_config, base,
                                                                      runs_dir, tmp_path):
    missing = str(tmp_path / "missing.weights.h5")
    bad = tiny_config.replace(weights=missing)
    failing = queue.submit(job(dataset, bad, runs_dir / "bad", lambda: load_vgg16(bad.weights)))
    after = queue.submit(job(dataset, tiny_config.replace(epochs=1), runs_dir / "after", lambda: base))
    assert queue.wait(failing, WAIT) and queue.wait(after, WAIT)
    view = failing.snapshot(queue)
    assert view.state == "failed"
    assert missing in view.error and "'none'" in view.error  # the user-facing message, as it is
    assert after.state == "done"


def test_an_unexpected_error_is_reported_not_raised(queue, dataset, tiny_config, runs_dir, capsys):
    def loader():
        raise RuntimeError("disk on fire")

    broken = queue.submit(job(dataset, tiny_config, runs_dir / "broken", loader))
    assert queue.wait(broken, WAIT)
    assert broken.state == "failed"
    assert "went wrong inside the training (RuntimeError)" in broken.error and "press Start" in broken.error
    assert "disk on fire" not in broken.error  # internals stay in the log, not on the user's screen
    assert "RuntimeError: disk on fire" in capsys.readouterr().err  # the traceback goes to the server log


def test_a_failing_training_config_is_reported(queue, dataset, base, runs_dir):
    """A setting refused deep inside training (a QuasarError) ends the job failed with its message."""
    from quasar_core.data import Dataset
    from quasar_core.errors import DatasetError

    class Refusing(Dataset):
        def images(self, indices=None, *, size):
            raise DatasetError("These pictures cannot be read any more; load them again.")

    data = Refusing(samples=dataset.samples, labels=dataset.labels, report=dataset.report)
    refused = queue.submit(job(data, TrainConfig(weights="none", image_size=32, epochs=1), runs_dir / "r",
                               lambda: base))
    assert queue.wait(refused, WAIT)
    assert (refused.state, refused.error) == ("failed", "These pictures cannot be read any more; load them again.")
    assert (runs_dir / "r" / "status.json").is_file()
    from quasar_core.runs import Run

    assert Run.open(runs_dir / "r").state == "failed"


def test_two_slots_run_two_jobs_at_once(gates, dataset, tiny_config, base, runs_dir):
    queue = JobQueue(max_running=2)
    made = []
    for name in ("a", "b", "c"):
        gate = Gate(base, before_return=lambda name=name: by_name[name].cancel())
        gates.append(gate)
        made.append(gate)
    by_name = {name: job(dataset, tiny_config, runs_dir / name, gate) for name, gate in zip("abc", made)}
    for name in "abc":
        queue.submit(by_name[name])
    assert made[0].entered.wait(WAIT) and made[1].entered.wait(WAIT)
    assert [by_name[n].snapshot(queue).state for n in "abc"] == ["running", "running", "queued"]
    assert by_name["c"].snapshot(queue).queue_position == 1
    assert not made[2].entered.is_set()
    for gate in made:
        gate.open()
    assert all(queue.wait(by_name[n], WAIT) for n in "abc")
    assert made[2].entered.is_set()


def test_owners_are_kept_apart(queue, dataset, tiny_config, base, runs_dir):
    submitted = []
    for number, owner in enumerate(["alice", "bob", "alice"]):
        new = job(dataset, tiny_config, runs_dir / f"{owner}-{number}", lambda: base, owner=owner)
        new.cancel()  # cheap: each stops before training
        submitted.append(queue.submit(new))
        assert queue.wait(submitted[-1], WAIT)
    alice_old, bob, alice_new = submitted
    assert queue.latest_for("alice") is alice_new
    assert queue.latest_for("bob") is bob
    assert queue.latest_for("carol") is None
    assert queue.get(alice_old.job_id) is alice_old
    assert queue.get("no-such-job") is None
    assert len({j.job_id for j in submitted}) == 3


def test_snapshot_is_a_copy(queue, dataset, tiny_config, base, runs_dir):
    done = queue.submit(job(dataset, tiny_config.replace(epochs=1), runs_dir / "x", lambda: base))
    assert queue.wait(done, WAIT)
    view = done.snapshot(queue)
    view.history.append({"epoch": 99})
    assert len(done.snapshot(queue).history) == 1
    assert view.run_dir == runs_dir / "x" and view.job_id == done.job_id


def test_concurrency_from_the_environment(monkeypatch):
    monkeypatch.setenv(CONCURRENCY_ENV, "3")
    assert JobQueue().max_running == 3
    monkeypatch.delenv(CONCURRENCY_ENV)
    assert JobQueue().max_running == 1
    with pytest.raises(ValueError, match="0"):
        JobQueue(max_running=0)


def test_default_queue_is_shared():
    assert jobs.default_queue() is jobs.default_queue()
