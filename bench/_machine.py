"""Memory and CPU readings for the bench/ scripts: RSS and peak RSS from /proc, CPU seconds, other
processes' share of the CPU, waiting for a quiet machine, and an RSS sampler thread.

Re-exported by _common (the scripts use them as common.*); nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

def proc_status_kib(field: str, pid: int | str = "self") -> int:
    """A field of /proc/<pid>/status in KiB (VmRSS = now, VmHWM = peak), 0 where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pid: int | str = "self") -> float:
    return proc_status_kib("VmRSS", pid) / 1024


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (VmHWM; ru_maxrss where /proc is missing)."""
    peak = proc_status_kib("VmHWM")
    if not peak:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return peak / 1024


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs). True if it worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


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


def cores() -> int:
    return os.cpu_count() or 1


class Stopwatch:
    """Wall time, this process's CPU time, and how much CPU other processes took meanwhile.

    `others_share` is the other processes' CPU time over (wall x cores): 0 on a quiet machine;
    0.5 means half the machine was busy with someone else's work, so wall times are inflated.
    Pass `extra_cpu` to stop() for CPU spent by our own children (not in os.times until waited).
    """

    def __init__(self):
        self.wall0, self.cpu0, self.busy0 = time.perf_counter(), own_cpu_seconds(), system_busy_seconds()

    def stop(self, extra_cpu: float = 0.0) -> dict:
        wall = time.perf_counter() - self.wall0
        cpu = own_cpu_seconds() - self.cpu0
        others = max(0.0, system_busy_seconds() - self.busy0 - cpu - extra_cpu)
        return {"wall": wall, "cpu": cpu + extra_cpu,
                "others_share": min(1.0, others / max(wall * cores(), 1e-9))}


def others_busy_share(seconds: float = 3.0) -> float:
    """Fraction of the machine's CPU used by other processes over the next `seconds` (we sleep)."""
    busy0, cpu0 = system_busy_seconds(), own_cpu_seconds()
    time.sleep(seconds)
    others = system_busy_seconds() - busy0 - (own_cpu_seconds() - cpu0)
    return min(1.0, max(0.0, others) / (seconds * cores()))


def wait_for_quiet(max_wait: float, threshold: float = 0.1, *, probe_seconds: float = 3.0) -> float:
    """Wait (up to max_wait seconds) until other processes use under `threshold` of the CPU.

    The machine may be shared; timing while others compute would measure them too. Returns
    the last measured share, which the results record.
    """
    deadline = time.monotonic() + max_wait
    share = others_busy_share(probe_seconds if max_wait > 0 else 1.0)
    announced = False
    while share > threshold and time.monotonic() < deadline:
        if not announced:
            print(f"  (other processes use {share:.0%} of the CPU; waiting up to {max_wait:.0f} s for quiet)",
                  flush=True)
            announced = True
        share = others_busy_share(5.0)
    if share > threshold:
        print(f"  (still {share:.0%} of the CPU used by others: measuring anyway; these numbers are inflated)",
              flush=True)
    return share


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds in a thread (a memory timeline)."""

    def __init__(self, pid: int | str = "self", interval: float = 0.5):
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._t0 = time.perf_counter()

    def _loop(self):
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self._t0, rss_mb(self.pid)))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> float:
        return max((mb for _, mb in self.samples), default=0.0)
