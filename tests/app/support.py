"""Helpers shared by the dashboard's AppTest tests; the fixtures are in conftest.py.

Imported as `tests.app.support`, never as `conftest`: with several conftest.py files in the suite, the
name `conftest` means whichever one pytest loaded last.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from quasar_core import jobs
from ui import state

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
SAMPLE_DIR = ROOT / "sample_data" / "fashion"
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights" / "vgg16_imagenet_notop.weights.h5"  # where .ci/run looks
SCRIPT_TIMEOUT = 120
JOB_TIMEOUT = 150


def weights_choice() -> str:
    return "imagenet" if os.environ.get("QUASAR_VGG16_WEIGHTS") else "none"


def new_app(query_params: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=SCRIPT_TIMEOUT)
    at.query_params.update(query_params or {})
    return at


def shown_text(at: AppTest) -> str:
    """Everything written on the page in words (markdown, captions, alerts), one string."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error"):
        parts.extend(str(element.value) for element in getattr(at, kind))
    return "\n".join(parts).replace("\\", "").replace("**", "")  # markup is not part of the words


def readable_words(at: AppTest) -> str:
    """Everything a person can read on the page: the text, every widget's label and choices, link labels, table
    cells, metrics, picture captions and progress bars (not tooltips), one line each."""
    parts = [shown_text(at)]
    for kind in ("button", "download_button", "checkbox", "toggle", "radio", "selectbox", "select_slider", "slider",
                 "number_input", "text_input", "file_uploader", "camera_input", "page_link", "expander", "tabs",
                 "metric", "popover"):
        for element in at.get(kind):
            parts.append(str(getattr(element, "label", "") or ""))
            parts.extend(str(option) for option in (getattr(element, "options", None) or []))
            if kind == "metric":
                parts.append(str(element.value))
            if kind == "radio":
                parts.extend(str(caption) for caption in element.proto.captions)
    for frame in at.dataframe:
        parts.extend(str(column) for column in frame.value.columns)
        parts.extend(str(cell) for row in frame.value.itertuples(index=False) for cell in row)
    parts.extend(caption for image in at.image for caption in image.captions)
    parts.extend(bar.proto.text for bar in at.get("progress"))
    import re

    return re.sub(r":material/[a-z_]+:", "", "\n".join(parts).replace("\\", ""))  # icons are not words


RAW_KEY_PATTERNS = (
    r"\b[a-z][a-z0-9]*_[a-z0-9_]*[a-z]\b",  # a settings key or a field name: fine_tune_learning_rate, image_size
    r"\bl2\b", r"\bC = ", r"\{'", r'\{"', r"\['", r"\b(strength|log_loss|train_accuracy)\b",
    r"\b(feature-extraction|fine-tune|imagenet)\b", r"\bnone weights\b", r"\b(True|False)\b",
)


def raw_keys(text: str) -> list[str]:
    """Words that are a program's names, not a person's: what no page may show."""
    import re

    return sorted({match.group(0) for pattern in RAW_KEY_PATTERNS for match in re.finditer(pattern, text)})


def charts_by_key(at: AppTest) -> dict[str, object]:
    return {element.key: element for element in at.get("plotly_chart")}


POLL_SECONDS = 5.0  # the browser polls every second; on two busy cores that many reruns halve the training's speed


def wait_for_job(at: AppTest, timeout: float = JOB_TIMEOUT) -> jobs.TrainingJob:
    """Rerun the page (as the browser's poll would) until the session's job has ended and been shown."""
    job = jobs.default_queue().get(at.session_state[state.JOB_ID_KEY])
    assert job is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs.default_queue().wait(job, timeout=POLL_SECONDS)  # returns as soon as the job ends
        at.run()
        if job.finished and at.session_state[state.ADOPTED_JOB_KEY] == job.job_id:
            return job
    job.cancel()
    pytest.fail(f"training did not finish within {timeout} s (state {job.state})")


def wait_for_comparison(at: AppTest, timeout: float = JOB_TIMEOUT) -> jobs.ComparisonJob:
    """Wait for the session's comparison to end, then rerun the Compare page once.

    Unlike wait_for_job it does not rerun every second: on a two-core machine the reruns
    slow the six trainings down by half.
    """
    return _wait_then_rerun(at, state.COMPARISON_JOB_KEY, jobs.ComparisonJob, "the comparison", timeout)


def wait_for_check(at: AppTest, timeout: float = JOB_TIMEOUT) -> jobs.CheckJob:
    """Wait for the session's photo check to end, then rerun the page once."""
    return _wait_then_rerun(at, state.CHECK_JOB_KEY, jobs.CheckJob, "the photo check", timeout)


def _wait_then_rerun(at: AppTest, key: str, kind: type, what: str, timeout: float):
    """The job whose id the session keeps under `key` (a `kind`), once ended; the page rerun once after."""
    job = jobs.default_queue().get(at.session_state[key])
    assert isinstance(job, kind)
    if not jobs.default_queue().wait(job, timeout=timeout):
        job.cancel()
        pytest.fail(f"{what} did not finish within {timeout} s (state {job.state})")
    at.run()
    return job


def copy_run(template: Path, runs_root: Path, workspace_id: str) -> Path:
    """A private copy of a run folder in a workspace, so a test may change it."""
    import shutil

    return Path(shutil.copytree(template, runs_root / workspace_id / template.name))


def png_bytes(seed: int, size: int = 40, *, format: str = "PNG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


def sample_photo(label: str = "Bag", number: int = 0) -> tuple[str, bytes]:
    path = SAMPLE_DIR / label / f"{label}_{number:03d}.png"
    return path.name, path.read_bytes()


def write_fake_run(folder: Path, *, labels=("cat", "dog"), accuracy: float = 0.75, with_model: bool = True) -> Path:
    """A run folder as quasar_core.runs writes it, without training (its head is random: never used to predict)."""
    from quasar_core.config import TrainConfig
    from quasar_core.head import Head
    from quasar_core.runs.folder import FILES, write_arrays

    folder.mkdir(parents=True)
    labels = list(labels)
    predictions = [
        {"name": f"{label}/{i}.png", "true": label, "predicted": labels[(j + i) % len(labels)],
         "confidence": 0.9, "probabilities": {other: 0.9 if other == labels[(j + i) % len(labels)] else 0.1
                                              for other in labels}}
        for j, label in enumerate(labels) for i in range(2)
    ]
    matrix = [[sum(1 for p in predictions if p["true"] == t and p["predicted"] == q) for q in labels] for t in labels]
    n = len(predictions)
    metrics = {"accuracy": accuracy, "labels": labels, "confusion_matrix": matrix,
               "per_class": {label: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2} for label in labels},
               "predictions": predictions, "accuracy_interval": [max(0.0, accuracy - 0.2), min(1.0, accuracy + 0.2)],
               "method": f"5-fold cross-validation over {n} photos", "calibration_error": 0.05,
               "reliability": [{"low": 0.8, "high": 0.9, "confidence": 0.9, "accuracy": accuracy, "count": n}]}
    files = {FILES.CONFIG: TrainConfig(image_size=32).to_dict(), FILES.LABELS: labels, FILES.METRICS: metrics,
             FILES.HISTORY: [{"phase": "head", "strength": 0.01, "accuracy": accuracy, "log_loss": 0.5,
                              "train_accuracy": 0.9, "chosen": True}],
             FILES.STATUS: {"state": "done", "started": time.time() - 5, "finished": time.time(),
                            "message": "Trained: the classifier learned from every photo.", "source": "pets.zip"}}
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content), encoding="utf-8")
    if with_model:
        rng = np.random.default_rng(0)
        write_arrays(folder / FILES.HEAD, Head(np.zeros(1024, np.float32), np.ones(1024, np.float32),
                                               rng.normal(size=(1024, len(labels))).astype(np.float32),
                                               np.zeros(len(labels), np.float32)).to_arrays())
    return folder
