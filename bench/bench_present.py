"""Present's load time once a trained model exists (issue 27): fresh loads of the Present page's address for a
workspace whose latest model is the bundled sample, trained with the default preset.

    python bench/bench_present.py [--repeats 5] [--preset balanced] [--quick]

1. The workspace: a new id (as the app makes them) under a temporary runs root (QUASAR_RUNS_DIR), holding one
   run that the product's CLI trained: `python -m quasar_core train sample_data/fashion --out
   <runs>/<id>/<run>` (the default preset unless --preset; its feature cache features/<id>/ beside the runs
   root, where the app keeps the workspace's). A session that opens ?workspace=<id> restores the workspace
   and opens its latest model without a click (ui.workspace.latest_model: the newest finished run with a
   model), so /present?workspace=<id> shows it: the headline the page should show is worked out beforehand
   with ui.presenting.summary and checked against the page's.
2. `streamlit run app.py` as the browser tests start it (tests/browser/support.StreamlitServer: the same
   command and environment), until it answers its health check.
3. Debian's chromium through Playwright at 1920 x 1080 (the test's projector). Each load is a new browser
   context (a new Streamlit session, an empty browser cache) opening the page's address. A script in the page,
   there before the app's own, checks at every animation frame what tests/browser/test_present_in_browser.py
   waits for and notes performance.now() (ms since the navigation started) the first time each holds:
     headline: the "Present" title and the big "Right on ... photos it had never seen" line, visible;
     drawn:    at least one "where it looked" photo visible, no spinner, the status widget gone (the run of
               the page is over), every image loaded.
   One warm-up load first, reported on its own: the first load after the server's start imports the pages'
   modules, loads the model and works out "where it looked", which the server then keeps (st.cache_data) for
   the next presenter; then --repeats loads, each after waiting for a quiet machine (--max-wait).
4. min / median / max of both; the goal: the median headline <= 2 s. The server's peak RSS (VmHWM).

Results: bench/results/bench_present.json.
"""

from __future__ import annotations

import json
import re
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

GOAL_S = 2.0
WARM_UP_TIMEOUT_MS = 600_000  # the first load also imports TensorFlow and loads VGG16 for the overlays
LOAD_TIMEOUT_MS = 180_000
OTHER_HOSTS = re.compile(r"^(?!https?://127\.0\.0\.1[:/]|data:|blob:)")

# What test_present_in_browser.py waits for, noted in the page at the first animation frame it holds.
WATCH_JS = """(() => {
    if (window !== window.top) return;
    const HEADLINE = new RegExp(%s);
    const seen = window.__present = {};
    const text = element => (element.textContent || '').replace(/\\s+/g, ' ').trim();
    const visible = element => {
        const box = element.getBoundingClientRect();
        return box.width > 0 && box.height > 0 && getComputedStyle(element).visibility !== 'hidden';
    };
    const all = selector => [...document.querySelectorAll(selector)];
    const tick = () => {
        const now = performance.now();
        if (document.body) {
            if (seen.headline === undefined) {
                const title = all('h1').some(h => text(h).includes('Present') && visible(h));
                const big = all('[data-testid="stMarkdownContainer"] p[style]')
                    .find(p => HEADLINE.test(text(p)) && visible(p));
                if (title && big) { seen.headline = now; seen.headline_text = text(big); }
            }
            if (seen.headline !== undefined && seen.drawn === undefined) {
                const looked = all('[data-testid="stImage"]')
                    .filter(e => text(e).includes('where it looked') && visible(e));
                const spinner = document.querySelector('[data-testid="stSpinner"]');
                const running = all('[data-testid="stStatusWidget"]').some(visible);
                const loaded = [...document.images].every(image => image.complete && image.naturalWidth > 0);
                if (looked.length && !spinner && !running && loaded) {
                    seen.drawn = now; seen.looked = looked.length; seen.images = document.images.length;
                }
            }
            if (seen.exception === undefined && document.querySelector('[data-testid="stException"]'))
                seen.exception = now;
        }
        if (seen.drawn === undefined && seen.exception === undefined) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
})();"""

NAVIGATION_JS = """() => {
    const entry = performance.getEntriesByType('navigation')[0];
    return entry ? {response_end: entry.responseEnd, dom_content_loaded: entry.domContentLoadedEventEnd,
                    load: entry.loadEventEnd} : {};
}"""


def trained_workspace(args, runs: Path, workspace_id: str, log: Path) -> dict:
    """The sample trained by the CLI into the workspace's folder, where the app lists the workspace's runs."""
    run_dir = runs / workspace_id / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"  # as new_run_dir
    run_dir.parent.mkdir(parents=True)
    command = [sys.executable, "-m", "quasar_core", "train", str(common.SAMPLE_DIR), "--out", str(run_dir)]
    if args.preset:
        command += ["--preset", args.preset]
    env = common.child_env(QUASAR_RUNS_DIR=runs, QUASAR_CACHE_DIR=runs.parent / "features" / workspace_id)
    trained = common.run_process(command, env=env, log=log)

    import streamlit.logger

    streamlit.logger.set_log_level("error")  # "No runtime found": none is needed for a summary
    from quasar_core.workspace import Workspace
    from ui import presenting
    from ui.workspace import latest_model

    latest = latest_model(Workspace(runs / workspace_id, workspace_id=workspace_id))
    if latest is None or latest.path.resolve() != run_dir.resolve():
        raise SystemExit(f"the app would not open {run_dir} as the workspace's latest model (found {latest})")
    shown = presenting.summary(latest)
    return {"run": str(run_dir), "train_wall_s": trained["wall"], "train_peak_rss_mb": trained["peak_rss_mb"],
            "headline": shown.headline, "examples": len(shown.examples), "mistakes": len(shown.mistakes)}


def load_once(browser, url: str, timeout_ms: int, shots: Path, name: str) -> dict:
    """One fresh load of `url` in a new context: ms since the navigation started to the headline and to drawn."""
    from tests.browser.support import settled
    from tests.browser.test_present_in_browser import HEADLINE, PROJECTOR

    context = browser.new_context(viewport=PROJECTOR)
    errors: list[str] = []
    elsewhere: list[str] = []
    try:
        context.add_init_script(WATCH_JS % json.dumps(HEADLINE.pattern))
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))

        def refuse(route):  # as the browser tests do: nothing but the server at 127.0.0.1 (only these are routed)
            elsewhere.append(route.request.url)
            route.abort()

        context.route(OTHER_HOSTS, refuse)
        began = time.perf_counter()
        page.goto(url, wait_until="commit")
        try:
            page.wait_for_function("() => window.__present && (window.__present.drawn !== undefined"
                                   " || window.__present.exception !== undefined)", timeout=timeout_ms, polling=100)
        except Exception:
            page.screenshot(path=str(shots / f"failed-{name}.png"), full_page=True)
            raise SystemExit(f"{name}: Present was not drawn within {timeout_ms / 1000:.0f} s; what was seen: "
                             f"{page.evaluate('() => window.__present')}; screenshot in {shots} (--keep keeps it)")
        wall = time.perf_counter() - began
        seen = page.evaluate("() => window.__present")
        if seen.get("exception") is not None:
            page.screenshot(path=str(shots / f"failed-{name}.png"), full_page=True)
            raise SystemExit(f"{name}: the page shows an exception: "
                             f"{page.get_by_test_id('stException').first.inner_text()[:2000]}")
        settled(page)  # as the test checks it afterwards (not timed)
        navigation = page.evaluate(NAVIGATION_JS)
        return {"headline_s": seen["headline"] / 1000, "drawn_s": seen["drawn"] / 1000, "wall_to_drawn_s": wall,
                "headline_text": seen.get("headline_text"), "looked": seen.get("looked"), "images": seen.get("images"),
                "navigation_ms": navigation, "page_errors": errors, "other_hosts": elsewhere}
    finally:
        context.close()


def spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--repeats", type=int, default=5, help="measured loads after the warm-up (default %(default)s; "
                                                          "--quick: 1)")
    p.add_argument("--preset", default=None, help="the training's preset (default: the product's default)")
    args = p.parse_args(argv)
    started, info = common.begin(args)
    if args.quick:
        args.repeats = 1

    from playwright.sync_api import expect, sync_playwright

    from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, PAGE_MS, StreamlitServer

    with common.work_dir(args, "quasar-bench-present-") as work:
        server = StreamlitServer(work)  # its runs root: work/runs; the features beside it: work/features
        workspace_id = secrets.token_hex(16)  # ui.workspace.new_id
        workspace = trained_workspace(args, server.runs, workspace_id, work / "train.log")
        print(f"workspace {workspace_id}: the sample trained by `quasar train` "
              f"({args.preset or 'default preset'}) in {workspace['train_wall_s']:.1f} s; its headline: "
              f"{workspace['headline']!r}, {workspace['examples']} photo(s) of where it looks", flush=True)
        loads: list[dict] = []
        process = None
        try:
            launched = time.perf_counter()
            server.start()
            process = server.process
            healthy_s = time.perf_counter() - launched
            url = f"{server.url}/present?workspace={workspace_id}"
            print(f"streamlit healthy {healthy_s:.1f} s after its launch; {url}", flush=True)
            expect.set_options(timeout=PAGE_MS)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    for number in range(args.repeats + 1):
                        name = "warm-up" if number == 0 else f"load {number}"
                        others = common.quiet(args)
                        load = load_once(browser, url, WARM_UP_TIMEOUT_MS if number == 0 else LOAD_TIMEOUT_MS,
                                         work, name.replace(" ", "-"))
                        load.update(name=name, others_share_before=others,
                                    server_rss_mb=common.rss_mb(process.pid))
                        loads.append(load)
                        print(f"  {name:8} headline {load['headline_s']:6.2f} s, drawn {load['drawn_s']:6.2f} s "
                              f"({load['looked']} photo(s) of where it looked; the page's scripts loaded at "
                              f"{load['navigation_ms'].get('load', 0) / 1000:.2f} s); others {others:.0%} of the "
                              "CPU before", flush=True)
                        if load["headline_text"] != workspace["headline"]:
                            raise SystemExit(f"{name}: the page's headline {load['headline_text']!r} is not the "
                                             f"latest model's {workspace['headline']!r}")
                finally:
                    browser.close()
            peak_mb = common.proc_status_kib("VmHWM", process.pid) / 1024
            rss_end_mb = common.rss_mb(process.pid)
        except BaseException:
            for log in server.logs:
                if log.is_file():
                    print(f"--- {log.name} (last 3000 characters) ---\n{log.read_text(errors='replace')[-3000:]}")
            raise
        finally:
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=15)

    warm, measured = loads[0], loads[1:]
    headline, drawn = spread([l["headline_s"] for l in measured]), spread([l["drawn_s"] for l in measured])
    print(f"\nPresent of a workspace with a trained model, fresh loads at {1920} x {1080} "
          f"(seconds from the navigation's start):")
    print(f"  warm-up (the first load after the server's start): headline {warm['headline_s']:.2f} s, "
          f"everything drawn {warm['drawn_s']:.2f} s")
    print(f"  {'':24}{'min':>8}{'median':>8}{'max':>8}   (n = {headline['n']})")
    for label, values in (("headline visible", headline), ("everything drawn", drawn)):
        print(f"  {label:24}{values['min']:>8.2f}{values['median']:>8.2f}{values['max']:>8.2f}")
    print(f"  goal: median headline <= {GOAL_S:.0f} s: {common.verdict(headline['median'], at_most=GOAL_S)}")
    print(f"  server: peak RSS (VmHWM) {peak_mb:.0f} MB, {rss_end_mb:.0f} MB at the end; healthy {healthy_s:.1f} s "
          "after its launch")
    problems = [(l["name"], l["page_errors"], l["other_hosts"]) for l in loads if l["page_errors"] or l["other_hosts"]]
    for name, errors, hosts in problems:
        print(f"  {name}: JavaScript errors {errors or 'none'}; requests to other hosts (refused) {hosts or 'none'}")
    results = {"machine": info, "goal_s": GOAL_S, "preset": args.preset or "default", "repeats": args.repeats,
               "workspace": workspace, "server_healthy_s": healthy_s, "server_peak_rss_mb": peak_mb,
               "server_rss_end_mb": rss_end_mb, "warm_up": warm, "loads": measured,
               "headline_s": headline, "drawn_s": drawn,
               "verdict": common.verdict(headline["median"], at_most=GOAL_S),
               "seconds": time.perf_counter() - started}
    print(f"results: {common.write_results('bench_present', results, quick=args.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
