"""The dashboard in a real browser: Debian's chromium, driven by Playwright, against `streamlit run`.

One Streamlit server per module (its own runs folder, a free port on 127.0.0.1), then:

* the whole journey: a zip of class folders through the Upload page's uploader -> the data
  report -> a tiny setup through Configure's real widgets -> Train (live chart, progress bar)
  -> Evaluate (confusion matrix, accuracy; a click on one of its squares shows that square's
  photos) -> Predict (one photo, probability bars);
* the Home page's "Try it with the sample dataset" button, in a fresh session: it lands on
  Train with training under way, and Stop ends it.

A full-page screenshot of every page goes to test-artifacts/screenshots/<page>.png.

Skipped when /usr/bin/chromium or Playwright is missing, unless QUASAR_REQUIRE_BROWSER=1
(CI), where that is a failure. Playwright cannot download a browser here, so it is pointed
at Debian's chromium, and every request to a host other than 127.0.0.1 is refused.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # reported by the `browser` fixture
    sync_playwright = None

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "sample_data" / "fashion"
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights" / "vgg16_imagenet_notop.weights.h5"  # as .ci/run finds it
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REQUIRE_BROWSER = os.environ.get("QUASAR_REQUIRE_BROWSER") == "1"

CLASSES = ("Bag", "Sneaker", "Trouser")
PER_CLASS = 8
PREDICT_PHOTO = SAMPLE_DIR / "Trouser" / "Trouser_050.png"  # not one of the uploaded photos

SERVER_START_S = 60
PAGE_MS = 30_000  # a page (re)drawn; the first Configure visit also loads VGG16 and times it
TRAIN_MS = 180_000
VIEWPORT = {"width": 1400, "height": 1000}
MAX_SHOT_HEIGHT = 12_000
GALLERY_LIMIT = 24  # photos ui.layout.prediction_gallery shows at most


# --- the server ------------------------------------------------------------------------------------
def weights_file() -> str | None:
    """The ImageNet weights file the server will use (passed through, or the shared copy)."""
    named = os.environ.get("QUASAR_VGG16_WEIGHTS")
    if named:
        return named
    return str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_file() else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with code {process.returncode} before it was healthy:\n"
                        + log.read_text(errors="replace")[-3000:])
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"streamlit was not healthy within {SERVER_START_S} s:\n" + log.read_text(errors="replace")[-3000:])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run app.py` on a free port with its own runs folder; its base URL. Always stopped."""
    tmp = tmp_path_factory.mktemp("browser-server")
    port = free_port()
    env = {**os.environ, "QUASAR_RUNS_DIR": str(tmp / "runs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    weights = weights_file()
    if weights:
        env["QUASAR_VGG16_WEIGHTS"] = weights
    log = tmp / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, url, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        print(f"--- streamlit log (last 3000 characters) ---\n{log.read_text(errors='replace')[-3000:]}")


# --- the browser -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    missing = [what for what, there in (("playwright (pip install playwright)", sync_playwright is not None),
                                         (f"chromium at {CHROMIUM}", CHROMIUM.is_file())) if not there]
    if missing:
        reason = f"the browser test needs {' and '.join(missing)}"
        if REQUIRE_BROWSER:
            pytest.fail(f"{reason}, and QUASAR_REQUIRE_BROWSER=1 says it must run", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server, request):
    """A fresh browser session (so a fresh workspace) that may only talk to the test server.

    When the test fails, what the browser showed is kept as screenshots/failed-<test>.png.
    """
    failures_before = request.session.testsfailed
    context = browser.new_context(viewport=VIEWPORT)
    refused: list[str] = []

    def local_only(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", local_only)
    page = context.new_page()
    page.set_default_timeout(PAGE_MS)
    expect.set_options(timeout=PAGE_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        if request.session.testsfailed > failures_before:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"failed-{request.node.name}.png"), full_page=True)
        assert not errors, f"JavaScript errors in the page: {errors}"
    finally:
        context.close()
        if refused:
            print(f"refused requests to other hosts: {refused}")


# --- helpers ---------------------------------------------------------------------------------------
def keyed(page: Page, key: str):
    """The element Streamlit drew for `key` (it gets the class st-key-<key>)."""
    return page.locator(".st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key))


def sidebar_to(page: Page, title: str) -> None:
    """Go to a page through the sidebar (following a plain URL would start a new session)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    heading(page, title)


def next_link(page: Page, label: str, title: str) -> None:
    """Follow a page's own "Next: ..." link, as a user would."""
    link = page.get_by_test_id("stMain").get_by_role("link", name=label)
    expect(link).to_be_visible()
    link.click()
    heading(page, title)


def heading(page: Page, title: str) -> None:
    """The page titled `title` is shown, and the URL still names this session's workspace."""
    expect(page.locator("h1").filter(has_text=title)).to_be_visible()
    expect(page).to_have_url(re.compile(r"[?&]workspace=[0-9a-f]{32}"))


def settled(page: Page) -> None:
    """The script run the last action started has finished, without an exception on the page."""
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()
    expect(page.get_by_test_id("stException")).to_have_count(0)


def no_errors(page: Page) -> None:
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)


def chart(page: Page, key: str):
    """The drawn Plotly chart of st.plotly_chart(key=key)."""
    return keyed(page, key).locator(".js-plotly-plot")


def watch_for(page: Page, selector: str) -> None:
    """Remember in the page whether `selector` ever matched, however briefly (a MutationObserver)."""
    page.evaluate("""selector => {
        window.__seen = window.__seen || {};
        const look = () => { if (document.querySelector(selector)) window.__seen[selector] = true; };
        look();
        new MutationObserver(look).observe(document.body, {childList: true, subtree: true});
    }""", selector)


def seen(page: Page, selector: str) -> bool:
    return bool(page.evaluate("selector => Boolean(window.__seen && window.__seen[selector])", selector))


def screenshot(page: Page, name: str) -> None:
    """test-artifacts/screenshots/<name>.png of the whole page, once everything on it has drawn.

    Streamlit scrolls inside its main area, not the document, so full_page alone would stop
    at the window: the window is made as tall as the content for the shot.
    """
    # Lazily loaded elements (tables, charts) show a skeleton first; images load after the page.
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0)
    page.wait_for_function("() => [...document.images].every(image => image.complete && image.naturalWidth > 0)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("""() => Math.max(...[document.scrollingElement,
        ...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')]
        .filter(Boolean).map(element => element.scrollHeight))""")
    tall = min(max(height, VIEWPORT["height"]), MAX_SHOT_HEIGHT)
    page.set_viewport_size({"width": VIEWPORT["width"], "height": tall})
    try:
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        page.set_viewport_size(VIEWPORT)


def cell_photos(page: Page, matrix) -> None:
    """Click the fullest cell of the drawn confusion matrix; the page then shows just that cell's photos.

    The cell is found where a user would click it: the plot area (Plotly's drag layer) split into
    one square per class, rows top to bottom (the real class) and columns left to right (predicted).
    """
    drawn = matrix.evaluate("plot => ({labels: [...plot.data[0].y], counts: plot.data[0].z.map(row => [...row])})")
    labels, counts = drawn["labels"], drawn["counts"]
    assert sorted(labels) == sorted(CLASSES), drawn
    n = len(labels)
    # The fullest cell, a diagonal one on a tie: a model this small may get no class right at all.
    row, column = max(((r, c) for r in range(n) for c in range(n)),
                      key=lambda rc: (counts[rc[0]][rc[1]], rc[0] == rc[1]))
    count = int(counts[row][column])
    assert count > 0, f"the confusion matrix is empty: {drawn}"
    true_label, predicted_label = labels[row], labels[column]
    matrix.scroll_into_view_if_needed()
    plot_area = matrix.locator(".nsewdrag").first
    expect(plot_area).to_be_visible()
    box = plot_area.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0, box
    page.mouse.click(box["x"] + (column + 0.5) * box["width"] / n, box["y"] + (row + 0.5) * box["height"] / n)
    said = f"Really {true_label}, predicted {predicted_label}: {count} photo{'' if count == 1 else 's'}."
    expect(page.get_by_text(said, exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"Its mistakes|No mistakes"))).to_have_count(0)
    captions = page.get_by_test_id("stCaptionContainer").filter(
        has_text=re.compile(rf"Really {true_label}, predicted {predicted_label} \(\d{{1,3}}% sure\)"))
    shown = min(count, GALLERY_LIMIT)
    expect(captions).to_have_count(shown)
    expect(page.get_by_test_id("stCaptionContainer").filter(has_text=re.compile(r"Really \w+, predicted \w+ \(\d"))
           ).to_have_count(shown)  # only that cell's photos
    expect(page.get_by_test_id("stImage")).to_have_count(shown)
    no_errors(page)
    settled(page)


def make_zip(folder: Path) -> Path:
    """classes/<class>/<photo>.png for the first PER_CLASS photos of each of CLASSES."""
    archive = folder / "clothes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for label in CLASSES:
            for path in sorted((SAMPLE_DIR / label).glob("*.png"))[:PER_CLASS]:
                zf.write(path, f"classes/{label}/{path.name}")
    return archive


# --- the tests -------------------------------------------------------------------------------------
def test_zip_to_prediction(page: Page, server, tmp_path):
    page.goto(server)
    heading(page, "Quasar Nexus")
    settled(page)
    screenshot(page, "home")

    # Upload: the zip through the real uploader, then the data report.
    sidebar_to(page, "Upload photos")
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Zip file")
    uploader.locator("input[type=file]").set_input_files(make_zip(tmp_path))
    expect(uploader).to_contain_text("clothes.zip")
    load = keyed(page, "load_zip").get_by_role("button")
    expect(load).to_be_enabled()
    load.click()
    total = len(CLASSES) * PER_CLASS
    expect(page.get_by_text(f"{total} usable photos in {len(CLASSES)} classes")).to_be_visible()
    expect(chart(page, "class_distribution")).to_be_visible()
    for label in CLASSES:
        expect(page.get_by_text(f"{label} ({PER_CLASS} photos)")).to_be_visible()
    # 8 photos a class is few: the report says so once for all three classes (not "No problems found").
    few = "'Bag', 'Sneaker' and 'Trouser' have only 8 usable images each; results are unreliable"
    expect(page.get_by_test_id("stAlert").filter(has_text="1 thing to check")).to_contain_text(few)
    no_errors(page)
    settled(page)
    screenshot(page, "upload")

    # Configure: Quick look, then the smallest image size and 2 epochs through the real widgets.
    next_link(page, "Next: choose the training settings", "Configure")
    # The first visit loads VGG16 and times it on this machine before it can estimate.
    expect(page.get_by_text("Estimated training time on this computer")).to_be_visible(timeout=2 * PAGE_MS)
    expect(page.get_by_role("radiogroup").get_by_role("radio", name="Quick look")).to_be_checked()
    page.get_by_test_id("stExpander").filter(has_text="Advanced: every setting").locator("summary").click()
    size = keyed(page, "setting.image_size")
    size.get_by_role("slider").press("Home")  # the smallest size offered
    expect(size.get_by_test_id("stSliderThumbValue")).to_have_text("32")
    epochs = keyed(page, "setting.epochs").locator("input")
    epochs.fill("2")
    epochs.press("Enter")
    if weights_file() is None:  # no ImageNet weights here: random ones (the flow is the same)
        keyed(page, "setting.weights").get_by_text("None: start from random weights").click()
    expect(page.get_by_text("Started from the Quick look preset, with your changes.")).to_be_visible()
    settled(page)
    expect(epochs).to_have_value("2")
    expect(page.get_by_text("Fits in memory")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()  # the image size trade-off
    no_errors(page)
    screenshot(page, "configure")

    # Train: start, see the live chart and the progress bar, wait for the end.
    next_link(page, "Next: train the model", "Train")
    weights_words = "ImageNet weights" if weights_file() else "none weights"
    expect(page.get_by_text(f"Quick look preset · 32 px images · 2 epochs · feature extraction · {weights_words}")
           ).to_be_visible()
    start = keyed(page, "start_training").get_by_role("button")
    stop = keyed(page, "stop_training").get_by_role("button")
    expect(stop).to_be_disabled()
    watch_for(page, '[data-testid="stProgress"]')  # so tiny a run may show it for a second only
    start.click()
    # Trained for 2 epochs: green or, with a poor score, a warning that says what to try.
    expect(page.get_by_text(re.compile(r"Trained for \d+ epochs?\. It took"))).to_be_visible(timeout=TRAIN_MS)
    assert seen(page, '[data-testid="stProgress"]'), "the progress bar never appeared while training"
    expect(page.get_by_text(re.compile(r"The model named \d+ of \d+ images it had never seen correctly"))
           ).to_be_visible()
    expect(chart(page, "training_curves")).to_contain_text("Validation images")
    expect(page.get_by_test_id("stProgress")).to_have_count(0)
    expect(start).to_be_enabled()
    expect(stop).to_be_disabled()
    no_errors(page)
    expect(page.get_by_test_id("stMain").get_by_role("link", name="Next: see how good it is")).to_be_visible()
    settled(page)
    screenshot(page, "train")

    # Evaluate: accuracy in numbers and words, the per-class table and the confusion matrix.
    next_link(page, "Next: see how good it is", "Evaluate")
    accuracy = page.get_by_test_id("stMetric").filter(has_text="Accuracy on held-out photos")
    expect(accuracy.get_by_test_id("stMetricValue")).to_have_text(re.compile(r"^\d{1,3}\.\d%$"))
    expect(page.get_by_text(re.compile(r"The model named \d+ of \d+ images it had never seen correctly"))
           ).to_be_visible()
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()
    matrix = chart(page, "confusion_matrix")
    expect(matrix).to_be_visible()
    for label in CLASSES:
        expect(matrix).to_contain_text(label)
    expect(page.get_by_text(re.compile(r"Its mistakes|No mistakes"))).to_be_visible()
    no_errors(page)
    settled(page)
    screenshot(page, "evaluate")

    # Click a square of the confusion matrix (the fullest, a diagonal one on a tie): its photos show.
    cell_photos(page, matrix)
    screenshot(page, "evaluate-cell")

    # Predict: one photo through the uploader -> the most likely class and the probability bars.
    next_link(page, "Next: try it on new photos", "Predict")
    photo = page.get_by_test_id("stFileUploader").filter(has_text="Upload a photo")
    photo.locator("input[type=file]").set_input_files(PREDICT_PHOTO)
    verdict = page.get_by_text("It is most likely")
    expect(verdict).to_have_text(re.compile(rf"^It is most likely ({'|'.join(CLASSES)}) \(\d{{1,3}}\.\d% sure\)\.$"))
    bars = chart(page, "probability_bars")
    expect(bars).to_be_visible()
    for label in CLASSES:
        expect(bars).to_contain_text(label)
    expect(page.get_by_test_id("stImage").filter(has_text=PREDICT_PHOTO.name)).to_be_visible()
    no_errors(page)
    settled(page)
    screenshot(page, "predict")


def test_home_sample_button_starts_training(page: Page, server):
    if weights_file() is None:
        pytest.skip("the sample shortcut trains from ImageNet weights: set QUASAR_VGG16_WEIGHTS")
    page.goto(server)  # a new browser context: a new session and workspace
    heading(page, "Quasar Nexus")
    page.get_by_role("button", name="Try it with the sample dataset").click()
    heading(page, "Train")
    expect(page.get_by_text("Quick look preset · 96 px images")).to_be_visible()
    progress = page.get_by_test_id("stProgress")
    expect(progress).to_be_visible()
    # Live: the bar moves on from "Starting…" to the first step, counting the photos read.
    expect(progress).to_contain_text(re.compile(r"Step 1 of \d+ · .* · image \d+ of \d+"))
    # No epoch yet, so no (empty) chart: bar and chart read in one go, so a fast machine cannot race it.
    now = page.evaluate("""() => ({bar: document.querySelector('[data-testid="stProgress"]')?.innerText || '',
                                   charts: document.querySelectorAll('.st-key-training_curves').length})""")
    if now["bar"].startswith("Step 1 of"):  # still reading the photos through VGG16 (usual)
        assert now["charts"] == 0, "an empty training chart is drawn before the first epoch"
    start = keyed(page, "start_training").get_by_role("button")
    stop = keyed(page, "stop_training").get_by_role("button")
    expect(start).to_be_disabled()
    expect(stop).to_be_enabled()
    no_errors(page)
    screenshot(page, "train-sample")

    # Stop it (it would train 30 epochs on 300 photos): the page says it stopped and Start is back.
    stop.click()
    # Stopped while reading the photos (usual) or after some epochs (a fast machine), said either way.
    stopped = re.compile(r"Press Start training to try again|Stopped by you after \d+ epochs")
    said = page.get_by_test_id("stAlert").filter(has_text=stopped)
    expect(said).to_be_visible(timeout=TRAIN_MS)
    if "Press Start training to try again" in said.inner_text():  # stopped before the first epoch
        expect(keyed(page, "training_curves")).to_have_count(0)  # the message, not an empty chart, under the buttons
    expect(start).to_be_enabled()
    expect(page.get_by_test_id("stProgress")).to_have_count(0)
    settled(page)
    screenshot(page, "train-sample-stopped")
