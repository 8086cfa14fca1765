"""Model files from outside (quasar_core.runs.model_files): objects that carry code are refused before anything
of them is loaded; a Quasar export zip or a bare .keras opens as a run that answers like the original."""

from __future__ import annotations

import io
import json
import time
import zipfile

import numpy as np
import pytest

from quasar_core.errors import QuasarError, UnsafeModelError
from quasar_core.runs.folder import FILES, Run, read_json, write_json
from quasar_core.runs.learned import OpenedModel, classifier_of
from quasar_core.runs.model_files import (check_model_config, image_size_of, import_model, load_checked_model,
                                          read_keras_config)
from quasar_core.runs.report import trained_when
from tests.core.runs.support import copy_run

TRAINED = time.mktime((2021, 3, 4, 10, 30, 0, 0, 0, -1))  # long before any test runs


@pytest.fixture(scope="module")
def exported(tiny_run, base_loader, tmp_path_factory):
    """A run trained "in 2021", its export zip and the bare model.keras inside it."""
    from quasar_core.runs.export import run_zip_bytes

    run = copy_run(tiny_run, tmp_path_factory.mktemp("old") / "run")
    write_json(run.path / FILES.STATUS, {**run.status.to_dict(), "started": TRAINED - 90, "finished": TRAINED,
                                         "source": "shapes.zip"})
    run = Run.open(run.path)
    data = run_zip_bytes(run.path, base_loader=base_loader)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        model = archive.read(FILES.MODEL)
    return run, data, model


def keras_with_lambda(tmp_path, marker):
    """A .keras whose Lambda layer would create `marker` if its code ever ran."""
    import keras

    def touch(x, marker=str(marker)):
        open(marker, "w").close()
        return x

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(touch, name="payload")(inputs))
    path = tmp_path / "evil.keras"
    model.save(path)
    marker.unlink(missing_ok=True)  # building the model ran it once, here, on purpose
    return path


# --------------------------------------------------------------------------- refused before loading


def test_a_lambda_model_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    path = keras_with_lambda(tmp_path, marker)
    with pytest.raises(UnsafeModelError, match="'evil.keras' contains a Lambda layer"):
        load_checked_model(path)
    with pytest.raises(UnsafeModelError, match="Lambda"):
        import_model(path.read_bytes(), "evil.keras", tmp_path / "run")
    archive = tmp_path / "evil.zip"  # the same model inside an export-shaped zip
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(FILES.MODEL, path.read_bytes())
        zf.writestr(FILES.LABELS, json.dumps(["a"]))
    with pytest.raises(UnsafeModelError, match="Lambda"):
        import_model(archive.read_bytes(), "evil.zip", tmp_path / "run")
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


def test_custom_classes_and_foreign_modules_are_refused():
    config = {"class_name": "Functional", "module": "keras.src.models.functional",
              "config": {"layers": [{"class_name": "Dense", "module": "keras.layers", "config": {}}]}}
    check_model_config(config)  # stock layers pass
    config["config"]["layers"].append({"class_name": "Evil", "module": "my_package.layers",
                                       "registered_name": "x>Evil"})
    with pytest.raises(UnsafeModelError, match="'Evil' from 'my_package.layers'"):
        check_model_config(config)
    with pytest.raises(UnsafeModelError, match="from 'os'"):
        check_model_config({"class_name": "Dense", "module": "os", "config": {}})
    with pytest.raises(UnsafeModelError, match="'Dense'"):  # a stock name registered as someone else's class
        check_model_config({"class_name": "Dense", "module": "keras.layers", "registered_name": "custom>Dense"})
    with pytest.raises(UnsafeModelError, match="Lambda"):
        check_model_config({"layers": [[{"class_name": "__lambda__", "config": {"code": "..."}}]]})


def test_what_is_not_a_model_says_so(tmp_path):
    with pytest.raises(QuasarError, match="'notes.zip' is neither"):
        import_model(b"plain text", "notes.zip", tmp_path / "run")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(QuasarError, match=f"no {FILES.MODEL} inside"):
        import_model(archive.getvalue(), "other.zip", tmp_path / "run")
    with pytest.raises(QuasarError, match="not a Keras 3 '.keras' model file"):
        read_keras_config(b"PK\x05\x06" + bytes(18), name="'x.keras'")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- opened as a run


def test_an_export_zip_opens_with_its_labels_metrics_and_familiarity(exported, dataset, base_loader, tmp_path):
    original, data, _ = exported
    opened = import_model(data, "export.zip", tmp_path / "opened")
    assert opened.opened_from_file and opened.has_model and opened.state == "done"
    assert opened.labels == original.labels and opened.config.image_size == original.config.image_size
    assert opened.metrics == original.metrics and opened.report == original.report
    assert opened.history == original.history
    assert (opened.path / FILES.FAMILIARITY).read_bytes() == (original.path / FILES.FAMILIARITY).read_bytes()
    assert not (opened.path / FILES.HEAD).exists()  # the model file is the model
    model = classifier_of(opened)
    assert isinstance(model, OpenedModel) and model.familiarity_ is not None
    photos = [dataset.pixels(i) for i in range(0, len(dataset), 3)]
    expected, expected_features = classifier_of(original, base_loader=base_loader).predict_proba(
        photos, with_features=True)
    probabilities, features = model.predict_proba(photos, with_features=True)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    np.testing.assert_allclose(features, expected_features, rtol=1e-5, atol=1e-4)
    assert list(model.familiarity_.is_unknown(features)) == list(
        classifier_of(original, base_loader=base_loader).familiarity_.is_unknown(expected_features))


def test_an_opened_export_shows_when_it_was_trained_not_when_it_was_opened(exported, tmp_path):
    original, data, _ = exported
    opened = import_model(data, "export.zip", tmp_path / "opened")
    assert opened.status.started == pytest.approx(TRAINED - 90) and opened.status.finished == pytest.approx(TRAINED)
    assert trained_when(opened) == trained_when(original) and "2021" in trained_when(opened)
    assert opened.status.source == "shapes.zip" and opened.status.opened_from == "export.zip"
    assert opened.status.message == "Opened from export.zip."
    assert Run.open(opened.path).status.finished == pytest.approx(TRAINED)  # as saved, not only as returned


def test_a_bare_keras_file_opens_with_numbered_classes_and_the_same_answers(exported, dataset, base_loader,
                                                                          tmp_path):
    original, _, model_file = exported
    before = time.time()
    bare = import_model(model_file, "model.keras", tmp_path / "bare")
    assert bare.labels == [f"class {i + 1}" for i in range(len(original.labels))]
    assert bare.state == "done" and bare.has_model and bare.metrics is None and bare.report is None
    assert bare.status.finished is None and bare.status.started >= before  # nothing says when it was trained
    assert "unknown date" in trained_when(bare)
    assert read_json(bare.path / FILES.STATUS)["opened_from"] == "model.keras"
    model = classifier_of(bare)
    assert model.familiarity_ is None
    photos = [dataset.pixels(i) for i in range(0, len(dataset), 5)]
    np.testing.assert_allclose(model.predict_proba(photos),
                               classifier_of(original, base_loader=base_loader).predict_proba(photos), atol=1e-6)
    assert image_size_of(model.model()) == original.config.image_size


def zip_with(data: bytes, **changes) -> bytes:
    """The export zip with some members replaced (None: left out)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            if name not in changes:
                target.writestr(name, source.read(name))
        for name, content in changes.items():
            if content is not None:
                target.writestr(name, content)
    return out.getvalue()


@pytest.mark.parametrize(("member", "content", "message"), [
    (FILES.LABELS, json.dumps(["only", "two"]), "predicts 3 classes but its labels name 2"),
    (FILES.METRICS, "{not json", f"has a damaged {FILES.METRICS}"),
    (FILES.FAMILIARITY, b"not arrays", f"has a damaged {FILES.FAMILIARITY}"),
    (FILES.STATUS, "[", f"has a damaged {FILES.STATUS}"),
])
def test_a_damaged_export_is_refused_and_leaves_nothing(exported, tmp_path, member, content, message):
    _, data, _ = exported
    with pytest.raises(QuasarError, match=message):
        import_model(zip_with(data, **{member: content}), "export.zip", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_keras_file_that_does_not_load_is_a_plain_error(exported, tmp_path):
    _, _, model_file = exported
    broken = zip_with(model_file, **{"model.weights.h5": b"not hdf5"})
    with pytest.raises(QuasarError, match="(?i)could not"):
        import_model(broken, "model.keras", tmp_path / "run")
    assert not (tmp_path / "run").exists()
