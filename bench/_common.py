"""Shared helpers for the bench/ scripts: paths, child processes, phase spans and the results JSON (with
the git commit and the machine); the photo sets (_datasets.py) and the memory and CPU readings (_machine.py)
are re-exported here.

Nothing here imports TensorFlow; scripts import it where they need it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_WEIGHTS = Path("/work/shared/weights/vgg16_imagenet_notop.weights.h5")
SAMPLE_DIR = REPO_ROOT / "sample_data" / "fashion"

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Photo sets and machine readings, used by the scripts as common.*:
from _datasets import (DEFAULT_FASHION, FLOWERS_ENV, SHARED_FLOWERS_ZIP, PHOTO_SUFFIXES, photos_dir,
                       write_fashion_sets, flowers_dir, write_flowers_sets, write_subset, count_photos)  # noqa: E402,F401
from _machine import (proc_status_kib, rss_mb, peak_rss_mb, reset_peak_rss, system_busy_seconds,
                      own_cpu_seconds, cores, Stopwatch, others_busy_share, wait_for_quiet, RssSampler)  # noqa: E402,F401


# --------------------------------------------------------------------------- arguments


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every script has: --quick, --max-wait, --keep, --tmp."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0], epilog=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes to check that the script works (numbers meaningless); results go to "
                        "bench/results/<name>.quick.json")
    p.add_argument("--max-wait", type=float, default=None,
                   help="seconds to wait, before each measurement, for other processes to leave the CPU "
                        "(default 600, with --quick 0)")
    p.add_argument("--quiet-threshold", type=float, default=0.1,
                   help="other processes' CPU share counted as quiet (default %(default)s)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folders (runs, caches) and print them")
    p.add_argument("--tmp", default=None, help="where temporary folders go (default: the system's temp folder)")
    return p


def finish_args(args):
    """Defaults that depend on --quick."""
    if args.max_wait is None:
        args.max_wait = 0.0 if args.quick else 600.0
    return args


def begin(args) -> tuple[float, dict]:
    """A script's start once its arguments are parsed: --quick's defaults, the weights checked, the machine
    printed. Returns (perf_counter at the start, machine_info())."""
    finish_args(args)
    started = time.perf_counter()
    weights_path()
    info = machine_info()
    print_machine(info)
    return started, info


def quiet(args) -> float:
    """wait_for_quiet with the script's flags; returns other processes' CPU share just before measuring."""
    return wait_for_quiet(args.max_wait, args.quiet_threshold)


@contextlib.contextmanager
def work_dir(args, prefix: str):
    """A temporary folder for one benchmark run; kept (and printed) with --keep."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=args.tmp))
    try:
        yield path
    finally:
        if args.keep:
            print(f"(kept {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


def weights_path() -> str:
    """QUASAR_VGG16_WEIGHTS if set, else the shared copy; exported so the engine (and children) find it too."""
    path = os.environ.get("QUASAR_VGG16_WEIGHTS") or str(DEFAULT_WEIGHTS)
    if not Path(path).is_file():
        sys.exit(f"VGG16 weights not found at {path!r}; set QUASAR_VGG16_WEIGHTS.")
    os.environ["QUASAR_VGG16_WEIGHTS"] = path
    return path


def shared_base_loader():
    """A base_loader as the dashboard has: VGG16 loaded once (on first call), then the same object."""
    loaded = {}

    def load():
        if "base" not in loaded:
            from quasar_core.backbone import load_vgg16

            loaded["base"] = load_vgg16(weights_path())
        return loaded["base"]

    return load


# --------------------------------------------------------------------------- child processes


def child_env(**overrides) -> dict:
    """os.environ with the weights exported and `overrides` applied (None removes a variable)."""
    env = os.environ.copy()
    env["QUASAR_VGG16_WEIGHTS"] = weights_path()
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def run_process(command: list[str], *, env: dict | None = None, cwd: Path | None = None,
                timeout: float | None = None, log: Path | None = None, check: bool = True) -> dict:
    """Run a command to its exit; its own wall time, CPU time and peak RSS (from wait4), and others' CPU share.

    stdout and stderr go to `log` (or a temporary file) and their tails come back in the result.
    """
    log_file = Path(log) if log else Path(tempfile.mkstemp(prefix="quasar-bench-", suffix=".log")[1])
    launched_at = time.time()
    busy0, started = system_busy_seconds(), time.perf_counter()
    with open(log_file, "wb") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd or REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.02)
    wall = time.perf_counter() - started
    exited_at = time.time()
    process.returncode = os.waitstatus_to_exitcode(status)
    child_cpu = usage.ru_utime + usage.ru_stime
    others = max(0.0, system_busy_seconds() - busy0 - child_cpu)
    text = log_file.read_text(errors="replace")
    if not log:
        log_file.unlink(missing_ok=True)
    result = {
        "command": command, "returncode": process.returncode, "wall": wall, "cpu": child_cpu,
        "cpu_user": usage.ru_utime, "cpu_system": usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux: the child's VmHWM
        "others_share": min(1.0, others / max(wall * cores(), 1e-9)),
        "launched_at": launched_at, "exited_at": exited_at, "output_tail": text[-3000:],
    }
    if check and process.returncode != 0:
        print(text[-6000:], file=sys.stderr)
        raise SystemExit(f"command failed with exit code {process.returncode}: {' '.join(map(str, command))}")
    return result


def run_child(script: Path, arm: str, *extra: str, env: dict | None = None) -> dict:
    """Run `script --child ARM --out JSON ...` in a fresh Python; returns its JSON plus run_process's numbers."""
    fd, name = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    out = Path(name)
    try:
        process = run_process([sys.executable, str(script), "--child", arm, "--out", str(out), *extra],
                              env=env or child_env())
        result = json.loads(out.read_text())
        result["process"] = {k: v for k, v in process.items() if k != "output_tail"}
        return result
    finally:
        out.unlink(missing_ok=True)


# --------------------------------------------------------------------------- phase spans


class Spans:
    """Nested wall-clock spans of the main thread, with exclusive time per category.

    `span(category)` is a context manager; `wrap(obj, name, category)` times every call of a
    function attribute. A span's exclusive time is its duration minus its direct children's,
    so categories add up to the time covered, each instant counted once.
    """

    def __init__(self):
        self.records: list[dict] = []
        self._stack: list[dict] = []
        self._main = threading.main_thread()

    @contextlib.contextmanager
    def span(self, category: str, label: str | None = None):
        if threading.current_thread() is not self._main:
            yield
            return
        record = {"category": category, "label": label or category, "start": time.time(), "children": 0.0,
                  "depth": len(self._stack)}
        self._stack.append(record)
        try:
            yield record
        finally:
            self._stack.pop()
            record["end"] = time.time()
            duration = record["end"] - record["start"]
            record["exclusive"] = max(0.0, duration - record["children"])
            if self._stack:
                self._stack[-1]["children"] += duration
            self.records.append(record)

    def wrap(self, owner, name: str, category: str, label: str | None = None) -> None:
        original = getattr(owner, name)
        spans = self

        def timed(*args, **kwargs):
            with spans.span(category, label or name):
                return original(*args, **kwargs)

        timed.__wrapped__ = original
        setattr(owner, name, timed)

    def exclusive_by_category(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for record in self.records:
            totals[record["category"]] = totals.get(record["category"], 0.0) + record["exclusive"]
        return totals

    def to_dict(self) -> dict:
        return {"records": self.records, "exclusive": self.exclusive_by_category()}


class ImportTimer:
    """Times the first import of heavy packages (a meta-path finder wrapping their loaders).

    Only top-level imports of the named packages are spans (category "imports"); what they
    import themselves is inside.
    """

    def __init__(self, spans: Spans, packages=("tensorflow", "keras", "onnxruntime", "onnx", "sklearn", "scipy",
                                                 "PIL", "h5py", "pandas", "plotly", "tqdm")):
        self.spans, self.packages = spans, set(packages)

    def find_spec(self, name, path=None, target=None):
        if name not in self.packages:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader, spans = spec.loader, self.spans

        class Timed:
            def create_module(self, s):
                return loader.create_module(s)

            def exec_module(self, module):
                with spans.span("imports", f"import {name}"):
                    loader.exec_module(module)

            def __getattr__(self, attribute):
                return getattr(loader, attribute)

        spec.loader = Timed()
        return spec

    def install(self) -> "ImportTimer":
        sys.meta_path.insert(0, self)
        return self


# --------------------------------------------------------------------------- machine and results


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


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

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                                  check=False).stdout.strip()
        except OSError:
            return ""

    flags = cpu_flags()
    return {
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty_files": len([l for l in git("status", "--porcelain").splitlines() if l.strip()]),
        "cpu": cpu,
        "cores": cores(),
        "cpu_flags": sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "vnni"))),
        "int8_instructions": sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"}),
        "native_bfloat16": bool(flags & {"avx512_bf16", "amx_bf16"}),
        "QUASAR_NO_INT8": os.environ.get("QUASAR_NO_INT8", ""),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_at_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "argv": sys.argv,
    }


def tf_versions() -> dict:
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def print_machine(info: dict) -> None:
    flags = ", ".join(info["cpu_flags"]) or "none"
    print(f"{info['cpu']} ({info['cores']} cores; {flags}); commit {info['git_commit']}"
          f"{' + %d changed files' % info['git_dirty_files'] if info['git_dirty_files'] else ''}; "
          f"load average {info['load_average_at_start'][0]:.1f}", flush=True)


def write_results(name: str, data: dict, *, quick: bool = False) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}{'.quick' if quick else ''}.json"
    data.setdefault("machine", {})["load_average_at_end"] = os.getloadavg()
    path.write_text(json.dumps(data, indent=2, default=_json_default))
    return path


def _json_default(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:
        pass
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None when either is missing or b is 0."""
    if a is None or b is None or not b:
        return None
    return a / b


def fmt(value, spec: str = ".2f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def verdict(value: float | None, *, at_most: float | None = None, at_least: float | None = None) -> str:
    if value is None:
        return "not measured"
    ok = (at_most is None or value <= at_most) and (at_least is None or value >= at_least)
    return "met" if ok else "MISSED"


# --------------------------------------------------------------------------- the train process's phases

PHASES = ("python start", "imports", "check", "precision", "weights", "network", "features", "head", "saving",
          "cli", "exit")
PHASE_WORDS = {
    "python start": "interpreter start (to the probe's first line)",
    "imports": "imports (TensorFlow, Keras, ONNX Runtime, scikit-learn, ..., the CLI)",
    "check": "reading, decoding and checking the photos",
    "precision": "precision 'auto': int8 agreement check",
    "weights": "VGG16 built and its weights loaded",
    "network": "feature network traced / int8 model built or loaded",
    "features": "feature pass (decode, resize, VGG16, cache writes)",
    "head": "heads on the folds, kept head, calibration, familiarity",
    "saving": "evaluation, example pictures, run files",
    "cli": "rest of the CLI (arguments, messages)",
    "exit": "interpreter exit (after the CLI returned)",
}


def phase_breakdown(process: dict, spans: dict) -> dict:
    """Seconds per phase of a `_train_probe.py` child: its spans, plus process start and exit from the parent."""
    phases = {name: 0.0 for name in PHASES}
    phases["python start"] = max(0.0, spans["entered"] - process["launched_at"])
    for category, seconds in spans["exclusive"].items():
        phases[category] = phases.get(category, 0.0) + seconds
    phases["exit"] = max(0.0, process["exited_at"] - spans["left"])
    return phases


def run_probe(cli_args: list[str], *, env: dict, spans_file: Path, log: Path | None = None,
              timeout: float | None = None) -> dict:
    """`quasar <cli_args>` through bench/_train_probe.py: run_process's numbers, the spans and the phases."""
    process = run_process([sys.executable, str(BENCH_DIR / "_train_probe.py"), "--spans", str(spans_file), "--",
                           *map(str, cli_args)], env=env, log=log, timeout=timeout)
    spans = json.loads(Path(spans_file).read_text())
    return {"process": process, "spans": spans, "phases": phase_breakdown(process, spans)}


def print_phases(columns: dict[str, dict], *, width: int = 11) -> None:
    """A table: one row per phase, one column per arm (seconds)."""
    names = list(columns)
    print(f"  {'phase (s)':58}" + "".join(f"{n[:width]:>{width + 1}}" for n in names))
    rows = [p for p in PHASES if any(columns[n].get(p) for n in names)]
    rows += sorted({p for n in names for p in columns[n] if p not in PHASES})
    for phase in rows:
        words = PHASE_WORDS.get(phase, phase)
        print(f"  {words[:58]:58}" + "".join(f"{columns[n].get(phase, 0.0):>{width + 1}.1f}" for n in names))
    print(f"  {'total':58}" + "".join(f"{sum(columns[n].values()):>{width + 1}.1f}" for n in names))
