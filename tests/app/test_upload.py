"""Bad uploads through the Upload page: every problem named in plain words, never a traceback."""

from __future__ import annotations

import io
import re
import threading
import time
import zipfile

import pytest

from tests.app.support import JOB_TIMEOUT, new_app, png_bytes, readable_words, shown_text

from quasar_core import jobs
from quasar_core.data import assembly
from tests import hostile
from ui import nav, state


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def upload_page():
    return new_app().run().switch_page(nav.UPLOAD.path).run()


def wait_for_upload(at, timeout: float = JOB_TIMEOUT):
    """The upload check runs in the background: wait for the session's to end, then rerun the page once."""
    job = jobs.upload_queue().get(at.session_state[state.UPLOAD_JOB_KEY])
    assert isinstance(job, jobs.UploadCheckJob)
    if not jobs.upload_queue().wait(job, timeout=timeout):
        job.cancel()
        pytest.fail(f"the upload check did not finish within {timeout} s (state {job.state})")
    return at.run()


def nothing_loaded(at) -> bool:
    """No photos in the session, and none kept in the workspace (a refused upload leaves nothing behind)."""
    from ui import workspace

    here = workspace.Workspace(workspace.runs_root(at.query_params["workspace"]),
                               workspace_id=at.query_params["workspace"])
    kept = [path for path in here.photos.rglob("*") if path.is_file()] if here.photos.is_dir() else []
    return at.session_state[state.DATASET_KEY] is None and here.dataset() is None and not kept


def test_zip_with_broken_files_keeps_the_good_ones():
    files = {f"photos/{label}/{i}.png": png_bytes(seed=100 * n + i) for n, label in enumerate(("cats", "dogs"))
             for i in range(6)}
    whole = png_bytes(seed=999, size=64, format="JPEG")
    files["photos/cats/broken.jpg"] = whole[: len(whole) // 2]  # a JPEG cut short
    files["photos/dogs/notes.jpg"] = b"shopping list: milk, eggs"  # text saved as .jpg
    at = upload_page()
    at.file_uploader(key="upload_zip").set_value(("photos.zip", zip_of(files), "application/zip")).run()
    wait_for_upload(at.button(key="load_zip").click().run())

    assert not at.exception and not at.error
    dataset = at.session_state[state.DATASET_KEY]
    assert dataset.labels == ["cats", "dogs"] and len(dataset) == 12
    skipped = next(w.value for w in at.warning if "files were skipped" in w.value).replace("\\", "")
    assert "cats/broken.jpg" in skipped and "corrupt or truncated image" in skipped
    # plain words first, the file named; Pillow's words only after them, as the detail
    assert "**photos/cats/broken.jpg**: this photo is cut short — the file is incomplete" in skipped
    assert skipped.index("the file is incomplete") < skipped.index("Pillow")
    assert "dogs/notes.jpg" in skipped and "not an image (the file is text)" in skipped
    assert "12 usable photos in 2 classes" in shown_text(at)


def test_a_file_that_is_not_a_zip_is_refused_plainly():
    at = upload_page()
    at.file_uploader(key="upload_zip").set_value(("holiday.jpg", png_bytes(seed=1), "image/jpeg")).run()
    wait_for_upload(at.button(key="load_zip").click().run())
    assert not at.exception
    assert [e.value for e in at.error] == [
        "holiday.jpg is not a zip file, or it is damaged. Zip the class folders again and retry."]
    assert nothing_loaded(at)


def test_rejected_zip_says_why_and_lists_what_was_skipped():
    files = {f"cats/{i}.png": png_bytes(seed=i) for i in range(6)}
    files["dogs/readme.png"] = b"not a picture"
    at = upload_page()
    at.file_uploader(key="upload_zip").set_value(("pets.zip", zip_of(files), "application/zip")).run()
    wait_for_upload(at.button(key="load_zip").click().run())
    assert not at.exception
    assert any("has no usable images" in e.value and "dogs" in e.value for e in at.error)
    assert any("dogs/readme.png" in w.value.replace("\\", "") for w in at.warning)


def test_photos_typed_in_per_class():
    at = upload_page()
    at.button(key="add_class_row").click().run()  # three rows
    assert len(at.text_input) == 3
    for row, label in enumerate(("apples", "pears")):
        at.text_input(key=f"class_name_{row}").input(label)
        photos = [(f"{label}{i}.png", png_bytes(seed=10 * row + i + 500), "image/png") for i in range(5)]
        if label == "pears":
            photos.append(("pear-notes.png", b"%PDF-1.4 not a photo", "image/png"))
        at.file_uploader(key=f"class_files_{row}").set_value(photos)
    at.run()
    wait_for_upload(at.button(key="load_photos").click().run())
    assert not at.exception and not at.error
    dataset = at.session_state[state.DATASET_KEY]
    assert dataset.labels == ["apples", "pears"] and len(dataset) == 10
    assert "pear-notes.png" in shown_text(at) and "a PDF document" in shown_text(at)


def test_photos_without_a_class_name_are_refused():
    at = upload_page()
    at.file_uploader(key="class_files_0").set_value([("a.png", png_bytes(seed=3), "image/png")]).run()
    at.button(key="load_photos").click().run()
    assert not at.exception
    assert any("have no class name" in e.value and "a.png" in e.value for e in at.error)


def test_few_photos_in_several_classes_is_one_sentence():
    files = {f"clothes/{label}/{i}.png": png_bytes(seed=100 * n + i) for n, label in enumerate(("Bag", "Sneaker"))
             for i in range(8)}
    files.update({f"clothes/Trouser/{i}.png": png_bytes(seed=900 + i) for i in range(12)})
    at = upload_page()
    at.file_uploader(key="upload_zip").set_value(("clothes.zip", zip_of(files), "application/zip")).run()
    wait_for_upload(at.button(key="load_zip").click().run())
    assert not at.exception and not at.error
    [box] = [w.value.replace("\\", "") for w in at.warning if "to check" in w.value]
    # Each class is named once (no "Bag/: … in class 'Bag'"), the sentence ends with a full stop.
    assert box == ("1 thing to check:\n\n- Few usable images in 'Bag' (8), 'Sneaker' (8) and 'Trouser' (12); "
                   "results are unreliable with fewer than 20 per class. Add more pictures of these classes if "
                   "you can.")


# --- the hostile corpus (tests/hostile.py) -----------------------------------------------------
LISTED = re.compile(r"^- \*\*(?P<file>.+?)\*\*: (?P<reason>.+)$")


def listed(box_text: str) -> dict[str, str]:
    """File -> reason, from a report box's "- **file**: reason" lines (markdown escapes removed)."""
    lines = box_text.replace("\\", "").splitlines()
    return {m["file"]: m["reason"] for m in map(LISTED.match, lines) if m}


def box(at, kind: str, heading: str) -> str:
    [found] = [element.value for element in getattr(at, kind) if heading in element.value]
    return found


def upload_zip(at, name: str, content: bytes):
    at.file_uploader(key="upload_zip").set_value((name, content, "application/zip")).run()
    return wait_for_upload(at.button(key="load_zip").click().run())


def test_the_hostile_corpus_names_every_bad_file_and_uses_the_good_ones():
    at = upload_zip(upload_page(), "corpus.zip", hostile.corpus_zip())
    assert not at.exception and not at.error

    skipped = listed(box(at, "warning", f"{len(hostile.CORPUS_SKIPPED)} files were skipped:"))
    assert set(skipped) == set(hostile.CORPUS_SKIPPED)
    for file, words in hostile.CORPUS_SKIPPED.items():
        assert words in skipped[file], (file, skipped[file])
    duplicates = listed(box(at, "info", "1 duplicate was used only once:"))
    assert duplicates == {file: f"same picture as {original}; used once"
                          for file, original in hostile.CORPUS_DUPLICATES.items()}
    to_check = box(at, "warning", "things to check:").replace("\\", "")
    assert to_check.startswith("4 things to check:")
    for file, words in hostile.CORPUS_WARNINGS.items():
        assert words in listed(to_check)[file]
    # The warnings about the data as a whole are plain sentences, each said once.
    sentences = [line for line in to_check.splitlines() if line.startswith("- ") and not LISTED.match(line)]
    assert len(sentences) == 2
    for words in (hostile.CORPUS_FEW_PHOTOS_WORDS, hostile.CORPUS_UNBALANCED_WORDS):
        assert sum(all(word in line for word in words) for line in sentences) == 1, (words, sentences)
    for ignored in hostile.CORPUS_IGNORED:
        assert ignored not in shown_text(at)

    # The good photos are used, and the page says how many.
    dataset = at.session_state[state.DATASET_KEY]
    assert {sample.name for sample in dataset.samples} == hostile.CORPUS_USED
    assert dataset.report.counts == hostile.CORPUS_COUNTS
    words = shown_text(at)
    assert f"{sum(hostile.CORPUS_COUNTS.values())} usable photos in {len(hostile.CORPUS_COUNTS)} classes" in words
    for label, count in hostile.CORPUS_COUNTS.items():
        assert f"{label} ({count} photos)" in words
    assert "Traceback" not in words


def test_a_zip_bomb_is_refused_plainly_and_the_session_goes_on(tmp_path):
    at = upload_zip(upload_page(), "bomb.zip", hostile.write_zip_bomb(tmp_path / "bomb.zip").read_bytes())
    assert not at.exception
    [message] = [e.value for e in at.error]
    assert message.startswith("bomb.zip was refused: 'cat/zeros.png' unpacks from ")
    assert message.endswith("which only a zip bomb does. Zip the images again from their folders.")
    assert "Traceback" not in shown_text(at)
    assert nothing_loaded(at)

    # A zip with one class is refused too, in words; then a good zip works in the same session.
    at = upload_zip(at, "one-class.zip", hostile.one_class_zip())
    assert not at.exception
    [message] = [e.value for e in at.error]
    assert message.startswith("Only one class ('cat') was found in one-class.zip;")
    assert nothing_loaded(at)

    good = {f"pets/{label}/{i}.png": png_bytes(seed=100 * n + i) for n, label in enumerate(("cats", "dogs"))
            for i in range(5)}
    at = upload_zip(at, "pets.zip", zip_of(good))
    assert not at.exception and not at.error
    assert at.session_state[state.DATASET_KEY].report.counts == {"cats": 5, "dogs": 5}
    assert "10 usable photos in 2 classes" in shown_text(at)


def test_the_upload_check_shows_progress_while_it_runs_and_the_report_after(monkeypatch):
    """Decoding runs beside the page: "Checking photo N of M" while it runs (a reload finds it), the report after."""
    files = {f"pets/{label}/{i}.png": png_bytes(seed=100 * n + i) for n, label in enumerate(("cats", "dogs"))
             for i in range(20)}
    files["pets/dogs/notes.jpg"] = b"shopping list: milk, eggs"
    release, lock, calls = threading.Event(), threading.Lock(), []
    check_one = assembly._check_one

    def slowed(entry, limits):  # the first batch goes through; the rest wait until the test lets them
        with lock:
            calls.append(entry.name)
            first_batch = len(calls) <= assembly.IN_FLIGHT
        if not first_batch:
            assert release.wait(60)
        return check_one(entry, limits)

    monkeypatch.setattr(assembly, "_check_one", slowed)
    at = upload_page()
    at.file_uploader(key="upload_zip").set_value(("pets.zip", zip_of(files), "application/zip")).run()
    at.button(key="load_zip").click().run(timeout=30)
    assert not at.exception
    job = jobs.upload_queue().get(at.session_state[state.UPLOAD_JOB_KEY])
    deadline = time.monotonic() + 30
    while job.progress.step < assembly.IN_FLIGHT and time.monotonic() < deadline:
        time.sleep(0.05)
    at.run(timeout=30)  # the page answers while the check is still running
    assert f"Checking photo {assembly.IN_FLIGHT} of 41" in readable_words(at)
    assert at.button(key="stop_upload_check") and at.session_state[state.DATASET_KEY] is None
    assert not job.finished

    # a reload (a new session on the same workspace) finds the running check
    again = new_app({"workspace": at.query_params["workspace"]}).run(timeout=30).switch_page(nav.UPLOAD.path)
    again.run(timeout=30)
    assert "Checking photo" in readable_words(again)

    release.set()
    wait_for_upload(at)
    assert not at.exception and not at.error
    assert at.session_state[state.DATASET_KEY].report.counts == {"cats": 20, "dogs": 20}
    words = shown_text(at)
    assert "40 usable photos in 2 classes" in words and "Checking photo" not in readable_words(at)
    assert "dogs/notes.jpg" in words and "not an image (the file is text)" in words
