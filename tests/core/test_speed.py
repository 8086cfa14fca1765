"""VGG16's speed on this machine, remembered beside the runs: read back on the same hardware only."""

from __future__ import annotations

import json

from quasar_core import speed


def test_a_rate_is_remembered_for_this_machine(tmp_path):
    assert speed.remembered(tmp_path) is None  # nothing measured yet
    speed.remember(tmp_path, 3.4)
    assert speed.remembered(tmp_path) == 3.4
    kept = json.loads((tmp_path / speed.FILE_NAME).read_text())
    assert kept["machine"] == speed.machine() and " cores" in kept["machine"]
    assert speed.FILE_NAME.startswith(".")  # never listed as a workspace's folder


def test_a_rate_from_other_hardware_or_a_broken_file_is_not_trusted(tmp_path):
    path = tmp_path / speed.FILE_NAME
    path.write_text(json.dumps({"machine": "Another CPU · 64 cores", "rate_at_224": 40.0}))
    assert speed.remembered(tmp_path) is None
    for rate in (0, -1, "fast", True, None):
        path.write_text(json.dumps({"machine": speed.machine(), "rate_at_224": rate}))
        assert speed.remembered(tmp_path) is None, rate
    path.write_text("{not json")
    assert speed.remembered(tmp_path) is None


def test_a_folder_that_cannot_be_written_only_means_measuring_again(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    speed.remember(blocked / "runs", 3.4)  # its parent is a file: nothing is raised
    assert speed.remembered(blocked / "runs") is None
