"""`export --format app`: the predict-only Streamlit app folder (quasar_core.runs.share_app).

A tiny real Quasar-shaped model (random VGG16 at 32 px + a head, assembled by head.py) is written
as an app folder once per module, then:

* static: app.py (and familiarity.py) import nothing from quasar_core, only streamlit, keras,
  numpy, pillow, plotly, pandas and the standard library; the folder holds what it should;
* the photo reading of app.py (EXIF, transparency, bad files) through its own functions;
* Streamlit's AppTest: title, headline, class names; photos answered, a text file named with
  what to do, a photo unlike the training ones "doesn't look like any of your classes";
  without a familiarity reference the app answers with no verdict;
* a real browser (Debian's chromium via Playwright) against `streamlit run app.py` started in the
  app folder with a clean environment (quasar_core not importable there): a photo through the
  uploader -> its answer and the probability chart; a text file -> the clear message.

The browser test is skipped when /usr/bin/chromium or Playwright is missing, unless
QUASAR_REQUIRE_BROWSER=1, where that is a failure.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from quasar_core.runs.share_app import app_requirements, write_app
from quasar_core.wording import estimate

from quasar_core.familiarity import SCORING_SNIPPET, FamiliarityModel
from tests.browser.support import (SCREENSHOTS, expect, free_port, launched_chromium, streamlit_command,
                                   wait_until_healthy)

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("circle", "square", "triangle")  # the shapes of tests/conftest.py

ANSWER_MS = 90_000  # the server's first answer imports TensorFlow and loads VGG16 (tens of seconds when busy)
PAGE_MS = 30_000
VIEWPORT = {"width": 1200, "height": 1000}

HEADLINE = {"title": "Circle, square or triangle?", "accuracy": 0.93, "accuracy_interval": [0.90, 0.95],
            "method": "5-fold cross-validation over 245 photos", "dataset": "shapes_v2.zip", "n_photos": 245,
            "trained_at": "2025-03-14T09:30:00"}
HEADLINE_WORDS = "about 93 % (90–95 %) measured by 5-fold cross-validation over 245 photos"
PERCENT = r"\d{1,3}\.\d %"  # "94.7 %": a space before the sign


# --- the app folder --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pictures(shapes):
    """The shared shape pictures of tests/conftest.py, as PNG bytes."""
    assert tuple(shapes.classes) == CLASSES

    class Pictures:
        per_class = shapes.per_class
        image = staticmethod(shapes.image)
        png = staticmethod(shapes.png)

        @staticmethod
        def training_photo() -> bytes:  # one the familiarity reference was fitted on: familiar
            return shapes.png(shapes.image("circle", 0))

        @staticmethod
        def unlike_photo() -> bytes:  # noise: nothing like a shape on a dark background
            noise = np.random.default_rng(7).integers(0, 256, (80, 80, 3), dtype=np.uint8)
            return shapes.png(Image.fromarray(noise))

        @staticmethod
        def examples() -> dict[str, bytes]:
            return {label: shapes.png(shapes.image(label, 0, side=96)) for label in CLASSES}

    return Pictures


@pytest.fixture(scope="module")
def model_parts(base, pictures, tmp_path_factory):
    """(model.keras bytes, familiarity arrays, scoring snippet) of a tiny real model."""
    import keras

    from quasar_core.head import Head, assemble_model

    rng = np.random.default_rng(0)
    head = Head(mean=np.zeros(512, np.float32), scale=np.ones(512, np.float32),
                kernel=rng.normal(scale=0.05, size=(512, len(CLASSES))).astype(np.float32),
                bias=np.zeros(len(CLASSES), np.float32), temperature=1.0)
    model = assemble_model(base, head, image_size=32)
    path = tmp_path_factory.mktemp("share-model") / "model.keras"
    model.save(path)
    per_class = pictures.per_class
    photos = np.stack([np.asarray(pictures.image(label, n), np.float32) for label in CLASSES for n in range(per_class)])
    both = keras.Model(model.inputs, [model.outputs[0], model.get_layer("pool").output])  # as app.py builds it
    _, features = (np.asarray(x) for x in both([photos], training=False))
    arrays = FamiliarityModel().fit(features, np.repeat(np.arange(len(CLASSES)), per_class)).to_arrays()
    return path.read_bytes(), arrays, SCORING_SNIPPET


def requirements_text() -> str:
    return app_requirements((ROOT / "requirements.txt").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def app_folder(model_parts, pictures, tmp_path_factory) -> Path:
    model_keras, arrays, snippet = model_parts
    folder = tmp_path_factory.mktemp("share-app") / "circle-square-triangle"
    written = write_app(folder, model_keras=model_keras, labels=list(CLASSES), headline=HEADLINE,
                        examples=pictures.examples(), familiarity=arrays, scoring_snippet=snippet,
                        requirements=requirements_text())
    assert written == folder
    return folder


# --- static ----------------------------------------------------------------------------------------
def imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"a relative import in the app: from {'.' * node.level}{node.module}"
            names.add(node.module)
    return names


def test_app_imports_nothing_from_quasar_core(app_folder):
    for name in ("app.py", "familiarity.py"):
        modules = imported_modules((app_folder / name).read_text(encoding="utf-8"))
        tops = {module.split(".")[0] for module in modules}
        assert "quasar_core" not in tops, f"{name} imports {sorted(modules)}"
        third_party = tops - set(sys.stdlib_module_names)
        assert third_party <= {"streamlit", "keras", "tensorflow", "numpy", "PIL", "plotly", "pandas"}, third_party
    source = (app_folder / "app.py").read_text(encoding="utf-8")
    assert "safe_mode=True" in source and "compile=False" in source
    # pandas before plotly: plotly's lazy pandas import races between Streamlit's script threads.
    assert source.index("import pandas") < source.index("import plotly")


def test_folder_holds_the_app_and_what_it_reads(app_folder, model_parts):
    model_keras, arrays, snippet = model_parts
    files = sorted(path.relative_to(app_folder).as_posix() for path in app_folder.rglob("*") if path.is_file())
    assert files == [".streamlit/config.toml", "README.md", "app.py", "card.json", "examples/0.jpg",
                     "examples/1.jpg", "examples/2.jpg", "familiarity.npz", "familiarity.py", "labels.json",
                     "model.keras", "requirements.txt"]
    assert not [p for p in app_folder.parent.iterdir() if p.name.startswith(".")], "a staging folder was left"
    template = ROOT / "quasar_core" / "runs" / "share_app_template" / "app.py"
    assert (app_folder / "app.py").read_bytes() == template.read_bytes()
    assert (app_folder / "model.keras").read_bytes() == model_keras
    assert json.loads((app_folder / "labels.json").read_text()) == list(CLASSES)
    card = json.loads((app_folder / "card.json").read_text())
    assert {k: card[k] for k in HEADLINE} == HEADLINE
    assert card["examples"] == {label: f"examples/{i}.jpg" for i, label in enumerate(CLASSES)}
    with Image.open(app_folder / "examples" / "1.jpg") as example:
        assert example.format == "JPEG" and example.mode == "RGB"
    with np.load(app_folder / "familiarity.npz", allow_pickle=False) as stored:
        assert sorted(stored.files) == sorted(arrays)
    assert (app_folder / "familiarity.py").read_text() == snippet
    assert (app_folder / "requirements.txt").read_text() == requirements_text()
    config = tomllib.loads((app_folder / ".streamlit" / "config.toml").read_text())
    assert config["theme"]["base"] == "light"
    assert config["client"]["toolbarMode"] == "minimal"
    assert config["browser"]["gatherUsageStats"] is False
    readme = (app_folder / "README.md").read_text()
    for words in ("pip install -r requirements.txt && streamlit run app.py", "Streamlit Community Cloud",
                  "push this folder to GitHub", "This doesn't look like any of your classes",
                  HEADLINE_WORDS, "shapes\\_v2.zip · 3 classes · 245 photos", "14 March 2025",
                  "circle, square and triangle"):
        assert words in readme.replace("\n", " "), words
    assert "$" not in readme, "a template placeholder was left in the README"


def test_app_requirements_keeps_what_the_app_imports_with_markers():
    project = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    kept = [line for line in app_requirements(project).splitlines() if line and not line.startswith("#")]
    names = [re.match(r"[A-Za-z0-9._-]+", line).group(0).lower() for line in kept]
    assert set(names) <= {"tensorflow", "tensorflow-cpu", "keras", "streamlit", "plotly", "pillow", "numpy", "pandas"}
    assert {"tensorflow-cpu", "tensorflow", "streamlit", "plotly", "pillow", "numpy", "pandas"} <= set(names)
    project_lines = {line.strip() for line in project.splitlines()}
    assert all(line in project_lines for line in kept), "a line was changed instead of kept"
    assert any(line.startswith("tensorflow-cpu") and "platform_machine" in line for line in kept)
    assert not any(name.startswith("scikit") for name in names)
    # Comments, continuations and options; a package the project does not list is added unpinned.
    text = ("# top\n-r base.txt\ntensorflow==2.21.0 \\\n    ; python_version >= '3.11'  # the engine\n"
            "Pillow==13.0.0\nscikit-learn==1.9.1\nstreamlit==1.67.0\nplotly==7.1.0\nnumpy>=2\n")
    assert app_requirements(text).splitlines()[1:] == [
        "tensorflow==2.21.0 ; python_version >= '3.11'", "Pillow==13.0.0", "streamlit==1.67.0",
        "plotly==7.1.0", "numpy>=2", "pandas"]


def test_write_app_refuses_what_it_should(app_folder, model_parts, pictures, tmp_path):
    model_keras, arrays, snippet = model_parts
    given = dict(model_keras=model_keras, labels=list(CLASSES), headline=HEADLINE, examples=pictures.examples(),
                 familiarity=arrays, scoring_snippet=snippet, requirements=requirements_text())
    with pytest.raises(FileExistsError, match="not empty"):
        write_app(app_folder, **given)
    assert (app_folder / "app.py").is_file()
    cases = [({"familiarity": arrays, "scoring_snippet": None}, "scoring_snippet"),
             ({"examples": {"hexagon": b"x"}}, "hexagon"),
             ({"examples": {"circle": b"not a photo"}}, "example photo of 'circle'"),
             ({"headline": {"accuracy": 0.9}}, "title"),
             ({"model_keras": b"nope"}, "keras"),
             ({"requirements": "numpy\n"}, "streamlit and tensorflow"),
             ({"scoring_snippet": "import quasar_core\ndef familiarity(f, a):\n    pass\n"}, "quasar_core")]
    for change, message in cases:
        target = tmp_path / "refused"
        with pytest.raises(ValueError, match=re.escape(message)):
            write_app(target, **{**given, **change})
        assert not target.exists() and not list(tmp_path.iterdir()), f"{change} left files behind"


# --- app.py's photo reading, through its own functions ---------------------------------------------
def app_functions(path: Path) -> dict:
    """app.py's photo-reading functions, executed without running the page."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    wanted = {"NotAPhoto", "describe", "read_photo", "upright", "to_rgb", "MAX_PIXELS"}
    body = [node for node in tree.body
            if (isinstance(node, ast.ImportFrom) and node.module == "PIL")
            or (isinstance(node, ast.Import) and node.names[0].name in ("io", "numpy"))
            or (isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in wanted)
            or (isinstance(node, ast.Assign) and any(getattr(t, "id", "") in wanted for t in node.targets))]
    namespace: dict = {}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)
    assert wanted <= set(namespace), wanted - set(namespace)
    return namespace


def test_photos_are_read_upright_on_white_and_bad_files_named(app_folder, pictures):
    app = app_functions(app_folder / "app.py")
    read_photo, NotAPhoto = app["read_photo"], app["NotAPhoto"]
    # EXIF orientation 6 (rotate 90° clockwise to show): stored 40 wide x 20 high, shown 20 x 40.
    stored = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif)
    assert read_photo(buffer.getvalue()).shape == (40, 20, 3)
    # Transparency on white, whatever the mode.
    for image in (Image.new("RGBA", (8, 8), (0, 0, 0, 0)), Image.new("LA", (8, 8), (0, 0)),
                  Image.new("P", (8, 8), 0)):
        if image.mode == "P":
            image.info["transparency"] = 0
        pixels = read_photo(pictures.png(image))
        assert pixels.dtype == np.uint8 and pixels.shape == (8, 8, 3)
        assert (pixels == 255).all(), image.mode
    assert read_photo(pictures.png(Image.new("L", (8, 8), 9))).shape == (8, 8, 3)
    # Not photos: a reason and what to do.
    for data, words in ((b"hello, these are my notes", "not a photo (the file is text). Upload a JPEG"),
                        (b"%PDF-1.7 ...", "a PDF document"), (b"", "empty"),
                        (b"\0\0\0\x18ftypheic" + bytes(40), "HEIC"),
                        (pictures.png(Image.new("RGB", (64, 64)))[:60], "damaged")):
        with pytest.raises(NotAPhoto, match=re.escape(words)):
            read_photo(data)


# --- Streamlit's AppTest ----------------------------------------------------------------------------
def run_app(folder: Path):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(folder / "app.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(element.value for element in elements)


def test_app_shows_the_card_and_answers_photos(app_folder, pictures):
    at = run_app(app_folder)
    assert [t.value for t in at.title] == [HEADLINE["title"]]
    headline = texts(at.markdown)
    assert f"**Accuracy:** {estimate(0.93, (0.90, 0.95))} measured by" in headline
    assert HEADLINE_WORDS in headline
    assert "shapes\\_v2.zip · 3 classes · 245 photos" in headline
    assert "**Trained:** 14 March 2025" in headline
    assert [caption for image in at.image for caption in image.captions] == list(CLASSES)
    assert not at.error and not at.warning

    at.file_uploader(key="photos").set_value([("circle.png", pictures.training_photo(), "image/png"),
                                              ("notes.txt", b"shopping list: milk", "text/plain"),
                                              ("static.png", pictures.unlike_photo(), "image/png")]).run()
    assert not at.exception, [e.value for e in at.exception]
    # The text file: named, why, what to do; the other two photos still answered.
    assert [e.value for e in at.error] == [
        "**notes.txt** could not be answered: it is not a photo (the file is text). Upload a JPEG, PNG, WebP, "
        "GIF, BMP or TIFF photo instead."]
    said = re.search(rf"It is most likely \*\*({'|'.join(CLASSES)})\*\* \(({PERCENT}) sure\)\.", texts(at.markdown))
    assert said, texts(at.markdown)
    assert f"### {said.group(1)}" in texts(at.markdown)
    # The photo unlike every training photo: the verdict instead of a confident label, the chart greyed.
    [verdict] = [w.value for w in at.warning]
    assert verdict.startswith("**This doesn't look like any of your classes.**"), verdict
    assert re.search(rf"its best guess, ({'|'.join(CLASSES)}) \({PERCENT}\), should not be trusted", verdict)
    charts = {chart.key: chart for chart in at.get("plotly_chart")}
    assert sorted(charts) == ["probabilities_0", "probabilities_2"]
    figures = {key: json.loads(chart.proto.spec) for key, chart in charts.items()}
    familiar, unlike = figures["probabilities_0"]["data"][0], figures["probabilities_2"]["data"][0]
    assert sorted(familiar["y"]) == sorted(CLASSES) and all(re.fullmatch(PERCENT, t) for t in familiar["text"])
    assert len(set(familiar["marker"]["color"])) == 2  # the answer stands out
    assert len(set(unlike["marker"]["color"])) == 1 and unlike["opacity"] < 1  # greyed
    assert re.search(r"Familiarity \d{1,3} %", texts(at.caption))
    # The camera is behind a toggle.
    assert not at.camera_input
    at.toggle(key="use_camera").set_value(True).run()
    assert [camera.label for camera in at.camera_input] == ["Take a photo"]


def test_app_without_familiarity_answers_with_no_verdict(model_parts, pictures, tmp_path):
    folder = tmp_path / "app"
    folder.mkdir()  # an empty folder is fine
    write_app(folder, model_keras=model_parts[0], labels=list(CLASSES), headline={"title": "Shapes"},
              examples={}, familiarity=None, scoring_snippet=SCORING_SNIPPET,
              requirements=requirements_text())
    assert not (folder / "familiarity.npz").exists() and not (folder / "familiarity.py").exists()
    assert "no record of its training photos" in (folder / "README.md").read_text()
    at = run_app(folder)
    assert "**Accuracy:** not measured" in texts(at.markdown)
    assert "**circle**" in texts(at.markdown)  # a class without an example photo: its name
    at.file_uploader(key="photos").set_value([("static.png", pictures.unlike_photo(), "image/png")]).run()
    assert not at.exception and not at.error and not at.warning
    assert re.search(rf"It is most likely \*\*\w+\*\* \({PERCENT} sure\)\.", texts(at.markdown))
    assert "Familiarity" not in texts(at.caption)
    assert [chart.key for chart in at.get("plotly_chart")] == ["probabilities_0"]


# --- a real browser against `streamlit run app.py` ----------------------------------------------------
def clean_env(home: Path) -> dict:
    """The environment of someone who only has this folder: no PYTHONPATH to the repo, no Quasar settings."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP") and not key.startswith(("QUASAR_", "STREAMLIT_"))}
    env.update(HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2")
    return env


@pytest.fixture
def browser():
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def app_server(app_folder, tmp_path):
    """`streamlit run app.py` in the app folder, as its README says, on a free port; its URL. Always stopped."""
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    probe = subprocess.run([sys.executable, "-c", "import quasar_core"], cwd=app_folder, env=env,
                           capture_output=True, timeout=60)
    assert probe.returncode != 0, "quasar_core is importable where the app runs: the test would prove nothing"
    port = free_port()
    log = tmp_path / "streamlit.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(streamlit_command(port), cwd=app_folder, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, url, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)  # a test server: no need to wait long for a graceful stop
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        print(f"--- streamlit log (last 3000 characters) ---\n{log.read_text(errors='replace')[-3000:]}")


def screenshot(page, name: str) -> None:
    """test-artifacts/screenshots/<name>.png of the whole page (Streamlit scrolls inside its main area)."""
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("""() => Math.max(...[document.scrollingElement,
        ...document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')]
        .filter(Boolean).map(element => element.scrollHeight))""")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(height, VIEWPORT["height"]), 8000)})
    try:
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    finally:
        page.set_viewport_size(VIEWPORT)


@pytest.mark.browser
def test_browser_answers_an_uploaded_photo_and_names_a_bad_file(browser, app_server, pictures, tmp_path, request):
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
    photo = tmp_path / "my circle.png"
    photo.write_bytes(pictures.training_photo())
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list: milk, eggs")
    try:
        page.goto(app_server)
        expect(page.locator("h1").filter(has_text=HEADLINE["title"])).to_be_visible()
        expect(page.get_by_text(HEADLINE_WORDS)).to_be_visible()
        expect(page.get_by_text("shapes_v2.zip · 3 classes · 245 photos")).to_be_visible()  # Markdown escaped
        for label in CLASSES:
            expect(page.get_by_test_id("stImage").filter(has_text=label)).to_be_visible()

        uploader = page.get_by_test_id("stFileUploader").filter(has_text="Upload photos")
        uploader.locator("input[type=file]").set_input_files(photo)
        said = page.get_by_text(re.compile(rf"^It is most likely ({'|'.join(CLASSES)}) \({PERCENT} sure\)\.$"))
        expect(said).to_be_visible(timeout=ANSWER_MS)
        bars = page.locator(".st-key-probabilities_0 .js-plotly-plot")
        expect(bars).to_be_visible()
        for label in CLASSES:
            expect(bars).to_contain_text(label)
        expect(bars).to_contain_text(re.compile(PERCENT))
        expect(page.get_by_test_id("stImage").filter(has_text="my circle.png")).to_be_visible()

        uploader.locator("input[type=file]").set_input_files(notes)
        message = page.get_by_test_id("stAlertContentError")
        expect(message).to_have_text(re.compile(r"notes\.txt could not be answered: it is not a photo \(the file is "
                                                r"text\)\. Upload a JPEG, PNG"), timeout=ANSWER_MS)
        expect(said).to_be_visible()  # the photo is still answered
        expect(page.get_by_test_id("stException")).to_have_count(0)
        screenshot(page, "share-app")
        assert not errors, f"JavaScript errors in the page: {errors}"
    finally:
        if request.session.testsfailed > failures_before:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "failed-share-app.png"), full_page=True)
        context.close()
        if refused:
            print(f"refused requests to other hosts: {refused}")
