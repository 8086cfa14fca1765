"""Model files from outside: code-carrying objects are refused before anything of them is loaded."""

import json
import zipfile

import pytest

from quasar_core.errors import QuasarError, UnsafeModelError
from quasar_core.model_files import check_model_config, import_model, load_checked_model, read_keras_config


def lambda_keras(tmp_path, marker):
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


def test_a_lambda_model_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    path = lambda_keras(tmp_path, marker)
    with pytest.raises(UnsafeModelError, match="'evil.keras' contains a Lambda layer"):
        load_checked_model(path)
    with pytest.raises(UnsafeModelError, match="Lambda"):
        import_model(path.read_bytes(), "evil.keras", tmp_path / "run")
    assert not marker.exists()
    assert not (tmp_path / "run" / "model.keras").exists()


def test_unknown_classes_and_foreign_modules_are_refused():
    config = {"class_name": "Functional", "module": "keras.src.models.functional",
              "config": {"layers": [{"class_name": "Dense", "module": "keras.layers", "config": {}}]}}
    check_model_config(config)  # stock layers pass
    config["config"]["layers"].append({"class_name": "Evil", "module": "my_package.layers", "registered_name": "x>Evil"})
    with pytest.raises(UnsafeModelError, match="'Evil' from 'my_package.layers'"):
        check_model_config(config)
    sneaky = {"class_name": "Dense", "module": "os", "config": {}}
    with pytest.raises(UnsafeModelError, match="from 'os'"):
        check_model_config(sneaky)


def test_not_a_model_says_so(tmp_path):
    with pytest.raises(QuasarError, match="'notes.zip' is neither"):
        import_model(b"plain text", "notes.zip", tmp_path / "run")
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(QuasarError, match="no model.keras inside"):
        import_model(archive.read_bytes(), "other.zip", tmp_path / "run")
    with pytest.raises(QuasarError, match="not a Keras 3 '.keras' model file"):
        read_keras_config(b"PK\x05\x06" + bytes(18), name="'x.keras'")


def test_an_exported_run_imports_with_its_labels_and_predicts_the_same(tmp_path, dataset, split, base, tiny_config):
    from quasar_core.export import run_zip_bytes
    from quasar_core.runs import Run, train_run

    run = train_run(dataset, tiny_config.replace(epochs=1), tmp_path / "original", base=base, split=split)
    opened = import_model(run_zip_bytes(run.path), "export.zip", tmp_path / "opened")
    assert opened.labels == run.labels and opened.config.image_size == run.config.image_size
    images = dataset.images(split.test, size=32)
    assert opened.classifier().predict_proba(images) == pytest.approx(run.classifier().predict_proba(images), abs=1e-6)
    bare = import_model((run.path / "model.keras").read_bytes(), "model.keras", tmp_path / "bare")
    assert bare.labels == [f"class {i + 1}" for i in range(len(run.labels))]
    assert json.loads((bare.path / "status.json").read_text())["state"] == "done"
