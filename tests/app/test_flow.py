"""The whole journey in AppTest: sample photos -> Quick look -> train -> evaluate -> predict."""

from __future__ import annotations

import io
import json
import zipfile

from tests.app.support import (charts_by_key, new_app, png_bytes, sample_photo, shown_text, wait_for_job,
                      weights_choice)

from quasar_core import jobs
from quasar_core.wording import estimate
from ui import nav, predicting, settings_form, state


def bars(at) -> list[str]:
    return [key for key in charts_by_key(at) if key and key.startswith("probability_bars_")]


def test_sample_to_prediction(isolated_runs):
    at = new_app().run()
    workspace_id = at.query_params["workspace"]

    # Upload: the sample dataset and its report.
    at.switch_page(nav.UPLOAD.path).run()
    at.button(key="load_sample").click().run()
    assert not at.exception
    dataset = at.session_state[state.DATASET_KEY]
    assert len(dataset) == 300 and len(dataset.labels) == 5
    assert "300 usable photos in 5 classes" in shown_text(at)
    assert "class_distribution" in charts_by_key(at)
    assert [len(images.value) for images in at.image] == [8] * 5  # a row of examples for each class
    assert "Problems found: none. Every file was used." in shown_text(at)

    # Configure: Quick look, then a tiny size so the test is quick.
    at.switch_page(nav.CONFIGURE.path).run()
    at.radio(key=settings_form.PRESET_KEY).set_value("Best accuracy").run()
    assert at.session_state[state.CONFIG_KEY].augment is False  # Best's first setting: Balanced's, plain
    at.radio(key=settings_form.PRESET_KEY).set_value("Quick look").run()
    config = at.session_state[state.CONFIG_KEY]
    assert config.augment is False and config.image_size == 96  # the size suggested for 28 px photos
    assert config.mode == "feature-extraction"
    at.select_slider(key="setting.image_size").set_value(32)
    at.radio(key="setting.weights").set_value(weights_choice())
    at.run()
    assert not at.exception and not at.error
    config = at.session_state[state.CONFIG_KEY]
    assert (config.image_size, config.weights, config.augment) == (32, weights_choice(), False)
    words = shown_text(at)
    assert "Estimated training time on this computer" in words
    assert "Fits in memory" in words
    assert "Accuracy will be measured by 10-fold cross-validation" in words
    assert "Started from the Quick look preset, with your changes." in words
    sizes = at.dataframe[0].value
    # The chosen 32 px is not one of the sizes compared, so it gets a row of its own, ticked.
    assert list(sizes["Image size"]) == ["32 px", "64 px", "96 px", "128 px", "160 px", "224 px"]
    assert list(sizes["Chosen"]) == ["✓", "", "", "", "", ""]

    # Train: start, follow, finish.
    at.switch_page(nav.TRAIN.path).run()
    assert "Settings: Quick look preset · 32 px" in shown_text(at)
    at.button(key="start_training").click().run()
    assert not at.exception and not at.error
    assert at.button(key="stop_training").disabled is False
    job = wait_for_job(at)
    assert job.state == "done", job.error
    assert at.query_params["workspace"] == workspace_id
    run = at.session_state[state.RUN_KEY]
    assert run is not None and run.has_model and run.path.parent == isolated_runs / workspace_id
    assert (run.path / "head.npz").is_file() and not (run.path / "model.keras").exists()
    # The head's history is the candidates it tried (one kept), not epochs.
    heads = [row for row in run.history if row["phase"] == "head"]  # the strengths tried, then the learning curve
    assert heads and [row["phase"] for row in run.history[len(heads):]] == ["learning"] * 4
    assert all({"strength", "accuracy", "train_accuracy"} <= set(row) for row in heads)
    assert sum(1 for row in heads if row.get("chosen")) == 1
    assert (run.path / "history.json").is_file()
    assert "selection_chart" in charts_by_key(at)
    assert "training_curves" not in charts_by_key(at)  # no fine-tuning, so no epochs to draw
    assert "Trained: the classifier learned from every photo. It took" in shown_text(at)
    assert at.button(key="start_training").disabled is False

    # Evaluate: accuracy in words and numbers, with its range and method; the table, the matrix, the mistakes.
    at.switch_page(nav.EVALUATE.path).run()
    assert not at.exception and not at.error
    words = shown_text(at)
    assert "photos correctly that the model testing them had never seen" in words
    assert "Measured by: 10-fold cross-validation over 300 photos, repeated 3 times" in words  # in the details
    assert at.metric[0].value == estimate(run.metrics.accuracy, run.metrics.accuracy_interval)
    assert at.metric[0].value.startswith("about ") and " %)" in at.metric[0].value
    assert list(at.dataframe[0].value["Class"]) == run.labels
    assert "confusion_matrix" in charts_by_key(at)
    assert "Its mistakes" in words or "No mistakes" in words

    # Predict: a sample photo gives probability bars; the run can be downloaded.
    at.switch_page(nav.PREDICT.path).run()
    name, content = sample_photo("Trouser", 3)
    at.file_uploader(key="predict_upload").set_value((name, content, "image/png")).run()
    assert not at.exception and not at.error
    assert "It is most likely" in shown_text(at)
    assert len(bars(at)) == 1
    assert at.download_button(key="download_run")
    with zipfile.ZipFile(io.BytesIO(predicting.zip_maker(run)())) as archive:
        assert {"model.keras", "labels.json", "metrics.json", "predict.py"} <= set(archive.namelist())
        assert json.loads(archive.read("labels.json")) == run.labels

    # A photo from the camera (a JPEG) joins the uploaded one: two answers, and how alike they are.
    at.toggle(key="predict_use_camera").set_value(True).run()
    at.camera_input(key="predict_camera").set_value(("shot.jpg", png_bytes(7, format="JPEG"), "image/jpeg")).run()
    assert not at.exception and not at.error
    assert [image.captions for image in at.image] == [[name], ["camera photo"]]
    assert len(bars(at)) == 2
    assert "Do the new photos look like the training photos?" in shown_text(at)
    assert "familiarity_histogram" in charts_by_key(at)
    # The camera photo alone: its answer and where the model looked (Grad-CAM of the predicted class).
    at.file_uploader(key="predict_upload").set_value([]).run()
    assert not at.exception and not at.error
    assert at.image[0].captions == ["camera photo"]
    assert at.image[1].captions[0].startswith("Where it looked for ")
    assert len(bars(at)) == 1
    assert "familiarity_histogram" not in charts_by_key(at)
    at.toggle(key="predict_use_camera").set_value(False).run()

    # A photo that is not a photo: the error names it.
    at.file_uploader(key="predict_upload").set_value(("notes.jpg", b"just some text", "image/jpeg")).run()
    assert not at.exception
    [error] = [e.value.replace("\\", "") for e in at.error]
    assert error.startswith("notes.jpg cannot be used: ") and "not an image" in error

    # Past runs lists it as the current one, named by its data.
    at.switch_page(nav.RUNS.path).run()
    words = shown_text(at)
    assert "(current)" in words
    assert "fashion · 5 classes · 32 px · " in words


def test_home_sample_button_starts_training_and_stop_works(isolated_runs):
    at = new_app().run()
    workspace_id = at.query_params["workspace"]
    at.button(key="try_sample").click().run()
    assert not at.exception and not at.error
    assert at.title[0].value == nav.TRAIN.title  # carried to the Train page
    assert at.query_params["workspace"] == workspace_id  # the workspace survives st.switch_page
    config = at.session_state[state.CONFIG_KEY]
    assert at.session_state[state.PRESET_KEY] == "Balanced" and config.image_size == 96  # the one default
    job = jobs.default_queue().get(at.session_state[state.JOB_ID_KEY])
    assert job is not None and job.owner == workspace_id and job.state in ("queued", "running")
    assert at.button(key="start_training").disabled
    assert "Balanced" in shown_text(at)
    assert "Start is off while this training runs" in shown_text(at)

    at.button(key="stop_training").click().run()
    assert job.cancel_event.is_set()
    job = wait_for_job(at)
    assert job.state == "cancelled"
    assert not at.exception and not at.error
    assert "Press Start training to try again" in shown_text(at)
    assert at.button(key="start_training").disabled is False
    heads = any(row.get("phase") == "head" for row in job.history)
    assert ("selection_chart" in charts_by_key(at)) == heads  # no empty chart before a candidate is scored


def _sample_with_settings(at):
    at.switch_page(nav.UPLOAD.path).run()
    at.button(key="load_sample").click().run()
    at.switch_page(nav.CONFIGURE.path).run()
    return at


def test_missing_weights_are_explained_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("QUASAR_VGG16_WEIGHTS", str(tmp_path / "nowhere.weights.h5"))
    at = _sample_with_settings(new_app().run())
    assert not at.exception
    assert any("cannot be estimated" in w.value and "QUASAR_VGG16_WEIGHTS" in w.value for w in at.warning)
    at.switch_page(nav.TRAIN.path).run()
    at.button(key="start_training").click().run()
    assert not at.exception
    assert any("is not a file" in e.value and "Fix the path" in e.value for e in at.error)
    assert state.JOB_ID_KEY not in at.session_state


def test_offline_weights_message_is_plain_words(monkeypatch, tmp_path):
    """No network and no local copy: the page says what to do, without Python's "[Errno …]" details."""
    import keras
    from keras.src.utils import file_utils

    offline = ("URL fetch failure on https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
               "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5: None -- [Errno -2] Name or service not known")

    def get_file(*args, **kwargs):
        raise Exception(offline)

    monkeypatch.delenv("QUASAR_VGG16_WEIGHTS", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no downloaded copy either
    monkeypatch.setattr(file_utils, "get_file", get_file)
    monkeypatch.setattr(keras.utils, "get_file", get_file)
    at = _sample_with_settings(new_app().run())
    assert not at.exception
    [warning] = [w.value for w in at.warning if "cannot be estimated" in w.value]
    at.switch_page(nav.TRAIN.path).run()
    at.button(key="start_training").click().run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    for message in (warning, error):
        assert "offline" in message and "QUASAR_VGG16_WEIGHTS" in message and "'none'" in message
        assert "Errno" not in message and "URL fetch failure" not in message and "http" not in message
    assert state.JOB_ID_KEY not in at.session_state


def test_too_little_memory_is_said_before_starting(monkeypatch):
    monkeypatch.setenv("QUASAR_MEMORY_LIMIT_MB", "1")
    at = _sample_with_settings(new_app().run())
    assert any("GB of memory" in e.value for e in at.error)
    at.switch_page(nav.TRAIN.path).run()
    at.button(key="start_training").click().run()
    assert not at.exception
    assert any("Choose a smaller image size" in e.value for e in at.error)
    assert state.JOB_ID_KEY not in at.session_state
