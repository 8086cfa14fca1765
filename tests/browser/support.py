"""What the browser tests share: the Streamlit server they drive, the page helpers, the checks of words.

The fixtures are in conftest.py (which says what the tests cover); imported as `tests.browser.support`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.pictures import garden_jpeg

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # launched_chromium says what is missing
    Page = expect = sync_playwright = None



ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "sample_data" / "fashion"
SAMPLE_CLASSES = ("Ankle boot", "Bag", "Sneaker", "T-shirt", "Trouser")
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights" / "vgg16_imagenet_notop.weights.h5"  # as .ci/run finds it
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REQUIRE_BROWSER = os.environ.get("QUASAR_REQUIRE_BROWSER") == "1"

CLASSES = ("Bag", "Sneaker", "Trouser")
PER_CLASS = 8
PREDICT_PHOTO = SAMPLE_DIR / "Trouser" / "Trouser_050.png"  # not one of the zipped photos

# The sidebar, as the app draws it (ui/nav.py), and the pages/ file names Streamlit's own list would show.
TITLES = ("Home", "Upload photos", "Check my photos", "Configure", "Train", "Label more", "Evaluate", "Predict",
          "Present", "Past runs", "Compare")
FILE_NAMES = frozenset({"app", *(path.stem for path in (ROOT / "pages").glob("*.py"))})

SERVER_START_S = 60
PAGE_MS = 30_000  # a page (re)drawn; the first Configure visit also loads VGG16 and times it
TRAIN_MS = 180_000
VIEWPORT = {"width": 1400, "height": 1000}
MAX_SHOT_HEIGHT = 12_000
GALLERY_LIMIT = 24  # photos ui.layout.prediction_gallery shows at most
ACCURACY = r"about \d{1,3} % \(\d{1,3}–\d{1,3} %\)"  # wording.estimate: "about 93 % (90–95 %)"
SURE = r"(\d{1,2}\.\d|more than 99|less than 1) %"  # wording.confidence: never "100.0 %"
SURE_WHOLE = r"(\d{1,2}|more than 99|less than 1) %"  # the same without decimals
TRAINED = re.compile(r"Trained: the classifier learned from every photo\. It took")
# Words of a program, not of a person, that no page may show; and a second way to write a percentage.
RAW_WORDS = ("fine_tune_learning_rate", "class_weights", "holdout_fraction", "{'", "None.", "[Errno", "Traceback")
TIGHT_PERCENT = re.compile(r"\d%")


def weights_file() -> str | None:
    """The ImageNet weights file the server will use (passed through, or the shared copy)."""
    named = os.environ.get("QUASAR_VGG16_WEIGHTS")
    if named:
        return named
    return str(SHARED_WEIGHTS) if SHARED_WEIGHTS.is_file() else None


def needs_weights() -> None:
    if weights_file() is None:
        pytest.skip("this part trains from ImageNet weights: set QUASAR_VGG16_WEIGHTS")


# --- servers -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def streamlit_command(port: int) -> list[str]:
    """`streamlit run app.py` headless on 127.0.0.1:`port`, run in the app's folder."""
    return [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
            "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"]


def wait_until_healthy(process: subprocess.Popen, url: str, log: Path) -> None:
    """Until the server at `url` answers its health check; fails the test with its log if it exits or is slow."""
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


@contextlib.contextmanager
def launched_chromium():
    """Debian's chromium through Playwright; skips the test if either is missing (fails it under CI's
    QUASAR_REQUIRE_BROWSER=1)."""
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


class StreamlitServer:
    """`streamlit run app.py` on 127.0.0.1 with its runs under `home` (the feature cache lands beside them).

    It can be stopped, killed (`kill -9`, as a crash) and started again on the same port and folders.
    """

    def __init__(self, home: Path, port: int | None = None):
        self.home = home
        self.runs = home / "runs"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.logs: list[Path] = []

    def start(self) -> "StreamlitServer":
        # One training at a time (the README's default, which the queue test relies on); the feature cache
        # beside the runs (features/<workspace>/), where a restarted server finds it again.
        env = {**os.environ, "QUASAR_RUNS_DIR": str(self.runs), "QUASAR_MAX_CONCURRENT_JOBS": "1",
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("QUASAR_CACHE_DIR", None)
        weights = weights_file()
        if weights:
            env["QUASAR_VGG16_WEIGHTS"] = weights
        log = self.home / f"streamlit-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with open(log, "wb") as log_file:
            self.process = subprocess.Popen(streamlit_command(self.port), cwd=ROOT, env=env, stdout=log_file,
                                            stderr=subprocess.STDOUT)
        wait_until_healthy(self.process, self.url, log)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or an out-of-memory kill: the server writes nothing more."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        for log in self.logs:
            print(f"--- {log.name} (last 3000 characters) ---\n{log.read_text(errors='replace')[-3000:]}")

    def log_tail(self) -> str:
        return self.logs[-1].read_text(errors="replace")[-3000:] if self.logs else ""


# --- helpers ---------------------------------------------------------------------------------------
def keyed(page: Page, key: str):
    """The element Streamlit drew for `key` (it gets the class st-key-<key>)."""
    return page.locator(".st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key))


def keyed_prefix(page: Page, prefix: str):
    """Elements drawn for keys starting with `prefix` (e.g. one probability chart per photo)."""
    return page.locator(f'[class*="st-key-{prefix}"]')


def sidebar(page: Page):
    return page.get_by_test_id("stSidebar")


def sidebar_to(page: Page, title: str) -> None:
    """Go to a page through the app's own sidebar links (following a plain URL would start a new session)."""
    sidebar(page).get_by_role("link", name=title, exact=True).click()
    heading(page, "Quasar Nexus" if title == "Home" else title)


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


def workspace_of(page: Page) -> str:
    return re.search(r"[?&]workspace=([0-9a-f]{32})", page.url).group(1)


def settled(page: Page) -> None:
    """The script run the last action started has finished, without an exception on the page."""
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()
    expect(page.get_by_test_id("stException")).to_have_count(0)


def no_errors(page: Page) -> None:
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)


def button(page: Page, key: str):
    return keyed(page, key).get_by_role("button")


def table(page: Page, column: str):
    """The drawn st.dataframe with a column headed `column` (tables get no key class; the grid lists its
    headers and cells for screen readers, inside its canvas)."""
    return page.get_by_test_id("stDataFrame").filter(has=page.locator("canvas th").filter(
        has_text=re.compile(rf"^{re.escape(column)}$")))


def chart(page: Page, key: str):
    """The drawn Plotly chart of st.plotly_chart(key=key)."""
    return keyed(page, key).locator(".js-plotly-plot")


def watch_for(page: Page, selector: str, text: str = "") -> None:
    """Remember in the page whether `selector` (holding `text`) ever matched, however briefly (a MutationObserver)."""
    page.evaluate("""([selector, text]) => {
        window.__seen = window.__seen || {};
        const key = selector + '|' + text;
        const look = () => {
            if ([...document.querySelectorAll(selector)].some(element => element.innerText.includes(text)))
                window.__seen[key] = true;
        };
        look();
        new MutationObserver(look).observe(document.body, {childList: true, subtree: true, characterData: true});
    }""", [selector, text])


def seen(page: Page, selector: str, text: str = "") -> bool:
    return bool(page.evaluate("key => Boolean(window.__seen && window.__seen[key])", f"{selector}|{text}"))


# The words a person can read on the page: every drawn text node (material icons are drawn from their
# names, so those are left out, and so are Plotly's axis tick labels, see reads_well), plus the cells of
# the tables, which the grid paints on a canvas and lists for screen readers.
READABLE_TEXT_JS = """() => {
    const words = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const element = node.parentElement, text = node.textContent.trim();
        if (!text || !element || element.closest('script, style, noscript, canvas')) continue;
        if (element.closest('[data-testid="stIconMaterial"], span[role="img"][translate="no"], g[class*="tick"]')) continue;
        if (!element.getClientRects().length) continue;  // not drawn: a closed expander, a hidden tab
        words.push(text);
    }
    for (const cell of document.querySelectorAll('[data-testid="stDataFrame"] canvas th, [data-testid="stDataFrame"] canvas td'))
        words.push(cell.textContent.trim());
    return words.join('\\n');
}"""


def readable_text(page: Page) -> str:
    return page.evaluate(READABLE_TEXT_JS)


def reads_well(page: Page) -> str:
    """The page shows no traceback, no error box, no program words and one percent style; returns its words.

    Percentages are "94.7 %" (wording.percent) in the text, the tables and the charts' own words; Plotly's
    axis tick labels (".0%": "20%") come from quasar_core.charts' tickformat and are left out here.
    """
    expect(page.get_by_test_id("stException")).to_have_count(0)
    no_errors(page)
    words = readable_text(page)
    for raw in RAW_WORDS:
        assert raw not in words, f"the page shows {raw!r}:\n{context_of(words, words.index(raw))}"
    tight = TIGHT_PERCENT.search(words)
    assert tight is None, f"a second percent style ({tight and tight.group(0)!r}):\n{context_of(words, tight.start())}"
    return words


def context_of(words: str, at: int) -> str:
    return words[max(0, at - 200): at + 200]


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
    gallery = page.get_by_test_id("stCaptionContainer").filter(
        has_text=re.compile(rf"Really \w+, predicted \w+ \({SURE_WHOLE} sure\)"))  # "more than 99 %" too
    captions = gallery.filter(has_text=re.compile(rf"Really {true_label}, predicted {predicted_label} \({SURE_WHOLE} sure\)"))
    shown = min(count, GALLERY_LIMIT)
    expect(captions).to_have_count(shown)
    expect(gallery).to_have_count(shown)  # only that cell's photos
    expect(page.get_by_test_id("stMain").get_by_test_id("stImage")).to_have_count(shown)
    no_errors(page)
    settled(page)


def make_zip(folder: Path, name: str = "clothes.zip") -> Path:
    """classes/<class>/<photo>.png for the first PER_CLASS photos of each of CLASSES."""
    archive = folder / name
    with zipfile.ZipFile(archive, "w") as zf:
        for label in CLASSES:
            for path in sorted((SAMPLE_DIR / label).glob("*.png"))[:PER_CLASS]:
                zf.write(path, f"classes/{label}/{path.name}")
    return archive


def colourful_picture(folder: Path) -> Path:
    """A picture nothing like Fashion-MNIST's grey clothes (tests/pictures.py), as garden.jpg in `folder`."""
    path = folder / "garden.jpg"
    path.write_bytes(garden_jpeg())
    return path


def upload_zip(page: Page, archive: Path) -> None:
    """The Upload page's zip tab, through the real file input; the data report follows."""
    sidebar_to(page, "Upload photos")
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Zip file")
    uploader.locator("input[type=file]").set_input_files(archive)
    expect(uploader).to_contain_text(archive.name)
    load = button(page, "load_zip")
    expect(load).to_be_enabled()
    load.click()
    expect(page.get_by_text(f"{len(CLASSES) * PER_CLASS} usable photos in {len(CLASSES)} classes")).to_be_visible()
    settled(page)


def advanced_settings(page: Page) -> None:
    expander = page.get_by_test_id("stExpander").filter(has_text="Advanced: every setting")
    if expander.locator("details").get_attribute("open") is None:
        expander.locator("summary").click()


def choose_image_size(page: Page, size: int) -> None:
    """Move Configure's image size slider to `size` with the keyboard, as a person could (Home, then →)."""
    advanced_settings(page)
    slider = keyed(page, "setting.image_size")
    shown = slider.get_by_test_id("stSliderThumbValue")
    slider.get_by_role("slider").press("Home")
    expect(shown).to_have_text(re.compile(r"^\d+ px$"))
    for _ in range(20):
        if shown.inner_text().strip() == f"{size} px":
            break
        before = shown.inner_text()
        slider.get_by_role("slider").press("ArrowRight")
        expect(shown).not_to_have_text(before)
    expect(shown).to_have_text(f"{size} px")
    # whichever preset the test chose first (Balanced unless it chose another)
    expect(page.get_by_text(re.compile(r"^Started from the [\w ]+ preset, with your changes\.$"))).to_be_visible()
    expect(page.get_by_text(f"Your settings use {size} px.")).to_be_visible()
    settled(page)


def wait_for_training(page: Page) -> None:
    expect(page.get_by_text(TRAINED)).to_be_visible(timeout=TRAIN_MS)
    settled(page)


def run_folders(runs: Path, workspace_id: str) -> list[Path]:
    folder = runs / workspace_id
    return sorted(p for p in folder.iterdir() if (p / "config.json").is_file()) if folder.is_dir() else []


def pins(page: Page):
    """One "Pin" box per run listed on Past runs."""
    return page.get_by_test_id("stMain").get_by_role("checkbox", name="Pin")


