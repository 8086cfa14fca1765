"""`export --format app`: the predict-only Streamlit app folder (quasar_core.runs.share_app), without TensorFlow.

A tiny real Quasar-shaped model (random VGG16 at 32 px + a head, built for ONNX Runtime by app_model.py)
is written as an app folder once per module, then:

* static: app.py, answers.py, photo_decoding.py and familiarity.py import nothing from quasar_core,
  only streamlit, onnxruntime, numpy, pillow and the standard library; photo_decoding.py is the engine's
  own file byte for byte; the folder holds what it should; its requirements pin no TensorFlow;
* decoding parity: the app's copy of the decoder and the engine read 16-bit, palette-with-transparency,
  LA, CMYK and EXIF-rotated photos to the same pixels, and refuse a truncated one in the same plain words;
* Streamlit's AppTest: title, headline, class names; photos answered with the three answers, a text file
  named with what to do, a photo unlike the training ones "doesn't look like any of your classes";
  without a familiarity reference the app answers with no verdict;
* a real browser (Debian's chromium via Playwright) against `streamlit run app.py` started in the
  app folder with a clean environment (quasar_core not importable there): a photo through the
  uploader -> its answer and the bars; a text file -> the clear message.

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

from quasar_core.runs import app_model
from quasar_core.runs.share_app import ANSWERS, DECODER, app_requirements, write_app
from quasar_core.wording import confidence, estimate

from quasar_core.familiarity import SCORING_SNIPPET, FamiliarityModel
from tests.browser.support import (SCREENSHOTS, expect, free_port, launched_chromium, streamlit_command,
                                   wait_until_healthy)

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("circle", "square", "triangle")  # the shapes of tests/conftest.py

ANSWER_MS = 60_000  # the server's first answer opens the ONNX model (seconds; more on a busy machine)
PAGE_MS = 30_000
VIEWPORT = {"width": 1200, "height": 1000}

HEADLINE = {"title": "Circle, square or triangle?", "accuracy": 0.93, "accuracy_interval": [0.90, 0.95],
            "method": "5-fold cross-validation over 245 photos", "dataset": "shapes_v2.zip", "n_photos": 245,
            "trained_at": "2025-03-14T09:30:00"}
HEADLINE_WORDS = "about 93 % (90–95 %) measured by 5-fold cross-validation over 245 photos"  # the README's
PAGE_WORDS = "about 93 % (90–95 %) on photos the model being tested never saw"  # the page's (no "fold")
PERCENT = r"(?:\d{1,3}\.\d %|more than 99 %|less than 1 %)"  # "94.7 %": a space before the sign; never 100 %


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
def model_parts(base, pictures):
    """(model.onnx bytes, familiarity arrays, scoring snippet) of a tiny real model."""
    from quasar_core.data.photo_decoding import resize_square
    from quasar_core.head import Head

    rng = np.random.default_rng(0)
    head = Head(mean=np.zeros(1024, np.float32), scale=np.ones(1024, np.float32),
                kernel=rng.normal(scale=0.05, size=(1024, len(CLASSES))).astype(np.float32),
                bias=np.zeros(len(CLASSES), np.float32), temperature=1.0)
    model = app_model.build(conv_weights=app_model.conv_weights_of(base), head=head, image_size=32,
                            storage="int8 weights")
    per_class = pictures.per_class
    photos = np.stack([resize_square(np.asarray(pictures.image(label, n)), 32) for label in CLASSES
                       for n in range(per_class)])
    _, features = app_model.run(model.onnx, photos)
    arrays = FamiliarityModel().fit(features, np.repeat(np.arange(len(CLASSES)), per_class)).to_arrays()
    return model.onnx, arrays, SCORING_SNIPPET


def requirements_text() -> str:
    return app_requirements((ROOT / "requirements.txt").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def app_folder(model_parts, pictures, tmp_path_factory) -> Path:
    model_onnx, arrays, snippet = model_parts
    folder = tmp_path_factory.mktemp("share-app") / "circle-square-triangle"
    written = write_app(folder, model_onnx=model_onnx, image_size=32, labels=list(CLASSES), headline=HEADLINE,
                        examples=pictures.examples(), familiarity=arrays, scoring_snippet=snippet,
                        requirements=requirements_text(), model_words="VGG16 (tests: random weights)")
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


APP_FILES = ("app.py", "answers.py", "photo_decoding.py", "familiarity.py")


def test_app_imports_nothing_from_quasar_core_and_no_tensorflow(app_folder):
    for name in APP_FILES:
        modules = imported_modules((app_folder / name).read_text(encoding="utf-8"))
        tops = {module.split(".")[0] for module in modules}
        assert "quasar_core" not in tops, f"{name} imports {sorted(modules)}"
        third_party = tops - set(sys.stdlib_module_names) - {"answers", "photo_decoding"}
        assert third_party <= {"streamlit", "onnxruntime", "numpy", "PIL"}, (name, third_party)


def test_the_app_carries_the_engines_decoder_byte_for_byte(app_folder):
    """One decoder: the app's photo_decoding.py is quasar_core/data/photo_decoding.py itself, written at export."""
    assert (app_folder / "photo_decoding.py").read_bytes() == DECODER.read_bytes()
    assert DECODER == ROOT / "quasar_core" / "data" / "photo_decoding.py"
    assert (app_folder / "answers.py").read_bytes() == ANSWERS.read_bytes()
    source = (app_folder / "app.py").read_text(encoding="utf-8")
    assert "photo_decoding.decode_photo(" in source and "photo_decoding.resize_square(" in source
    assert "Image.open" not in source and "exif_transpose" not in source, "app.py decodes photos itself"


def test_folder_holds_the_app_and_what_it_reads(app_folder, model_parts):
    model_onnx, arrays, snippet = model_parts
    files = sorted(path.relative_to(app_folder).as_posix() for path in app_folder.rglob("*")
                   if path.is_file() and "__pycache__" not in path.parts)
    assert files == [".streamlit/config.toml", "README.md", "answers.py", "app.py", "card.json", "examples/0.jpg",
                     "examples/1.jpg", "examples/2.jpg", "familiarity.npz", "familiarity.py", "labels.json",
                     "model.onnx", "photo_decoding.py", "requirements.txt"]
    assert not [p for p in app_folder.parent.iterdir() if p.name.startswith(".")], "a staging folder was left"
    template = ROOT / "quasar_core" / "runs" / "share_app_template" / "app.py"
    assert (app_folder / "app.py").read_bytes() == template.read_bytes()
    assert (app_folder / "model.onnx").read_bytes() == model_onnx
    assert json.loads((app_folder / "labels.json").read_text()) == list(CLASSES)
    card = json.loads((app_folder / "card.json").read_text())
    assert {k: card[k] for k in HEADLINE} == HEADLINE
    assert card["examples"] == {label: f"examples/{i}.jpg" for i, label in enumerate(CLASSES)}
    assert card["image_size"] == 32 and card["model"] == "VGG16 (tests: random weights)"
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
                  "push this folder to GitHub", "This doesn't look like any of your classes", "no TensorFlow",
                  HEADLINE_WORDS, "shapes\\_v2.zip · 3 classes · 245 photos", "14 March 2025",
                  "circle, square and triangle", "`photo_decoding.py`", "`model.onnx`"):
        assert words in readme.replace("\n", " "), words
    assert "$" not in readme, "a template placeholder was left in the README"


def test_app_requirements_pin_what_the_app_imports_and_no_tensorflow():
    project = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    kept = [line for line in app_requirements(project).splitlines() if line and not line.startswith("#")]
    names = [re.match(r"[A-Za-z0-9._-]+", line).group(0).lower() for line in kept]
    assert sorted(names) == ["numpy", "onnxruntime", "pillow", "streamlit"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][0-9A-Za-z.+-]*", line) for line in kept), kept  # exact pins
    from importlib import metadata

    project_lines = {line.strip() for line in project.splitlines()}
    for line in kept:  # as the project pins it, else as installed where the export's check ran
        name = line.split("==")[0]
        assert line in project_lines or any(p.startswith(line + ";") for p in project_lines) \
            or line == f"{name}=={metadata.version(name)}", line
    assert not any("tensorflow" in line or "keras" in line for line in kept)
    onnxruntime = next(line for line in kept if line.startswith("onnxruntime"))
    assert ";" not in onnxruntime, "the app cannot run without ONNX Runtime: no platform marker"
    # Comments, continuations and options; a package the app needs that the project does not list is added.
    text = ("# top\n-r base.txt\ntensorflow==2.21.0 \\\n    ; python_version >= '3.11'  # the engine\n"
            "Pillow==13.0.0\nscikit-learn==1.9.1\nstreamlit==1.67.0\nplotly==7.1.0\nnumpy>=2\n"
            "onnxruntime==1.32.0; sys_platform == 'linux'\n")
    assert [line for line in app_requirements(text).splitlines() if not line.startswith("#")] == [
        "Pillow==13.0.0", "streamlit==1.67.0", f"numpy=={metadata.version('numpy')}", "onnxruntime==1.32.0"]


def test_write_app_refuses_what_it_should(app_folder, model_parts, pictures, tmp_path):
    model_onnx, arrays, snippet = model_parts
    given = dict(model_onnx=model_onnx, image_size=32, labels=list(CLASSES), headline=HEADLINE,
                 examples=pictures.examples(), familiarity=arrays, scoring_snippet=snippet,
                 requirements=requirements_text())
    with pytest.raises(FileExistsError, match="not empty"):
        write_app(app_folder, **given)
    assert (app_folder / "app.py").is_file()
    cases = [({"familiarity": arrays, "scoring_snippet": None}, "scoring_snippet"),
             ({"examples": {"hexagon": b"x"}}, "hexagon"),
             ({"examples": {"circle": b"not a photo"}}, "example photo of 'circle'"),
             ({"headline": {"accuracy": 0.9}}, "title"),
             ({"model_onnx": b"PK\x03\x04 a keras file"}, "ONNX"),
             ({"image_size": 8}, "image_size"),
             ({"requirements": "numpy\n"}, "streamlit and onnxruntime"),
             ({"requirements": requirements_text() + "tensorflow-cpu==2.21.0\n"}, "must not name tensorflow"),
             ({"scoring_snippet": "import quasar_core\ndef familiarity(f, a):\n    pass\n"}, "quasar_core")]
    for change, message in cases:
        target = tmp_path / "refused"
        with pytest.raises(ValueError, match=re.escape(message)):
            write_app(target, **{**given, **change})
        assert not target.exists() and not list(tmp_path.iterdir()), f"{change} left files behind"


def test_app_model_storages_shrink_the_file_and_keep_the_answers(base, pictures):
    """app_model.build: the head on VGG16 in one ONNX graph; 8-bit, mixed and 16-bit weight storage against float32."""
    from quasar_core.data.photo_decoding import resize_square
    from quasar_core.head import Head

    rng = np.random.default_rng(1)
    head = Head(mean=np.full(1024, 0.5, np.float32), scale=np.full(1024, 2.0, np.float32),
                kernel=rng.normal(scale=0.5, size=(1024, 3)).astype(np.float32),
                bias=np.array([0.1, -0.2, 0.0], np.float32), temperature=1.7)
    photos = np.stack([resize_square(np.asarray(pictures.image(label, 3)), 32) for label in CLASSES])
    conv = app_model.conv_weights_of(base)
    full = app_model.build(conv_weights=conv, head=head, image_size=32, storage="float32")
    probabilities, features = app_model.run(full.onnx, photos)
    np.testing.assert_allclose(probabilities, head.probabilities(features), rtol=0, atol=1e-6)  # Head's arithmetic
    sizes = {"float32": len(full.onnx)}
    for storage in ("float16 weights", "mixed weights", "int8 weights"):
        model = app_model.build(conv_weights=conv, head=head, image_size=32, storage=storage)
        sizes[storage] = len(model.onnx)
        theirs, _ = app_model.run(model.onnx, photos)
        np.testing.assert_allclose(theirs, probabilities, rtol=0, atol=0.05)
    assert sizes["float32"] > 58e6 and sizes["float16 weights"] < 30e6 and sizes["mixed weights"] < 23e6
    assert sizes["int8 weights"] < 15e6


# --- decoding parity: the app's copy of the one decoder and the engine ------------------------------
def app_decoder(folder: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"app_photo_decoding_{abs(hash(folder))}", folder / "photo_decoding.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_app_reads_awkward_photos_as_the_engine_does(app_folder):
    from quasar_core.data import ImageRejected, Limits, decode_image
    from tests.decoding_cases import awkward_photos, truncated_photos

    decoder = app_decoder(app_folder)
    for name, data in awkward_photos().items():
        ours = decode_image(data, name, limits=Limits()).pixels
        theirs, _ = decoder.decode_photo(data, max_pixels=60_000_000, min_side=16)
        assert np.array_equal(ours, theirs), name
        assert np.array_equal(decoder.resize_square(theirs, 32),
                              __import__("quasar_core.data.images", fromlist=["x"]).resize_square(ours, 32)), name
    for name, data in truncated_photos().items():
        with pytest.raises(ImageRejected) as engine:
            decode_image(data, name, limits=Limits())
        with pytest.raises(decoder.PhotoRejected) as app:
            decoder.decode_photo(data)
        assert engine.value.reason == app.value.reason
        assert app.value.reason.startswith("this photo is cut short — the file is incomplete"), app.value.reason


def test_app_words_equal_the_products(app_folder):
    import importlib.util

    spec = importlib.util.spec_from_file_location("app_answers", app_folder / "answers.py")
    words = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(words)
    for fraction in (0.0, 0.004, 0.0099, 0.01, 0.5, 0.8734, 0.99, 0.9901, 0.9996, 1.0):
        assert words.confidence(fraction) == confidence(fraction), fraction
    probabilities = np.array([0.2, 0.7, 0.1])
    assert words.verdict(probabilities, list(CLASSES)) == ("familiar", "It is most likely square (70.0 % sure).")
    assert words.verdict(probabilities, list(CLASSES), unusual=True) == (
        "unusual", "Not sure: this photo looks unusual for your classes; the closest is square (70.0 % sure).")
    from quasar_core.predicting import answer_words  # the product's own words: the app says the same

    for unknown, unusual in ((False, False), (False, True), (True, False)):
        result = {"label": "square", "probabilities": dict(zip(CLASSES, probabilities)), "unknown": unknown,
                  "unusual": unusual, "familiarity": 0.5}
        assert words.verdict(probabilities, list(CLASSES), unknown=unknown, unusual=unusual)[1].startswith(
            answer_words(result, list(CLASSES))), (unknown, unusual)
    kind, sentence = words.verdict(probabilities, list(CLASSES), unknown=True, unusual=True)
    assert kind == "unknown" and sentence.startswith("This doesn't look like any of your classes")
    assert words.verdict(np.array([0.9999, 0.0001, 0]), list(CLASSES))[1] == \
        "It is most likely circle (more than 99 % sure)."
    # familiarity.py returning two arrays (today) or three (familiarity, unknown, unusual)
    two = words.familiarity_verdicts(lambda f, a: (np.array([0.5]), np.array([False])), None, None)
    three = words.familiarity_verdicts(lambda f, a: (np.array([0.5]), np.array([False]), np.array([True])), None, None)
    assert [list(x) for x in two] == [[0.5], [False], [False]] and [list(x) for x in three] == [[0.5], [False], [True]]


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
    assert f"**Accuracy:** {PAGE_WORDS}" in headline
    assert "fold" not in at.markdown[0].value  # how it was measured: for specialists, in the expander
    assert at.expander[0].label == "Details for specialists"
    assert "Accuracy measured by 5-fold cross-validation over 245 photos." in texts(at.expander[0].markdown)
    assert "shapes\\_v2.zip · 3 classes · 245 photos" in headline
    assert "**Trained:** 14 March 2025" in headline
    assert [caption for image in at.image for caption in image.captions] == list(CLASSES)
    assert not at.error and not at.warning

    at.file_uploader(key="photos").set_value([("circle.png", pictures.training_photo(), "image/png"),
                                              ("notes.txt", b"shopping list: milk", "text/plain"),
                                              ("static.png", pictures.unlike_photo(), "image/png")]).run()
    assert not at.exception, [e.value for e in at.exception]
    # The text file: named, why, what to do (the engine's own words); the other two photos still answered.
    assert [e.value for e in at.error] == [
        "**notes.txt** could not be answered: not an image (the file is text); remove it or replace it with a "
        "JPEG/PNG"]
    said = re.search(rf"It is most likely \*\*({'|'.join(CLASSES)})\*\* \(({PERCENT}) sure\)\.", texts(at.markdown))
    assert said, texts(at.markdown)
    assert f"### {said.group(1)}" in texts(at.markdown)
    # The photo unlike every training photo: the verdict instead of a confident label, its bars marked.
    [verdict] = [w.value for w in at.warning]
    assert verdict.startswith("**This doesn't look like any of your classes.**"), verdict
    assert re.search(rf"the closest is ({'|'.join(CLASSES)}) \({PERCENT}\), but that guess should not be trusted",
                     verdict)
    bars = [bar.proto.text for bar in at.get("progress")]
    assert len(bars) == 2 * len(CLASSES), bars
    assert all(re.fullmatch(rf"\**({'|'.join(CLASSES)})\** · {PERCENT}", text) for text in bars), bars
    assert bars[0].startswith(f"**{said.group(1)}** · ")  # the answer stands out
    assert "Not to be trusted: the photo is unlike the training photos" in texts(at.caption)
    assert re.search(r"Familiarity \d{1,3} %", texts(at.caption))
    # The camera is behind a toggle.
    assert not at.camera_input
    at.toggle(key="use_camera").set_value(True).run()
    assert [camera.label for camera in at.camera_input] == ["Take a photo"]


def test_app_without_familiarity_answers_with_no_verdict(model_parts, pictures, tmp_path):
    folder = tmp_path / "app"
    folder.mkdir()  # an empty folder is fine
    write_app(folder, model_onnx=model_parts[0], image_size=32, labels=list(CLASSES), headline={"title": "Shapes"},
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
    assert len(at.get("progress")) == len(CLASSES)


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
        expect(page.get_by_text(PAGE_WORDS)).to_be_visible()
        expect(page.get_by_text("shapes_v2.zip · 3 classes · 245 photos")).to_be_visible()  # Markdown escaped
        for label in CLASSES:
            expect(page.get_by_test_id("stImage").filter(has_text=label)).to_be_visible()

        uploader = page.get_by_test_id("stFileUploader").filter(has_text="Upload photos")
        uploader.locator("input[type=file]").set_input_files(photo)
        said = page.get_by_text(re.compile(rf"^It is most likely ({'|'.join(CLASSES)}) \({PERCENT} sure\)\.$"))
        expect(said).to_be_visible(timeout=ANSWER_MS)
        bars = page.locator(".st-key-probabilities_0")
        expect(bars).to_be_visible()
        for label in CLASSES:
            expect(bars).to_contain_text(label)
        expect(bars).to_contain_text(re.compile(PERCENT))
        expect(page.get_by_test_id("stImage").filter(has_text="my circle.png")).to_be_visible()

        uploader.locator("input[type=file]").set_input_files(notes)
        message = page.get_by_test_id("stAlertContentError")
        expect(message).to_have_text(re.compile(r"notes\.txt could not be answered: not an image \(the file is "
                                                r"text\); remove it or replace it with a JPEG/PNG"), timeout=ANSWER_MS)
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
