"""The run folder format (quasar_core.runs.folder): file names in one place, atomic writes, a full disk said
plainly, statuses that tell a dead training from a slow one, the writer, listing and deleting.

No training here: run folders are written by hand or by RunWriter.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from quasar_core.config import TrainConfig
from quasar_core.errors import DiskFullError, QuasarError
from quasar_core.runs import folder
from quasar_core.runs.folder import (FILES, HEARTBEAT_SECONDS, STALE_SECONDS, Run, RunWriter, Status, atomic_write,
                                     delete_run, list_runs, new_run_dir, read_arrays, read_json, write_arrays,
                                     write_json)
from tests.core.runs.support import dead_pid

REPO = Path(__file__).resolve().parents[3]
SOURCE_FOLDERS = ("quasar_core", "ui", "pages")
# Names with a dot are file names; "examples" and "checkpoint" are folder names and ordinary words too.
RUN_FILE_NAMES = sorted(value for key, value in vars(FILES).items()
                        if key.isupper() and isinstance(value, str) and "." in value)
# Literals that are the same text as a run file name but not a run file, each with the reason.
NOT_RUN_FILES = {
    ("quasar_core/runs/model_files.py", "config.json"): "the member of Keras' own .keras archive",
}
# Folders of another format, whose files happen to share names with run files.
OTHER_FORMATS = {
    "quasar_core/runs/share_app.py": "writes the shared app's folder, read by its template",
    "quasar_core/runs/share_app_template/": "the shared app itself: runs where quasar_core is not installed",
}


# --------------------------------------------------------------------------- FILES: the one owner of names


def docstring_nodes(tree) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                found.add(id(first.value))
    return found


def literal_run_file_names(source: str) -> list[tuple[int, str]]:
    """(line, name) of every run file name written as a name in a string literal that is not a docstring.

    Written as a name: the whole literal ("metrics.json"), a path part (f"{folder}/head.npz", "examples/"), or in
    quotes inside the literal (code in a template: predict.py). A sentence that mentions a file ("the zip holds
    model.keras") is prose, not a name; comments are not literals at all.
    """
    tree = ast.parse(source)
    skip = docstring_nodes(tree)
    patterns = {name: re.compile(rf"(^|/)\s*{re.escape(name)}\s*($|/)|[\"']{re.escape(name)}[\"']")
                for name in RUN_FILE_NAMES}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            found += [(node.lineno, name) for name, pattern in patterns.items() if pattern.search(node.value)]
    return found


def test_the_scanner_sees_literals_and_ignores_docstrings_and_comments():
    source = '''"""Writes metrics.json (a docstring)."""
# head.npz, in a comment
def f(path):
    """Reads status.json."""
    x = f"{path}/tuned.npz"
    return path / "metrics.json", 'labels.json' + "x", "my_metrics.json", "a.status.json", "config.json.bak"
SCRIPT = "model = load(HERE / 'model.keras')"
HELP = "the zip holds model.keras and labels.json"
'''
    assert sorted(literal_run_file_names(source)) == [(5, "tuned.npz"), (6, "labels.json"), (6, "metrics.json"),
                                                      (7, "model.keras")]


def test_run_file_names_are_written_only_in_folder_py():
    """Every other module says FILES.METRICS, never "metrics.json": the format has one owner."""
    assert {"metrics.json", "head.npz", "status.json", "model.keras"} <= set(RUN_FILE_NAMES)
    offenders = []
    for top in SOURCE_FOLDERS:
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel == "quasar_core/runs/folder.py" or any(rel.startswith(other) for other in OTHER_FORMATS):
                continue
            for line, name in literal_run_file_names(path.read_text(encoding="utf-8")):
                if (rel, name) not in NOT_RUN_FILES:
                    offenders.append(f"{rel}:{line}: {name!r} (use FILES)")
    assert not offenders, "\n".join(offenders)


def test_file_names_are_distinct():
    names = [value for key, value in vars(FILES).items() if key.isupper()]
    assert len(names) == len(set(names))


# --------------------------------------------------------------------------- atomic writes and a full disk


class FailingWrites:
    """Stands in for `open` inside folder.py: the write fails with `code` after `after` bytes reached the file."""

    def __init__(self, code: int, after: int = 3):
        self.code, self.after, self.opened = code, after, []

    def __call__(self, path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        self.opened.append(Path(path))
        code, after = self.code, self.after

        class Handle:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                handle.close()

            def write(self, data):
                handle.write(data[:after])
                handle.flush()
                raise OSError(code, os.strerror(code))

            def __getattr__(self, name):
                return getattr(handle, name)

        return Handle()


def test_atomic_write_replaces_the_whole_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "deep" / "status.json"
    atomic_write(target, b"first")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["status.json"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_leaves_no_file_and_no_temporary_file_and_says_so(tmp_path, monkeypatch, code):
    failing = FailingWrites(code)
    monkeypatch.setattr(folder, "open", failing, raising=False)
    with pytest.raises(DiskFullError, match=r"The disk is full: head\.npz could not be saved") as raised:
        atomic_write(tmp_path / "head.npz", b"x" * 100)
    assert "Delete old runs" in str(raised.value)
    assert failing.opened and failing.opened[0].name.endswith(".tmp")  # it did start writing a temporary file
    assert list(tmp_path.iterdir()) == []


def test_a_failed_overwrite_keeps_the_old_file_whole(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    write_json(target, {"accuracy": 0.5})
    monkeypatch.setattr(folder, "open", FailingWrites(errno.ENOSPC), raising=False)
    with pytest.raises(DiskFullError):
        write_json(target, {"accuracy": 0.9})
    assert read_json(target) == {"accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_failed_rename_leaves_no_temporary_file(tmp_path, monkeypatch):
    def no_space(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(folder.os, "replace", no_space)
    with pytest.raises(DiskFullError):
        atomic_write(tmp_path / "labels.json", b"[]")
    assert list(tmp_path.iterdir()) == []


def test_other_write_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(folder, "open", FailingWrites(errno.EACCES), raising=False)
    with pytest.raises(OSError) as raised:
        atomic_write(tmp_path / "config.json", b"{}")
    assert not isinstance(raised.value, DiskFullError) and raised.value.errno == errno.EACCES
    assert list(tmp_path.iterdir()) == []


def test_disk_error_maps_only_enospc_and_edquot():
    assert isinstance(folder.disk_error(OSError(errno.ENOSPC, "full"), Path("a/head.npz")), DiskFullError)
    assert isinstance(folder.disk_error(OSError(errno.EDQUOT, "quota"), Path("a/head.npz")), DiskFullError)
    other = OSError(errno.EIO, "io")
    assert folder.disk_error(other, Path("x")) is other
    assert issubclass(DiskFullError, QuasarError)  # the CLI and the jobs show its message as it is


def test_json_and_arrays_round_trip_and_have_defaults(tmp_path):
    write_json(tmp_path / "status.json", {"state": "running", "name": "café"})
    assert read_json(tmp_path / "status.json") == {"state": "running", "name": "café"}
    assert "café" in (tmp_path / "status.json").read_text(encoding="utf-8")  # readable, not escaped
    assert read_json(tmp_path / "missing.json", {"x": 1}) == {"x": 1}
    (tmp_path / "broken.json").write_text("{")
    assert read_json(tmp_path / "broken.json") is None
    arrays = {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.ones(3)}
    write_arrays(tmp_path / "head.npz", arrays)
    back = read_arrays(tmp_path / "head.npz")
    assert set(back) == {"kernel", "bias"} and np.array_equal(back["kernel"], arrays["kernel"])
    assert read_arrays(tmp_path / "missing.npz") is None
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    assert read_arrays(tmp_path / "bad.npz") is None
    np.savez(tmp_path / "pickled.npz", obj=np.array([{"a": 1}], dtype=object))
    assert read_arrays(tmp_path / "pickled.npz") is None  # pickles are never loaded


# --------------------------------------------------------------------------- Status.effective()


def running(**changes) -> Status:
    return Status(**{"state": "running", "started": time.time() - 60, "pid": os.getpid(),
                     "host": socket.gethostname(), "heartbeat": time.time(), "phase": "fine-tuning", **changes})


def test_a_running_status_whose_process_is_alive_stays_running():
    status = running()
    assert status.effective() is status


def test_a_running_status_whose_process_is_dead_reads_as_interrupted_with_the_reason():
    status = running(pid=dead_pid(), epochs_done=3)
    seen = status.effective()
    assert seen.state == "interrupted"
    assert seen.message == ("The training stopped while fine-tuning: the server or the program was stopped before "
                            "it finished.")
    assert seen.epochs_done == 3 and seen.pid == status.pid  # everything else kept
    assert status.state == "running"  # the status itself is not changed
    assert "while" not in running(pid=dead_pid(), phase="").effective().message


def test_another_hosts_stale_heartbeat_reads_as_interrupted_and_a_fresh_one_as_running():
    other = {"host": socket.gethostname() + "-elsewhere", "pid": 1}
    fresh = running(**other, heartbeat=time.time() - STALE_SECONDS / 2)
    assert fresh.effective().state == "running"  # its pid means nothing here: only the heartbeat counts
    stale = running(**other, heartbeat=time.time() - STALE_SECONDS - 5)
    assert stale.effective().state == "interrupted"
    assert "stopped while fine-tuning" in stale.effective().message


def test_a_process_of_another_user_counts_as_alive(monkeypatch):
    def not_yours(pid, signal):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(folder.os, "kill", not_yours)
    assert folder.process_alive(12345)
    assert running(pid=12345).effective().state == "running"


@pytest.mark.parametrize("state", ["done", "cancelled", "failed", "interrupted"])
def test_finished_states_are_what_they_say(state):
    status = running(state=state, pid=dead_pid(), message="as written")
    assert status.effective() is status


def test_status_round_trips_and_ignores_unknown_keys():
    status = running(timings={"features": 1.5}, source="shapes.zip")
    assert Status.from_dict(status.to_dict()) == status
    assert Status.from_dict({**status.to_dict(), "from_the_future": 1}) == status
    assert Status.from_dict(None) == Status()
    assert Status(started=10.0, finished=12.5).seconds == 2.5 and Status().seconds == 0.0


# --------------------------------------------------------------------------- RunWriter and Run


@pytest.fixture
def writer(tmp_path):
    return RunWriter(tmp_path / "run", TrainConfig(weights="none", image_size=32), ["cat", "dog"])


def test_the_writer_starts_a_run_that_opens_as_running_without_a_model(writer):
    assert sorted(p.name for p in writer.path.iterdir()) == sorted([FILES.CONFIG, FILES.LABELS, FILES.STATUS])
    run = Run.open(writer.path)
    assert run.state == "running" and not run.has_model and not run.recoverable
    assert run.labels == ["cat", "dog"] and run.config == TrainConfig(weights="none", image_size=32)
    assert run.status.pid == os.getpid() and run.status.host == socket.gethostname()
    assert run.metrics is None and run.report is None and run.history == []


def test_history_rows_are_written_as_they_come_and_fine_tuning_epochs_counted(writer):
    writer.add_history({"phase": "head", "strength": 0.1})
    writer.add_history({"phase": "fine-tune", "epoch": 1})
    assert read_json(writer.path / FILES.HISTORY) == [{"phase": "head", "strength": 0.1},
                                                      {"phase": "fine-tune", "epoch": 1}]
    assert read_json(writer.path / FILES.STATUS)["epochs_done"] == 1


def test_beat_writes_on_a_new_phase_and_after_the_heartbeat_interval(writer, monkeypatch):
    writes = []
    original = folder.write_json
    monkeypatch.setattr(folder, "write_json", lambda path, data: (writes.append(Path(path).name),
                                                                   original(path, data)))
    writer.beat("reading photos")
    writer.beat("reading photos")  # same phase, just after: nothing to write
    assert writes == [FILES.STATUS]
    assert read_json(writer.path / FILES.STATUS)["phase"] == "reading photos"
    monkeypatch.setattr(writer, "_last_beat", time.time() - HEARTBEAT_SECONDS - 1)
    writer.beat()
    assert writes == [FILES.STATUS, FILES.STATUS]  # a slow phase still shows it is alive


def test_examples_finish_and_a_usable_run(writer):
    rel = writer.write_example(3, b"\xff\xd8jpeg")
    assert rel == f"{FILES.EXAMPLES}/00003.jpg" and (writer.path / rel).read_bytes() == b"\xff\xd8jpeg"
    writer.checkpoint_dir().mkdir()
    (writer.checkpoint_dir() / "checkpoint.json").write_text("{}")
    writer.write_arrays(FILES.HEAD, {"kernel": np.zeros((2, 2))})
    writer.finish("done", "Trained.", precision="float32")
    assert not writer.checkpoint_dir().exists()  # the saved model supersedes it
    run = Run.open(writer.path)
    assert run.state == "done" and run.has_model and run.status.message == "Trained."
    assert run.status.finished >= run.status.started and run.status.phase == ""
    assert run.example_path({"example": rel}) == writer.path / rel
    assert run.example_path({"example": "examples/missing.jpg"}) is None and run.example_path({}) is None
    assert run.arrays(FILES.HEAD)["kernel"].shape == (2, 2)
    assert run.read(FILES.DOCTOR, "none") == "none"
    assert run.size_bytes() == sum(p.stat().st_size for p in writer.path.rglob("*") if p.is_file())


def test_a_failed_run_never_has_a_model_even_with_a_head(writer):
    writer.write_arrays(FILES.HEAD, {"kernel": np.zeros((2, 2))})
    writer.finish("failed", "The disk is full.")
    assert not Run.open(writer.path).has_model


def test_an_interrupted_fine_tuning_with_a_checkpoint_is_recoverable(writer):
    writer.write_arrays(FILES.HEAD, {"kernel": np.zeros((2, 2))})
    writer.checkpoint_dir().mkdir()
    (writer.checkpoint_dir() / "checkpoint.json").write_text("{}")
    write_json(writer.path / FILES.STATUS, {**writer.status.to_dict(), "pid": dead_pid()})
    run = Run.open(writer.path)
    assert run.state == "interrupted" and run.recoverable and run.has_model  # the head saved before fine-tuning


def test_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(QuasarError, match="not a Quasar run folder"):
        Run.open(tmp_path)


# --------------------------------------------------------------------------- listing and deleting


def make_run_like(path: Path, *, started: float | None = None) -> Path:
    path.mkdir(parents=True)
    write_json(path / FILES.CONFIG, TrainConfig(weights="none").to_dict())
    if started is not None:
        write_json(path / FILES.STATUS, {"state": "done", "started": started})
    return path


def test_list_runs_newest_first_skipping_what_is_not_a_run(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    made = [make_run_like(root / f"run-{n}", started=1000.0 + n) for n in range(3)]
    (root / "not-a-run").mkdir()
    (root / "damaged").mkdir()
    (root / "damaged" / FILES.CONFIG).write_text("{not json")
    (root / "bad-settings").mkdir()
    write_json(root / "bad-settings" / FILES.CONFIG, {"no_such_setting": 1})
    (root / "stray.txt").write_text("hello")
    assert [run.path for run in list_runs(root)] == list(reversed(made))
    monkeypatch.setenv(folder.RUNS_ENV, str(root))
    assert [run.path for run in list_runs()] == list(reversed(made))  # QUASAR_RUNS_DIR is the default


def test_runs_started_in_the_same_second_are_listed_by_start_time(tmp_path):
    """Folder names tell the second, then a random token: the token must not decide the order."""
    for name, started in (("20240101-120000-ffff", 100.0), ("20240101-120000-0000", 200.0),
                          ("20240101-115959-aaaa", 50.0)):
        make_run_like(tmp_path / name, started=started)
    assert [run.name for run in list_runs(tmp_path)] == [
        "20240101-120000-0000", "20240101-120000-ffff", "20240101-115959-aaaa"]


def test_list_runs_of_a_missing_root_is_empty(tmp_path):
    assert list_runs(tmp_path / "nowhere") == []


def test_new_run_dirs_are_distinct_unguessable_folders_under_the_root(tmp_path):
    made = {new_run_dir(tmp_path) for _ in range(5)}
    assert len(made) == 5
    assert all(path.is_dir() and path.parent == tmp_path for path in made)
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{8}", path.name) for path in made)


def test_delete_run_removes_a_run_under_the_root(tmp_path):
    run = make_run_like(tmp_path / "20240101-000000-abcd")
    delete_run(run, tmp_path)
    assert not run.exists()


def test_delete_run_refuses_anything_but_a_run_directly_under_the_root(tmp_path):
    root = tmp_path / "runs"
    outside = make_run_like(tmp_path / "elsewhere" / "run")
    nested = make_run_like(root / "a" / "b")
    dotted = root / ".." / "elsewhere" / "run"
    link = root / "link"
    os.symlink(outside, link)
    not_a_run = root / "plain"
    not_a_run.mkdir()
    for path in (outside, nested, dotted, link, not_a_run, root, tmp_path, root / "missing"):
        with pytest.raises(QuasarError, match="nothing was deleted"):
            delete_run(path, root)
    assert (outside / FILES.CONFIG).is_file() and (nested / FILES.CONFIG).is_file() and not_a_run.is_dir()


def test_delete_run_uses_the_configured_root_by_default(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    mine = make_run_like(root / "mine")
    theirs = make_run_like(tmp_path / "other-root" / "theirs")
    monkeypatch.setenv(folder.RUNS_ENV, str(root))
    with pytest.raises(QuasarError):
        delete_run(theirs)
    delete_run(mine)
    assert not mine.exists() and theirs.exists()


def test_default_runs_root(monkeypatch, tmp_path):
    monkeypatch.delenv(folder.RUNS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert folder.default_runs_root() == (tmp_path / "runs").resolve()
    monkeypatch.setenv(folder.RUNS_ENV, str(tmp_path / "elsewhere"))
    assert folder.default_runs_root() == (tmp_path / "elsewhere").resolve()


def test_status_file_is_plain_json(writer):
    data = json.loads((writer.path / FILES.STATUS).read_text(encoding="utf-8"))
    assert set(data) == set(Status.__dataclass_fields__)
