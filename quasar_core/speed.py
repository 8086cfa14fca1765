"""This machine's VGG16 speed, measured once and remembered in a file beside the runs.

Configure's time estimate needs how many photos a second VGG16 reads here
(planning.measure_forward_rate). Measuring it takes a few seconds and needs VGG16 loaded, so
it is done once per machine and kept in ``<runs root>/.vgg16-speed.json``: a restarted server,
and every visit after the first, read it back. A file written on other hardware (another CPU
model or number of cores, as when a runs folder is copied) is not trusted: it is measured again.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from quasar_core.errors import QuasarError
from quasar_core.runs.folder import read_json, write_json

FILE_NAME = ".vgg16-speed.json"  # a dot-file: never taken for a workspace's folder


def machine() -> str:
    """What the speed depends on, in one line: the CPU model and the cores this process may use."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return f"{model} · {cores} cores"


def remembered(folder: str | Path) -> float | None:
    """The rate kept in `folder` for this machine (photos per second at 224 px, float32), or None."""
    data = read_json(Path(folder) / FILE_NAME)
    if not isinstance(data, dict) or data.get("machine") != machine():
        return None
    rate = data.get("rate_at_224")
    return float(rate) if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0 else None


def remember(folder: str | Path, rate: float) -> None:
    """Keep `rate` for this machine; a folder that cannot be written only means measuring again next time."""
    try:
        write_json(Path(folder) / FILE_NAME, {"machine": machine(), "rate_at_224": float(rate),
                                              "measured": time.strftime("%Y-%m-%d %H:%M:%S")})
    except (OSError, QuasarError):
        pass
