"""The whole journey in AppTest: sample photos -> Quick look -> train -> evaluate -> predict."""

from __future__ import annotations

import io
import json
import zipfile

from conftest import charts_by_key, new_app, png_bytes, sample_photo, shown_text, wait_for_job, weights_choice

from quasar_core import jobs
from ui import nav, predicting, settings_form, state


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
    assert "No problems found" in shown_text(at)

    # Configure: Quick look, then a tiny size and two epochs so the test is quick.
    at.switch_page(nav.CONFIGURE.path).run()
    at.radio(key=settings_form.PRESET_KEY).set_value("Balanced").run()
    assert at.session_state[state.CONFIG_KEY].augment is True
    at.radio(key=settings_form.PRESET_KEY).set_value("Quick look").run()
    config = at.session_state[state.CONFIG_KEY]
    assert config.augment is False and config.image_size == 96  # the size suggested for 28 px photos
    at.select_slider(key="setting.image_size").set_value(32)
    at.number_input(key="setting.epochs").set_value(2)
    at.radio(key="setting.weights").set_value(weights_choice())
    at.run()
    assert not at.exception and not at.error
    config = at.session_state[state.CONFIG_KEY]
    assert (config.image_size, config.epochs, config.weights) == (32, 2, weights_choice())
    words = shown_text(at)
    assert "Estimated training time on this computer" in words
    assert "Fits in memory" in words
    sizes = at.dataframe[0].value
    # The chosen 32 px is not one of the sizes compared, so it gets a row of its own, ticked.
    assert list(sizes["Image size"]) == ["32 px", "64 px", "96 px", "128 px", "160 px", "224 px"]
    assert list(sizes["Chosen"]) == ["✓", "", "", "", "", ""]

    # Train: start, follow, finish.
    at.switch_page(nav.TRAIN.path).run()
    at.button(key="start_training").click().run()
    assert not at.exception and not at.error
    assert at.button(key="stop_training").disabled is False
    job = wait_for_job(at)
    assert job.state == "done", job.error
    assert at.query_params["workspace"] == workspace_id
    run = at.session_state[state.RUN_KEY]
    assert run is not None and run.has_model and run.path.parent == isolated_runs / workspace_id
    assert len(run.history) == 2 and (run.path / "history.json").is_file()
    assert "training_curves" in charts_by_key(at)
    assert "Trained for 2 epochs" in shown_text(at)
    assert at.button(key="start_training").disabled is False

    # Evaluate: accuracy in words and numbers, the table, the clickable matrix, the mistakes.
    at.switch_page(nav.EVALUATE.path).run()
    assert not at.exception
    words = shown_text(at)
    assert "images it had never seen correctly" in words
    assert at.metric[0].value == f"{run.metrics.accuracy:.1%}"
    assert list(at.dataframe[0].value["Class"]) == run.labels
    assert "confusion_matrix" in charts_by_key(at)
    assert "Its mistakes" in words or "No mistakes" in words

    # Predict: a sample photo gives probability bars; the run can be downloaded.
    at.switch_page(nav.PREDICT.path).run()
    name, content = sample_photo("Trouser", 3)
    at.file_uploader(key="predict_upload").set_value((name, content, "image/png")).run()
    assert not at.exception and not at.error
    assert "It is most likely" in shown_text(at)
    assert "probability_bars" in charts_by_key(at)
    if predicting.export_available():
        assert at.download_button(key="download_run")
        with zipfile.ZipFile(io.BytesIO(predicting.zip_maker(run.path)())) as archive:
            assert {"model.keras", "labels.json", "metrics.json"} <= set(archive.namelist())
            assert json.loads(archive.read("labels.json")) == run.labels

    # Or a photo from the camera (a JPEG), which takes precedence over the upload.
    at.toggle(key="use_camera").set_value(True).run()
    at.camera_input(key="predict_camera").set_value(("shot.jpg", png_bytes(7, format="JPEG"), "image/jpeg")).run()
    assert not at.exception and not at.error
    assert at.image[0].captions == ["shot.jpg"]
    assert at.image[1].captions[0].startswith("Where it looked for ")  # Grad-CAM of the predicted class
    assert "probability_bars" in charts_by_key(at)
    at.toggle(key="use_camera").set_value(False).run()

    # A photo that is not a photo: the error names it.
    at.file_uploader(key="predict_upload").set_value(("notes.jpg", b"just some text", "image/jpeg")).run()
    assert not at.exception
    assert any("notes.jpg" in e.value and "not an image" in e.value for e in at.error)

    # Past runs lists it as the current one.
    at.switch_page(nav.RUNS.path).run()
    assert "(current)" in shown_text(at)


def test_home_sample_button_starts_training_and_stop_works(isolated_runs):
    at = new_app().run()
    workspace_id = at.query_params["workspace"]
    at.button(key="try_sample").click().run()
    assert not at.exception and not at.error
    assert at.title[0].value == nav.TRAIN.title  # carried to the Train page
    assert at.query_params["workspace"] == workspace_id  # the workspace survives st.switch_page
    config = at.session_state[state.CONFIG_KEY]
    assert at.session_state[state.PRESET_KEY] == "Quick look" and config.image_size == 96
    job = jobs.default_queue().get(at.session_state[state.JOB_ID_KEY])
    assert job is not None and job.owner == workspace_id and job.state in ("queued", "running")
    assert at.button(key="start_training").disabled
    assert "Quick look" in shown_text(at)

    at.button(key="stop_training").click().run()
    assert job.cancel_event.is_set()
    job = wait_for_job(at)
    assert job.state == "cancelled"
    assert not at.exception and not at.error
    assert "Press Start training to try again" in shown_text(at)
    assert at.button(key="start_training").disabled is False
    assert ("training_curves" in charts_by_key(at)) == bool(job.history)  # no empty chart before an epoch


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


def test_too_little_memory_is_said_before_starting(monkeypatch):
    monkeypatch.setenv("QUASAR_MEMORY_LIMIT_MB", "1")
    at = _sample_with_settings(new_app().run())
    assert any("GB of memory" in e.value for e in at.error)
    at.switch_page(nav.TRAIN.path).run()
    at.button(key="start_training").click().run()
    assert not at.exception
    assert any("Choose a smaller image size" in e.value for e in at.error)
    assert state.JOB_ID_KEY not in at.session_state
