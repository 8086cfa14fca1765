"""Shared helpers for the bench/ scripts: paths, data, peak memory, child processes, results."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
DEFAULT_WEIGHTS = Path("/work/shared/weights/vgg16_imagenet_notop.weights.h5")
DEFAULT_FASHION = REPO_ROOT.parent / "shared" / "datasets" / "fashion-mnist"

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def weights_path() -> str:
    """QUASAR_VGG16_WEIGHTS if set, else the shared copy; exported so the engine finds it too."""
    path = os.environ.get("QUASAR_VGG16_WEIGHTS") or str(DEFAULT_WEIGHTS)
    if not Path(path).is_file():
        sys.exit(f"VGG16 weights not found at {path!r}; set QUASAR_VGG16_WEIGHTS.")
    os.environ["QUASAR_VGG16_WEIGHTS"] = path
    return path


def proc_status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS = now, VmHWM = peak), 0 where unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb() -> float:
    return proc_status_kib("VmRSS") / 1024


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (VmHWM; ru_maxrss where /proc is missing)."""
    peak = proc_status_kib("VmHWM")
    if not peak:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return peak / 1024


def system_busy_seconds() -> float:
    """CPU seconds all processes have spent busy since boot, summed over cores (/proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class Stopwatch:
    """Wall time, this process's CPU time, and how much CPU other processes took meanwhile.

    `others_share` is the other processes' CPU time over (wall x cores): 0 on a quiet machine;
    0.5 means half the machine was busy with someone else's work, so wall times are inflated.
    """

    def __init__(self):
        self.wall0, self.cpu0, self.busy0 = time.perf_counter(), own_cpu_seconds(), system_busy_seconds()

    def stop(self) -> dict:
        wall = time.perf_counter() - self.wall0
        cpu = own_cpu_seconds() - self.cpu0
        others = max(0.0, system_busy_seconds() - self.busy0 - cpu)
        return {"wall": wall, "cpu": cpu, "others_share": others / max(wall * (os.cpu_count() or 1), 1e-9)}


def others_busy_share(seconds: float = 3.0) -> float:
    """Fraction of the machine's CPU used by other processes over the next `seconds` (we sleep)."""
    busy0, cpu0 = system_busy_seconds(), own_cpu_seconds()
    time.sleep(seconds)
    others = system_busy_seconds() - busy0 - (own_cpu_seconds() - cpu0)
    return max(0.0, others) / (seconds * (os.cpu_count() or 1))


def wait_for_quiet(max_wait: float, threshold: float = 0.1) -> float:
    """Wait (up to max_wait seconds) until other processes use under `threshold` of the CPU.

    The machine may be shared; timing while others compute would measure them too. Returns
    the last measured share, which the results record.
    """
    deadline = time.monotonic() + max_wait
    share = others_busy_share()
    announced = False
    while share > threshold and time.monotonic() < deadline:
        if not announced:
            print(f"  (other processes use {share:.0%} of the CPU; waiting up to {max_wait:.0f} s for quiet)",
                  flush=True)
            announced = True
        share = others_busy_share(5.0)
    return share


def write_fashion_sets(root: Path, *, train_per_class: int, test_per_class: int, seed: int = 0):
    """Train images (Fashion-MNIST 0..29,999) and unseen test images (30,000+) of the sample's
    five classes, written as PNG class folders by scripts/make_sample_dataset.py's own code."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import make_sample_dataset as msd

    images, labels = msd.read_fashion_mnist(DEFAULT_FASHION)
    train_dir, test_dir = root / "train", root / "test"
    msd.write_set(images, labels, train_dir, 0, msd.SAMPLE_POOL_END, train_per_class, seed)
    msd.write_set(images, labels, test_dir, msd.SAMPLE_POOL_END, len(labels), test_per_class, seed)
    return train_dir, test_dir


def machine_info() -> dict:
    import numpy as np

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {
        "git_commit": commit,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_at_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def run_child(script: Path, arm: str, *extra: str) -> dict:
    """Run `script --child ARM ...` in a fresh Python; it writes its result as JSON to --out."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    try:
        command = [sys.executable, str(script), "--child", arm, "--out", str(out), *extra]
        completed = subprocess.run(command, check=False, cwd=REPO_ROOT, env=os.environ.copy())
        if completed.returncode != 0:
            raise SystemExit(f"child {arm!r} failed with exit code {completed.returncode}")
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def write_results(name: str, data: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def tf_versions() -> dict:
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__}
