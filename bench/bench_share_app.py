"""The light shared app: install time and size of its environment, its model files, first answer, peak memory.

    python bench/bench_share_app.py --run RUN [--photo PHOTO ...] [--venv-python python3.12]

1. `export_run(RUN, format="app")` (checked against the product's answers on the run's example photos before
   it is written): which VGG16 storage it chose, model.onnx's size (goal: the model files <= 25 MB), the
   familiarity reference's size, the largest difference.
2. A fresh `python -m venv`, then `pip install --no-cache-dir -r requirements.txt` from the package index:
   seconds (goal <= 60 s) and the environment's size on disk (`du`, goal <= 400 MB); no TensorFlow in it.
3. `streamlit run app.py` with that environment's Python, in the app folder, with a clean environment
   (quasar_core not importable): from the launch, headless chromium opens the page as soon as the server
   answers its health check, uploads each photo and waits for its answer: seconds from the launch to the
   first answer (goal <= 5 s); the server's peak RSS (VmHWM, goal <= 1 GB); each answer on the page against
   the product's (runs.serving + answers.verdict: the same words).

Results: bench/results/share_app.json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

INSTALL_GOAL_S, VENV_GOAL_MB, MODEL_GOAL_MB, FIRST_ANSWER_GOAL_S, PEAK_GOAL_MB = 60, 400, 25, 5, 1024


def du_mb(path: Path) -> float:
    return int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True).stdout.split()[0]) / 1024


def product_words(run_dir: Path, photo: Path) -> str:
    """The product's answer for a photo, in the app's words (answers.py), from runs.serving."""
    import importlib.util

    from quasar_core.data import Limits, decode_image
    from quasar_core.runs.folder import Run
    from quasar_core.runs.serving import served_model
    from quasar_core.runs.share_app import ANSWERS

    run = Run.open(run_dir)
    served = served_model(run)
    pixels = decode_image(photo.read_bytes(), photo.name, limits=Limits()).pixels
    probabilities, features = served.predict_proba([pixels], with_features=True)
    unknown = unusual = False
    if served.familiarity_ is not None:
        unknown = bool(served.familiarity_.is_unknown(features)[0])
        is_unusual = getattr(served.familiarity_, "is_unusual", None)
        unusual = bool(is_unusual(features)[0]) if is_unusual is not None else False
    spec = importlib.util.spec_from_file_location("bench_answers", ANSWERS)
    words = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(words)
    return words.verdict(probabilities[0], run.labels, unknown=unknown, unusual=unusual)[1]


def clean_env(home: Path) -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
           and not key.startswith(("QUASAR_", "STREAMLIT_"))}
    env["HOME"] = str(home)
    return env


def serve_and_answer(venv: Path, app: Path, photos: list[Path], work: Path) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, free_port

    home = work / "home"
    home.mkdir(exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(venv / "bin" / "python"), "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    answers, timings = [], {}
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = chromium.new_page(viewport={"width": 1200, "height": 1000})
        log = open(work / "streamlit.log", "wb")
        launched = time.perf_counter()
        process = subprocess.Popen(command, cwd=app, env=clean_env(home), stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.perf_counter() - launched > 120:
                    raise SystemExit((work / "streamlit.log").read_text(errors="replace")[-3000:])
                time.sleep(0.05)
            timings["healthy_s"] = time.perf_counter() - launched
            page.goto(url)
            uploader = page.get_by_test_id("stFileUploader").locator("input[type=file]")
            uploader.wait_for(state="attached", timeout=60_000)
            timings["page_s"] = time.perf_counter() - launched
            for number, photo in enumerate(photos):
                uploader.set_input_files([str(photo)])  # the uploader keeps the earlier ones: one more photo
                page.locator(f".st-key-probabilities_{number}").wait_for(timeout=120_000)
                if number == 0:
                    timings["first_answer_s"] = time.perf_counter() - launched
            page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=120_000)  # the rerun is over
            page.get_by_text(re.compile("^Looking at ")).first.wait_for(state="detached", timeout=120_000)
            answers.append(page.locator("body").inner_text())
            page.screenshot(path=str(work / "share-app.png"), full_page=True)
            peak_kib = common.proc_status_kib("VmHWM", process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
            chromium.close()
    return {**timings, "peak_rss_mb": peak_kib / 1024, "answers": answers}


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--run", required=True)
    p.add_argument("--photo", action="append", default=[], help="photos to answer (default: 3 of the run's examples)")
    p.add_argument("--venv-python", default=sys.executable, help="the Python the fresh environment is made with")
    p.add_argument("--app", default=None, help="an app folder already exported (with --venv: measure serving only)")
    p.add_argument("--venv", default=None, help="an environment already installed from its requirements.txt")
    args = p.parse_args(argv)
    started, info = common.begin(args)
    run_dir = Path(args.run)
    with common.work_dir(args, "quasar-bench-share-app-") as work:
        from quasar_core.runs.export import export_run

        app, exported = (Path(args.app), None) if args.app else (work / "app", None)
        if not args.app:
            exported = export_run(run_dir, format="app", out=app)
        model_mb = (app / "model.onnx").stat().st_size / 1e6
        familiarity_mb = (app / "familiarity.npz").stat().st_size / 1e6 if (app / "familiarity.npz").exists() else 0
        if exported:
            print(f"export: {exported['storage']} ({exported['model']}); model.onnx {model_mb:.1f} MB "
                  f"{common.verdict(model_mb, at_most=MODEL_GOAL_MB)}, familiarity.npz {familiarity_mb:.1f} MB, "
                  f"largest difference from the product {exported['max_difference']:.1e} on {exported['images']} "
                  "photos")
        print("requirements.txt:\n  " + "\n  ".join(l for l in (app / "requirements.txt").read_text().splitlines()
                                                   if l and not l.startswith("#")))
        install_s = venv_mb = None
        if args.venv:
            venv = Path(args.venv)
        else:
            venv = work / "venv"
            subprocess.run([args.venv_python, "-m", "venv", str(venv)], check=True)
            common.quiet(args)
            began = time.perf_counter()
            install = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir",
                                      "--disable-pip-version-check", "-r", str(app / "requirements.txt")],
                                     capture_output=True, text=True)
            install_s = time.perf_counter() - began
            if install.returncode:
                print(install.stdout[-3000:], install.stderr[-3000:])
                raise SystemExit("pip install failed")
            venv_mb = du_mb(venv)
        frozen = subprocess.run([str(venv / "bin" / "pip"), "freeze"], capture_output=True, text=True).stdout
        tensorflow = [l for l in frozen.splitlines() if re.match(r"(tensorflow|keras|jax|torch)\b", l, re.I)]
        if install_s is not None:
            print(f"fresh venv: pip install {install_s:.1f} s {common.verdict(install_s, at_most=INSTALL_GOAL_S)}, "
                  f"{venv_mb:.0f} MB on disk {common.verdict(venv_mb, at_most=VENV_GOAL_MB)}; "
                  f"{len(frozen.splitlines())} packages, TensorFlow-like: {tensorflow or 'none'}")
            sizes = subprocess.run("du -sm * | sort -rn | head -8", shell=True, capture_output=True, text=True,
                                   cwd=next((venv / "lib").glob("python*/site-packages"))).stdout
            print("  largest: " + ", ".join(f"{name} {mb} MB" for mb, name in (l.split() for l in sizes.splitlines())))
        photos = [Path(p) for p in args.photo] or sorted((app / "examples").glob("*.jpg"))[:3]
        common.quiet(args)
        expected = [product_words(run_dir, photo) for photo in photos]
        served = serve_and_answer(venv, app, photos, work)
        shown = " ".join(served["answers"][0].split())
        matches = [(" ".join(words.split()) if not words.startswith("This doesn't") else
                    words.split(" (")[0] + ".") in shown for words in expected]  # unknown: worded longer there
        print(f"launch -> healthy {served['healthy_s']:.1f} s, page {served['page_s']:.1f} s, first answer "
              f"{served['first_answer_s']:.1f} s {common.verdict(served['first_answer_s'], at_most=FIRST_ANSWER_GOAL_S)}; "
              f"peak RSS {served['peak_rss_mb']:.0f} MB {common.verdict(served['peak_rss_mb'], at_most=PEAK_GOAL_MB)}")
        for photo, words, ok in zip(photos, expected, matches):
            print(f"  {photo.name}: the product says {words!r}; the app {'the same' if ok else 'SOMETHING ELSE'}")
        results = {"machine": info, "export": {k: v for k, v in (exported or {}).items() if k != "path"},
                   "model_mb": model_mb, "familiarity_mb": familiarity_mb, "install_s": install_s, "venv_mb": venv_mb,
                   "packages": frozen.splitlines(), "serve": served, "expected": expected, "matches": matches,
                   "seconds": time.perf_counter() - started}
        if not args.keep and not args.venv:
            shutil.rmtree(venv, ignore_errors=True)
    print(f"results: {common.write_results('share_app', results, quick=args.quick)}")
    return 0 if all(matches) else 1


if __name__ == "__main__":
    sys.exit(main())
