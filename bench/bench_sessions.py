"""Sessions: two trainings queued back to back while a third session browses, each vs a training alone.

    python bench/bench_sessions.py [--poller apptest|snapshot|none] [--poll-seconds 1]
                                   [--concurrent 1] [--image-size N] [--quick]

One process, as the dashboard's server: the process-wide jobs.default_queue() (admitting
QUASAR_MAX_CONCURRENT_JOBS jobs at once, default 1; --concurrent sets it), one shared VGG16
base, the sample (sample_data/fashion) with the Quick preset's settings, a fresh feature cache
per training (so VGG16 runs every time), run folders under a temporary QUASAR_RUNS_DIR.

  warm-up   one training, not timed (TensorFlow, the traced network, Streamlit's imports)
  solo      one training alone, nobody polling
  pair      trainings A and B submitted back to back by two workspaces, while a third session
            polls like a browsing user: --poller apptest (default) reruns the dashboard's Train
            page (streamlit.testing AppTest of app.py, reattached to A's workspace, then to B's)
            every --poll-seconds, as the page's 1 s fragment does but heavier (the whole page);
            --poller snapshot only takes the job snapshots every second
  solo      one more training alone (the machine's drift)

Each training's time = its running time (state "running" to finished, watched every 50 ms;
waiting in the queue excluded), vs the mean of the two solo trainings; goal each <= 1.5x.
B's turnaround (submitted to finished, the wait for A included) is printed as well.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

GOAL = 1.5


class Watch:
    """When a job was submitted, started running and finished (sampled every 50 ms in a thread)."""

    def __init__(self, job):
        self.job, self.submitted, self.running, self.finished = job, time.perf_counter(), None, None
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            now, state = time.perf_counter(), self.job.state
            if self.running is None and state != "queued":
                self.running = now
            if self.job.finished:
                self.finished = now
                return
            time.sleep(0.05)

    def join(self):
        self._thread.join()
        return self

    def to_dict(self) -> dict:
        return {"state": self.job.state, "error": self.job.error,
                "queued_s": (self.running or self.finished) - self.submitted,
                "running_s": self.finished - (self.running or self.finished),
                "turnaround_s": self.finished - self.submitted}


class Poller:
    """The browsing user: reruns the Train page (AppTest) or takes a job snapshot every `period` seconds."""

    def __init__(self, kind: str, period: float):
        self.kind, self.period = kind, period
        self.reruns: list[float] = []
        self.cpu: list[float] = []  # the calling thread's CPU seconds per poll (AppTest runs the script in its own)
        self.errors: list[str] = []
        self._app = None
        self._owner = None

    def warm_up(self) -> None:
        if self.kind == "apptest":
            from streamlit.testing.v1 import AppTest

            app = AppTest.from_file(str(common.REPO_ROOT / "app.py"), default_timeout=120)
            app.run()
            app.switch_page(train_page()).run()

    def poll(self, job, owner: str) -> None:
        from quasar_core import jobs

        started, cpu = time.perf_counter(), time.thread_time()
        if self.kind == "snapshot":
            job.snapshot(jobs.default_queue())
        elif self.kind == "apptest":
            from streamlit.testing.v1 import AppTest

            if self._owner != owner:  # a new browser tab on that workspace's Train page
                self._app = AppTest.from_file(str(common.REPO_ROOT / "app.py"), default_timeout=120)
                self._app.query_params["workspace"] = owner
                self._app.run()
                self._app.switch_page(train_page())
                self._owner = owner
            self._app.run()
            if self._app.exception:
                self.errors.append(str(self._app.exception[0].value)[:300])
        self.reruns.append(time.perf_counter() - started)
        self.cpu.append(time.thread_time() - cpu)


def train_page() -> str:
    from ui import nav

    return nav.TRAIN.path


def training(dataset, config, work: Path, label: str, owner: str, base_loader):
    from quasar_core import jobs
    from quasar_core.features.cache import FeatureCache
    from quasar_core.runs.folder import new_run_dir

    run_dir = new_run_dir(Path(os.environ["QUASAR_RUNS_DIR"]) / owner)
    job = jobs.TrainingJob(dataset, config, run_dir, owner=owner, base_loader=base_loader,
                           cache=FeatureCache(work / "features" / label))
    jobs.default_queue().submit(job)
    return job, Watch(job)


def solo(dataset, config, work, label, base_loader) -> dict:
    from ui import workspace

    job, watch = training(dataset, config, work, label, workspace.new_id(), base_loader)
    result = watch.join().to_dict()
    if result["state"] != "done":
        raise SystemExit(f"{label} ended {result['state']}: {result['error']}")
    return result


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--poller", choices=("apptest", "snapshot", "none"), default="apptest")
    p.add_argument("--poll-seconds", type=float, default=1.0)
    p.add_argument("--concurrent", type=int, default=None, help="QUASAR_MAX_CONCURRENT_JOBS (default: as set, else 1)")
    p.add_argument("--image-size", type=int, default=None, help="default: the Quick preset's size for the sample")
    p.add_argument("--per-class", type=int, default=0, help="photos per class of the sample (default: all 60)")
    args = p.parse_args(argv)
    if args.quick:
        args.image_size, args.per_class = args.image_size or 32, 10
    common.finish_args(args)
    if args.concurrent is not None:
        os.environ["QUASAR_MAX_CONCURRENT_JOBS"] = str(args.concurrent)

    started = time.perf_counter()
    common.weights_path()
    info = common.machine_info()
    common.print_machine(info)
    results = {"machine": info}
    with common.work_dir(args, "quasar-bench-sessions-") as work:
        os.environ["QUASAR_RUNS_DIR"] = str(work / "runs")
        from quasar_core import jobs
        from quasar_core.data import load_folder
        from quasar_core.presets import PRESETS
        from ui import workspace

        source = common.SAMPLE_DIR if not args.per_class else common.write_subset(common.SAMPLE_DIR, work / "sample",
                                                                                  args.per_class)
        dataset = load_folder(source)
        config = PRESETS["quick"].config(dataset)
        if args.image_size:
            config = config.replace(image_size=args.image_size)
        base_loader = common.shared_base_loader()
        poller = Poller(args.poller, args.poll_seconds)
        print(f"{len(dataset)} photos at {config.image_size} px; queue admits {jobs.default_queue().max_running} at "
              f"once; poller: {args.poller} every {args.poll_seconds:g} s", flush=True)
        print("  warm-up training (not timed) ...", flush=True)
        solo(dataset, config, work, "warm-up", base_loader)
        poller.warm_up()

        common.quiet(args)
        watch = common.Stopwatch()
        results["solo_before"] = solo(dataset, config, work, "solo-1", base_loader)
        results["solo_before"]["others_share"] = watch.stop()["others_share"]
        print(f"  solo: running {results['solo_before']['running_s']:.1f} s", flush=True)

        common.quiet(args)
        watch = common.Stopwatch()
        owners = {"A": workspace.new_id(), "B": workspace.new_id()}
        pair = {name: training(dataset, config, work, name, owner, base_loader) for name, owner in owners.items()}
        while not all(job.finished for job, _ in pair.values()):
            tick = time.perf_counter()
            followed = next((name for name in ("A", "B") if not pair[name][0].finished), "B")
            if args.poller != "none":
                poller.poll(pair[followed][0], owners[followed])
            time.sleep(max(0.0, args.poll_seconds - (time.perf_counter() - tick)))
        pair_timing = watch.stop()
        for name, (job, job_watch) in pair.items():
            results[name] = job_watch.join().to_dict()
            if results[name]["state"] != "done":
                raise SystemExit(f"training {name} ended {results[name]['state']}: {results[name]['error']}")
        results["pair_others_share"] = pair_timing["others_share"]
        results["poller"] = {"kind": args.poller, "reruns": len(poller.reruns),
                             "mean_rerun_s": sum(poller.reruns) / max(1, len(poller.reruns)),
                             "max_rerun_s": max(poller.reruns, default=0.0), "errors": poller.errors[:5],
                             "mean_calling_thread_cpu_s": sum(poller.cpu) / max(1, len(poller.cpu))}
        print(f"  pair: A running {results['A']['running_s']:.1f} s, B running {results['B']['running_s']:.1f} s "
              f"(queued {results['B']['queued_s']:.1f} s); {len(poller.reruns)} polls, mean "
              f"{results['poller']['mean_rerun_s']:.2f} s each (wall)", flush=True)

        common.quiet(args)
        watch = common.Stopwatch()
        results["solo_after"] = solo(dataset, config, work, "solo-2", base_loader)
        results["solo_after"]["others_share"] = watch.stop()["others_share"]
        print(f"  solo again: running {results['solo_after']['running_s']:.1f} s", flush=True)

    reference = (results["solo_before"]["running_s"] + results["solo_after"]["running_s"]) / 2
    print(f"\nSolo training: {results['solo_before']['running_s']:.1f} s before, {results['solo_after']['running_s']:.1f} s "
          f"after (mean {reference:.1f} s; others' CPU share {results['solo_before']['others_share']:.0%} / "
          f"{results['solo_after']['others_share']:.0%})")
    summary = {}
    for name in ("A", "B"):
        value = results[name]["running_s"] / reference
        summary[f"{name}_over_solo"] = value
        print(f"Training {name} with the other queued and a browsing session: {results[name]['running_s']:.1f} s = "
              f"{value:.2f}x solo (goal <= {GOAL}x: {common.verdict(value, at_most=GOAL)})")
    summary["B_turnaround_over_solo"] = results["B"]["turnaround_s"] / reference
    print(f"B from submitted to done (waiting for A included): {results['B']['turnaround_s']:.1f} s = "
          f"{summary['B_turnaround_over_solo']:.2f}x solo; others' CPU share during the pair "
          f"{results['pair_others_share']:.0%}")
    if poller.errors:
        print(f"the Train page raised during polling: {poller.errors[0]}")
    results["summary"] = summary
    total = time.perf_counter() - started
    results["total_seconds"] = total
    results["settings"] = {"image_size": config.image_size, "photos": len(dataset), "poller": args.poller,
                           "poll_seconds": args.poll_seconds, "max_running": jobs.default_queue().max_running}
    print(f"total run time of bench_sessions.py: {total:.0f} s")
    print(f"results: {common.write_results('bench_sessions', results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
