"""Opening a model file on the Past runs page: code-carrying models are refused, exports become usable runs."""

from __future__ import annotations

from tests.app.support import new_app, sample_photo, shown_text

from ui import nav, state, workspace


def runs_page(workspace_id: str):
    at = new_app({"workspace": workspace_id}).run()
    return at.switch_page(nav.RUNS.path).run()


def open_file(at, name: str, content: bytes):
    at.file_uploader(key="open_model_upload").set_value((name, content, "application/octet-stream")).run()
    return at.button(key="open_model").click().run()


def lambda_model_bytes(tmp_path) -> bytes:
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2, name="doubler")(inputs))
    path = tmp_path / "evil.keras"
    model.save(path)
    return path.read_bytes()


def test_a_model_with_code_is_refused_and_nothing_is_kept(isolated_runs, tmp_path):
    workspace_id = workspace.new_id()
    at = runs_page(workspace_id)
    assert at.button(key="open_model").disabled  # nothing chosen yet

    open_file(at, "evil.keras", lambda_model_bytes(tmp_path))
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert "'evil.keras' contains a Lambda layer" in error and "was not loaded" in error
    assert at.title[0].value == nav.RUNS.title  # stayed put
    assert state.RUN_KEY not in at.session_state  # nothing became the current run
    folder = isolated_runs / workspace_id
    assert not folder.exists() or not any(folder.iterdir())  # no run folder was left behind

    open_file(at, "holiday.zip", b"PK\x03\x04 not really a zip")
    assert not at.exception
    assert any("'holiday.zip'" in e.value and "Quasar Nexus export zip" in e.value for e in at.error)
    assert not folder.exists() or not any(folder.iterdir())


def test_an_exported_zip_opens_and_predicts(sample_run_template, isolated_runs):
    from quasar_core.runs.export import run_zip_bytes
    from quasar_core.runs.folder import Run
    from quasar_core.runs.report import trained_when

    trained = Run.open(sample_run_template)
    workspace_id = workspace.new_id()
    at = runs_page(workspace_id)
    open_file(at, "quasar-export.zip", run_zip_bytes(sample_run_template))
    assert not at.exception and not at.error
    assert at.title[0].value == nav.PREDICT.title  # it is the current run, ready to use
    run = at.session_state[state.RUN_KEY]
    assert run.path.parent == isolated_runs / workspace_id
    assert run.labels == trained.labels and run.config.image_size == 32

    at.switch_page(nav.PREDICT.path).run()  # AppTest stays on the page it was given; a browser follows the switch
    words = shown_text(at)
    # When it was trained (not when it was opened) and the accuracy it came with.
    when = trained_when(trained)
    assert f"Opened from quasar-export.zip; trained {when}." in words
    assert f"Its accuracy when it was trained: {trained.metrics.headline()}." in words
    assert f"Model: fashion · 5 classes · 32 px · {trained.metrics.accuracy * 100:.0f} %" in words
    name, content = sample_photo("Sneaker", 5)
    at.file_uploader(key="predict_upload").set_value((name, content, "image/png")).run()
    assert not at.exception and not at.error
    assert "It is most likely" in shown_text(at)
    assert "a model opened from a file has none, so use the zip" in shown_text(at)  # no unverifiable exports

    at.switch_page(nav.EVALUATE.path).run()  # the evaluation came with it
    assert not at.exception and not at.error
    words = shown_text(at)
    assert f"Its accuracy when it was trained: {trained.metrics.headline()}." in words
    right = round(trained.metrics.accuracy * trained.metrics.n_images)
    assert f"It named {right} of {trained.metrics.n_images} photos correctly" in words

    at.switch_page(nav.RUNS.path).run()
    words = shown_text(at)
    assert "(current)" in words and "Opened from quasar-export.zip · trained " + when in words


def test_a_bare_model_file_opens_without_an_evaluation(sample_run_template, isolated_runs):
    import io
    import zipfile

    from quasar_core.runs.export import run_zip_bytes

    with zipfile.ZipFile(io.BytesIO(run_zip_bytes(sample_run_template))) as archive:
        model = archive.read("model.keras")
    workspace_id = workspace.new_id()
    at = runs_page(workspace_id)
    open_file(at, "classifier.keras", model)
    assert not at.exception and not at.error
    at.switch_page(nav.PREDICT.path).run()
    assert "It came without an evaluation, so how accurate it is is not known" in shown_text(at)
    at.switch_page(nav.EVALUATE.path).run()
    assert not at.exception
    assert "This model has no evaluation: it was opened from a file without one" in shown_text(at)
