"""Exports (quasar_core.runs.export) are reloaded and checked against the run's own predictions before they are
written; the zip's predict.py works on its own; the exported model resizes exactly as the engine does."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from quasar_core.errors import QuasarError
from quasar_core.runs import export
from quasar_core.runs.export import FORMATS, TOLERANCE, export_run, reference_images, run_zip_bytes, zip_folder
from quasar_core.runs.folder import FILES, Run
from quasar_core.runs.learned import classifier_of
from quasar_core.runs.model_files import load_checked_model
from quasar_core.training import TransferClassifier
from tests.core.runs.support import small_config

ZIP_MEMBERS = {FILES.MODEL, FILES.LABELS, FILES.CONFIG, FILES.METRICS, FILES.HISTORY, FILES.DATA_REPORT,
               FILES.STATUS, FILES.FAMILIARITY, "predict.py", "photo_decoding.py", "answers.py", "README.txt"}


@pytest.fixture(scope="module")
def zip_export(tiny_run, base_loader, tmp_path_factory):
    """The shared run exported once as a zip, over an older file of the same name, and unzipped."""
    folder = tmp_path_factory.mktemp("zip-export")
    out = folder / "model.zip"
    out.write_text("an older export")
    result = export_run(tiny_run.path, format="zip", out=out, base_loader=base_loader)
    with zipfile.ZipFile(out) as archive:
        archive.extractall(folder / "unzipped")
    return out, result, folder / "unzipped"


def large_photo(width=3000, height=2000, seed=0) -> np.ndarray:
    """A big photo with detail at every scale (noise over a shape and a gradient): any other resize shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    picture = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    picture[(x - width // 2) ** 2 + (y - height // 2) ** 2 < (height // 3) ** 2] = (230, 40, 40)
    noise = rng.integers(-60, 60, picture.shape)
    return np.clip(picture + noise, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- the zip


def test_the_zip_holds_the_model_labels_results_and_a_predict_script(zip_export, tiny_run):
    out, _, unzipped = zip_export
    with zipfile.ZipFile(out) as archive:
        assert set(archive.namelist()) == ZIP_MEMBERS
        assert json.loads(archive.read(FILES.LABELS)) == tiny_run.labels
        readme = archive.read("README.txt").decode()
        script = archive.read("predict.py").decode()
    assert ", ".join(tiny_run.labels) in readme and tiny_run.metrics.headline() in readme
    assert "resized inside the model to 32 px" in readme
    compile(script, "predict.py", "exec")  # valid Python
    assert f'HERE / "{FILES.MODEL}"' in script and f'HERE / "{FILES.LABELS}"' in script and "%(" not in script
    assert (unzipped / FILES.FAMILIARITY).read_bytes() == (tiny_run.path / FILES.FAMILIARITY).read_bytes()


def test_the_zip_export_is_checked_and_replaces_the_older_file(zip_export, tiny_run):
    out, result, _ = zip_export
    assert result["path"] == str(out) and zipfile.is_zipfile(out)
    assert result["format"] == "zip" and result["tolerance"] == TOLERANCE["zip"] == 1e-6
    assert result["max_difference"] <= TOLERANCE["zip"]
    assert result["images"] == min(16, len(list((tiny_run.path / FILES.EXAMPLES).iterdir())))


def test_the_predict_script_answers_and_says_when_a_photo_looks_like_none(zip_export, tiny_run, base_loader,
                                                                         tmp_path, shapes):
    _, _, unzipped = zip_export
    triangle, noise = tmp_path / "triangle.png", tmp_path / "noise.png"
    shapes.image("triangle", 99).save(triangle)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(noise)
    completed = subprocess.run([shapes.python, str(unzipped / "predict.py"), str(triangle), str(noise)],
                               capture_output=True, text=True, timeout=600, env=shapes.env(), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    first, second = completed.stdout.strip().splitlines()[-2:]
    match = re.fullmatch(rf"{re.escape(str(triangle))}: It is most likely (\w+) \(((\d+\.\d) %|more than 99 %) sure\)\.",
                         first)
    assert match, first
    # The script gives the run's own answer for the raw picture (the model resizes inside).
    model = classifier_of(tiny_run, base_loader=base_loader).model()
    probabilities = np.asarray(model(np.asarray(shapes.image("triangle", 99), np.float32)[None]))[0]
    assert match.group(1) == tiny_run.labels[int(probabilities.argmax())] == "triangle"
    if match.group(3):
        assert float(match.group(3)) == pytest.approx(100 * probabilities.max(), abs=0.051)
    else:  # never "100.0 %"
        assert probabilities.max() > 0.99
    assert second.startswith(f"{noise}: This doesn't look like any of your classes (the closest is "), second


# --------------------------------------------------------------------------- one decoder


def test_the_zip_carries_the_engines_decoder_byte_for_byte(zip_export):
    from quasar_core.runs.share_app import ANSWERS, DECODER

    _, _, unzipped = zip_export
    assert (unzipped / "photo_decoding.py").read_bytes() == DECODER.read_bytes()
    assert (unzipped / "answers.py").read_bytes() == ANSWERS.read_bytes()
    script = (unzipped / "predict.py").read_text()
    assert "photo_decoding.decode_photo(" in script and "photo_decoding.resize_square(" in script
    assert "exif_transpose" not in script and "Image.open" not in script, "predict.py decodes photos itself"


def test_predict_py_reads_awkward_photos_as_the_engine_and_refuses_a_cut_short_one(zip_export, tmp_path, shapes):
    """Decoder parity, engine / predict.py: the zip's decoder copy gives the engine's pixels for 16-bit,
    palette-with-transparency, LA, CMYK and EXIF-rotated photos; predict.py refuses truncated files in plain words."""
    import importlib.util

    from quasar_core.data import Limits, decode_image
    from tests.decoding_cases import awkward_photos, truncated_photos

    _, _, unzipped = zip_export
    spec = importlib.util.spec_from_file_location("zip_photo_decoding", unzipped / "photo_decoding.py")
    decoder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(decoder)
    paths = []
    for name, data in {**awkward_photos(), **truncated_photos()}.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
        if name in awkward_photos():
            theirs, _ = decoder.decode_photo(data)
            assert np.array_equal(theirs, decode_image(data, name, limits=Limits()).pixels), name
    completed = subprocess.run([shapes.python, str(unzipped / "predict.py"), *paths], capture_output=True, text=True,
                               timeout=600, env=shapes.env(), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    lines = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in completed.stdout.strip().splitlines()
             if line.startswith(str(tmp_path))}
    for name in awkward_photos():
        assert lines[str(tmp_path / name)].startswith(("It is most likely", "Not sure", "This doesn't")), lines
    for name in truncated_photos():
        assert lines[str(tmp_path / name)].startswith(
            "could not be answered: this photo is cut short — the file is incomplete"), lines


def test_the_exported_model_resizes_a_large_photo_exactly_as_the_engine(zip_export, tiny_run, base_loader):
    """THE one resize: a 3000x2000 photo given raw to the exported model.keras (its Resizing layer) and given to
    TransferClassifier.predict_proba (data.images.resize_square first) gives the same answer."""
    _, _, unzipped = zip_export
    photo = large_photo()
    exported = load_checked_model(unzipped / FILES.MODEL)
    classifier = classifier_of(tiny_run, base_loader=base_loader)
    assert isinstance(classifier, TransferClassifier)
    engine, engine_features = classifier.predict_proba([photo], with_features=True)
    both = keras_with_features(exported)
    raw, raw_features = (np.asarray(x) for x in both(photo[None].astype(np.float32), training=False))
    np.testing.assert_allclose(raw, engine, rtol=0, atol=1e-4)
    np.testing.assert_allclose(raw_features, engine_features, rtol=1e-3, atol=1e-3)
    # The check has teeth: a resize without antialiasing moves the features far more than that.
    nearest = photo[:: photo.shape[0] // 32, :: photo.shape[1] // 32][:32, :32]
    _, nearest_features = classifier.predict_proba([nearest], with_features=True)
    assert np.max(np.abs(nearest_features - engine_features)) > 10 * np.max(np.abs(raw_features - engine_features))


def keras_with_features(model):
    from quasar_core.head import with_features

    return with_features(model)


# --------------------------------------------------------------------------- other formats


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
@pytest.mark.parametrize("fmt", ["savedmodel", "tflite"])
def test_savedmodel_and_tflite_exports_reproduce_the_run(tiny_run, base_loader, tmp_path, fmt):
    out = tmp_path / f"model.{fmt}"
    result = export_run(tiny_run.path, format=fmt, out=out, base_loader=base_loader)
    assert result["max_difference"] <= TOLERANCE[fmt] == result["tolerance"]
    assert result["images"] >= 1
    if fmt == "savedmodel":
        assert (out / "saved_model.pb").is_file()
    else:
        assert out.is_file() and out.read_bytes()[4:8] == b"TFL3"  # the TFLite flatbuffer identifier
        import tensorflow as tf

        interpreter = tf.lite.Interpreter(model_path=str(out))
        # TFLite has no antialiased resize: its model takes photos resized to the run's size.
        assert list(interpreter.get_input_details()[0]["shape"]) == [1, 32, 32, 3]


def test_the_app_export_is_checked_against_the_product_and_needs_no_tensorflow(tiny_run, base_loader, tmp_path):
    from quasar_core.runs.serving import served_model

    out = tmp_path / "app"
    result = export_run(tiny_run.path, format="app", out=out, base_loader=base_loader)
    assert result["max_difference"] <= TOLERANCE["app"] == 1e-3 and (out / "app.py").is_file()
    assert (out / "model.onnx").is_file() and not (out / FILES.MODEL).exists()
    assert result["model_bytes"] == (out / "model.onnx").stat().st_size
    # random weights never run int8: the float graph, its weights stored as small as reproduces the product
    assert result["storage"] in ("int8 weights", "mixed weights", "float16 weights", "float32") and result["model"]
    requirements = (out / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements and "tensorflow" not in requirements
    # the written folder answers the example photos as the product does (its own decoder copy, its model)
    photos = export.example_photos(tiny_run)
    expected = served_model(tiny_run, base_loader=base_loader).predict_proba(photos)
    np.testing.assert_allclose(export._predict_app(out, photos), expected, rtol=0, atol=1e-3)


# --------------------------------------------------------------------------- refusals


def test_an_export_that_does_not_reproduce_the_run_is_not_written(tiny_run, base_loader, tmp_path, monkeypatch):
    # The reloaded export answers something else (all zeros) for the reference images.
    monkeypatch.setattr(export, "_predict_zip", lambda archive, images, scratch: np.zeros((len(images), 3)))
    out = tmp_path / "bad.zip"
    with pytest.raises(QuasarError, match="does not reproduce the run's predictions") as raised:
        export_run(tiny_run.path, format="zip", out=out, base_loader=base_loader)
    assert "allowed 1e-06" in str(raised.value) and "it was not written" in str(raised.value)
    assert not out.exists()
    out.write_text("the previous export")
    with pytest.raises(QuasarError, match="does not reproduce"):
        export_run(tiny_run.path, format="zip", out=out, base_loader=base_loader)
    assert out.read_text() == "the previous export"  # a failed check leaves what was there


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_a_tolerance_is_a_strict_bound(tiny_run, base_loader, tmp_path, monkeypatch):
    monkeypatch.setitem(TOLERANCE, "savedmodel", -1.0)  # nothing can be within it
    with pytest.raises(QuasarError, match="The savedmodel export does not reproduce"):
        export_run(tiny_run.path, format="savedmodel", out=tmp_path / "sm", base_loader=base_loader)
    assert not (tmp_path / "sm").exists()


def test_reference_images_are_the_runs_examples_at_its_input_size(tiny_run):
    images = reference_images(tiny_run)
    count = len(list((tiny_run.path / FILES.EXAMPLES).iterdir()))
    assert images.shape == (min(16, count), 32, 32, 3)
    assert images.dtype == np.float32 and 0 <= images.min() and images.max() <= 255
    assert reference_images(tiny_run, limit=1).shape[0] == 1


def test_bad_formats_and_runs_without_a_model_are_refused(tiny_run, dataset, base_loader, tmp_path):
    from quasar_core.runs.pipeline import train_run

    with pytest.raises(ValueError, match="'onnx'"):
        export_run(tiny_run.path, format="onnx", out=tmp_path / "x")
    assert set(FORMATS) == {"zip", "savedmodel", "tflite", "app"} == set(TOLERANCE)
    cancel = threading.Event()
    cancel.set()
    empty = train_run(dataset, small_config(), tmp_path / "empty-run", base_loader=base_loader, cancel=cancel)
    with pytest.raises(QuasarError, match="no trained model"):
        export_run(empty.path, format="zip", out=tmp_path / "x.zip")
    with pytest.raises(QuasarError, match="no trained model"):
        run_zip_bytes(empty.path)
    with pytest.raises(QuasarError, match="no example photos"):
        reference_images(empty)
    assert not (tmp_path / "x.zip").exists()


def test_zip_folder_keeps_the_tree_under_a_prefix(tmp_path):
    (tmp_path / "app" / "sub").mkdir(parents=True)
    (tmp_path / "app" / "app.py").write_text("print(1)")
    (tmp_path / "app" / "sub" / "x.txt").write_text("x")
    import io

    with zipfile.ZipFile(io.BytesIO(zip_folder(tmp_path / "app", prefix="shared"))) as archive:
        assert sorted(archive.namelist()) == ["shared/app.py", "shared/sub/x.txt"]
        assert archive.read("shared/app.py") == b"print(1)"


def test_a_run_opened_from_a_file_exports_its_own_model_file(zip_export, tmp_path):
    from quasar_core.runs.model_files import import_model

    out, _, unzipped = zip_export
    opened = import_model(out.read_bytes(), "model.zip", tmp_path / "opened")
    assert export.model_bytes(opened) == (unzipped / FILES.MODEL).read_bytes()
    assert Run.open(opened.path).opened_from_file
