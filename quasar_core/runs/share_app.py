"""``export --format app``: a predict-only Streamlit app folder a stakeholder can run or deploy, without TensorFlow.

``write_app`` writes a folder that runs without Quasar Nexus (``streamlit run app.py`` after
``pip install -r requirements.txt``, or as it is on Streamlit Community Cloud)::

    app.py                  the app: copied from share_app_template/app.py (a real file, tested as one);
                            it imports only streamlit, onnxruntime, numpy and pillow
    photo_decoding.py       THE decoder and resize: quasar_core/data/photo_decoding.py, byte for byte
    answers.py              the three answers in words: share_app_template/answers.py, byte for byte
    model.onnx              VGG16 and the head for ONNX Runtime (runs/app_model.py): resized RGB in,
                            probabilities and pooled features out
    labels.json             class names in the order of the model's outputs
    card.json               the model card's headline (see HEADLINE_KEYS) + "examples": {label: path},
                            "image_size" (the side photos are resized to) and "model" (what runs, in words)
    examples/<n>.jpg        one example photo per class, n = the class's index in labels
    familiarity.npz         only with `familiarity`: the "none of these" reference arrays
    familiarity.py          only with `familiarity`: `scoring_snippet`, familiarity(features, arrays)
    requirements.txt        the text given (see ``app_requirements``): pinned, no TensorFlow
    README.md               how to run or deploy it, what it shows, what "none of these" means
    .streamlit/config.toml  light theme, minimal toolbar, no usage statistics, no e-mail prompt

The folder is staged beside its destination and moved into place whole: a failure leaves nothing.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import shutil
import tempfile
from datetime import date, datetime
from pathlib import Path
from string import Template

import numpy as np

from quasar_core.wording import estimate, join_words, plural

TEMPLATE_DIR = Path(__file__).resolve().parent / "share_app_template"
DECODER = Path(__file__).resolve().parents[1] / "data" / "photo_decoding.py"  # copied byte for byte
ANSWERS = TEMPLATE_DIR / "answers.py"  # copied byte for byte (the app's and predict.py's words)
PROJECT_REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"
DISTRIBUTION = "quasar-nexus"
EXAMPLE_SIDE = 512  # example photos are shrunk to at most this many pixels a side
APP_FORMAT = 1

# What card.json may say (all but "title" optional); the app words it like the model card does.
HEADLINE_KEYS = {
    "title": "the app's title, e.g. 'Ants or bees?'",
    "accuracy": "0..1, e.g. 0.93 (None: not measured)",
    "accuracy_interval": "[low, high] 95 % interval, e.g. [0.90, 0.95]",
    "method": "how it was measured, e.g. '5-fold cross-validation over 245 photos'",
    "dataset": "what it was trained on, e.g. 'ants_bees.zip'",
    "n_photos": "how many photos it learned from, e.g. 245",
    "trained_at": "when, ISO 8601 date or date-time, e.g. '2025-03-14' (date/datetime objects accepted)",
    "description": "optional sentence shown under the headline",
}
# Packages the app imports (pinned as the project pins them); never TensorFlow.
APP_PACKAGES = ("streamlit", "onnxruntime", "pillow", "numpy")
NEEDED = APP_PACKAGES
UNMARKED = ("onnxruntime",)  # the project installs it only where wheels exist; the app cannot run without it


def write_app(folder, *, model_onnx: bytes, image_size: int, labels: list[str], headline: dict,
              examples: dict[str, bytes], familiarity: dict[str, np.ndarray] | None, scoring_snippet: str | None,
              requirements: str, model_words: str | None = None) -> Path:
    """Write the app folder (which must not exist, or be empty) and return its path.

    `model_onnx`: app_model.build's model (images resized to `image_size` in). `examples` maps class names
    to photo bytes (any format Pillow reads; stored as JPEG). `familiarity` (FamiliarityModel.to_arrays())
    needs `scoring_snippet`; without it the app answers every photo, with no "doesn't look like any of your
    classes" verdict. `model_words` says what runs (e.g. "VGG16 in int8 ..."), for card.json.
    """
    folder = Path(folder)
    _check_destination(folder)
    labels = _checked_labels(labels)
    card = _checked_headline(headline)
    if not isinstance(model_onnx, (bytes, bytearray)) or len(model_onnx) < 16 or bytes(model_onnx).startswith(b"PK"):
        raise ValueError("model_onnx must be the bytes of an ONNX model (app_model.build), not a .keras file.")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or not 32 <= image_size <= 1024:
        raise ValueError(f"image_size must be the model's input side, 32 to 1024 px; got {image_size!r}.")
    if not isinstance(requirements, str) or not requirements.strip():
        raise ValueError("requirements must be the text of the app's requirements.txt.")
    missing = [name for name in ("streamlit", "onnxruntime") if not _mentions(requirements, name)]
    if missing:
        raise ValueError(f"requirements must name {join_words(missing)}: the app cannot run without them.")
    if _mentions(requirements, "tensorflow"):
        raise ValueError("requirements must not name tensorflow: the app runs on ONNX Runtime alone.")
    unknown = sorted(set(examples or {}) - set(labels))
    if unknown:
        raise ValueError(f"examples are given for {join_words([repr(u) for u in unknown])}, "
                         f"which are not among the labels {labels!r}.")
    arrays = snippet = None
    if familiarity is not None:
        arrays = _checked_arrays(familiarity)
        snippet = _checked_snippet(scoring_snippet, arrays)

    folder.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        shutil.copyfile(TEMPLATE_DIR / "app.py", staged / "app.py")
        shutil.copyfile(DECODER, staged / "photo_decoding.py")
        shutil.copyfile(ANSWERS, staged / "answers.py")
        (staged / ".streamlit").mkdir()
        shutil.copyfile(TEMPLATE_DIR / ".streamlit" / "config.toml", staged / ".streamlit" / "config.toml")
        (staged / "model.onnx").write_bytes(bytes(model_onnx))
        _write_json(staged / "labels.json", labels)
        (staged / "examples").mkdir()
        card["examples"] = {}
        for label, data in (examples or {}).items():
            name = f"examples/{labels.index(label)}.jpg"
            (staged / name).write_bytes(_example_jpeg(label, data))
            card["examples"][label] = name
        card["image_size"] = int(image_size)
        if model_words:
            card["model"] = str(model_words)
        card["app_format"] = APP_FORMAT
        _write_json(staged / "card.json", card)
        if arrays is not None:
            np.savez_compressed(staged / "familiarity.npz", **arrays)
            (staged / "familiarity.py").write_text(snippet, encoding="utf-8")
        (staged / "requirements.txt").write_text(requirements.rstrip("\n") + "\n", encoding="utf-8")
        (staged / "README.md").write_text(_readme(card, labels, with_familiarity=arrays is not None),
                                          encoding="utf-8")
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(staged, folder)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return folder


def app_requirements(project_requirements_text: str) -> str:
    """The lines of the project's requirements.txt the app needs, pinned as the project pins them.

    Kept: streamlit, onnxruntime (its platform markers dropped: the app cannot run without it), pillow and
    numpy; a line without an exact pin (numpy>=2.0,<3) is pinned to the version installed here, where the
    export's check ran. Never TensorFlow.
    """
    kept, seen = [], set()
    for line in _logical_lines(project_requirements_text):
        name = _requirement_name(line)
        if name in APP_PACKAGES and name not in seen:
            line = line.split(";")[0].strip() if name in UNMARKED else line
            kept.append(line if "==" in line else _pinned_here(name) or line)
            seen.add(name)
    kept += [_pinned_here(name) or name for name in NEEDED if name not in seen]
    header = ("# What this app needs (pinned as in the Quasar Nexus project that exported it; no TensorFlow:\n"
              "# the model runs on ONNX Runtime).\n")
    return header + "\n".join(kept) + "\n"


def _pinned_here(name: str) -> str | None:
    """"numpy==2.4.6": the version installed where the app is exported (what its check ran on), else None."""
    from importlib import metadata

    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return None


def project_requirements_text() -> str:
    """The project's requirements.txt: the repository's file, else the installed package's requirements."""
    if PROJECT_REQUIREMENTS.is_file():
        return PROJECT_REQUIREMENTS.read_text(encoding="utf-8")
    from importlib import metadata

    try:
        return "\n".join(metadata.requires(DISTRIBUTION) or [])
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"Neither {PROJECT_REQUIREMENTS} nor the installed {DISTRIBUTION} package's "
                                "requirements were found.") from None


# --------------------------------------------------------------------------- checks
def _check_destination(folder: Path) -> None:
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir() or folder.is_symlink():
            raise FileExistsError(f"{folder} exists and is not a folder; choose a new folder for the app.")
        if any(folder.iterdir()):
            raise FileExistsError(f"{folder} is not empty; choose a new folder for the app, or empty this one.")


def _checked_labels(labels) -> list[str]:
    if isinstance(labels, str) or not labels:
        raise ValueError(f"labels must be a non-empty list of class names, got {labels!r}.")
    labels = list(labels)
    if not all(isinstance(label, str) and label.strip() for label in labels):
        raise ValueError(f"every label must be a non-empty string, got {labels!r}.")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be different from each other, got {labels!r}.")
    return labels


def _checked_headline(headline) -> dict:
    if not isinstance(headline, dict):
        raise ValueError(f"headline must be a dict (keys: {', '.join(HEADLINE_KEYS)}), got {type(headline).__name__}.")
    card = dict(headline)
    if "examples" in card or "app_format" in card:
        raise ValueError("headline must not hold 'examples' or 'app_format': write_app writes those.")
    if not isinstance(card.get("title"), str) or not card["title"].strip():
        raise ValueError("headline needs a 'title' (the app's title), e.g. 'Ants or bees?'.")
    accuracy = card.get("accuracy")
    if accuracy is not None:
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float, np.floating)) \
                or not 0 <= float(accuracy) <= 1:
            raise ValueError(f"headline 'accuracy' must be a number from 0 to 1 or None, got {accuracy!r}.")
        card["accuracy"] = float(accuracy)
    interval = card.get("accuracy_interval")
    if interval is not None:
        try:
            low, high = (float(v) for v in interval)
        except (TypeError, ValueError):
            raise ValueError(f"headline 'accuracy_interval' must be [low, high], got {interval!r}.") from None
        if not 0 <= low <= high <= 1:
            raise ValueError(f"headline 'accuracy_interval' must be 0 <= low <= high <= 1, got {interval!r}.")
        card["accuracy_interval"] = [low, high]
    if card.get("n_photos") is not None:
        card["n_photos"] = int(card["n_photos"])
    if isinstance(card.get("trained_at"), (date, datetime)):
        card["trained_at"] = card["trained_at"].isoformat()
    try:
        json.dumps(card)
    except (TypeError, ValueError) as err:
        raise ValueError(f"headline must hold only JSON values (text, numbers, lists): {err}") from None
    return card


def _checked_arrays(familiarity) -> dict[str, np.ndarray]:
    if not isinstance(familiarity, dict) or not familiarity:
        raise ValueError("familiarity must be a dict of numpy arrays (FamiliarityModel.to_arrays()).")
    arrays = {}
    for key, value in familiarity.items():
        array = np.asarray(value)
        if array.dtype.kind == "O":
            raise ValueError(f"familiarity[{key!r}] holds Python objects; only plain numbers and text can be "
                             "saved (the app loads familiarity.npz without pickle).")
        arrays[str(key)] = array
    return arrays


def _checked_snippet(snippet, arrays) -> str:
    """The scoring source: defines familiarity(features, arrays), needs no Quasar Nexus, and runs on these arrays."""
    if not isinstance(snippet, str) or not snippet.strip():
        raise ValueError("familiarity needs scoring_snippet, the source of familiarity(features, arrays).")
    tree = ast.parse(snippet)
    if not any(isinstance(node, ast.FunctionDef) and node.name == "familiarity" for node in tree.body):
        raise ValueError("scoring_snippet must define a top-level function familiarity(features, arrays).")
    for node in ast.walk(tree):
        modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(module.split(".")[0] == "quasar_core" for module in modules):
            raise ValueError("scoring_snippet must not import quasar_core: the app runs without it.")
    if "n_features" in arrays:  # one trial run, so a mismatch shows here and not in the stakeholder's app
        namespace: dict = {}
        exec(compile(tree, "familiarity.py", "exec"), namespace)  # our own engine's source
        result = namespace["familiarity"](np.zeros((1, int(arrays["n_features"])), np.float32), arrays)
        if len(result) not in (2, 3) or any(len(np.asarray(part)) != 1 for part in result):
            raise ValueError("scoring_snippet's familiarity() must return one value and one or two verdicts per "
                             "photo (familiarity, unknown[, unusual]).")
    return snippet if snippet.endswith("\n") else snippet + "\n"


def _example_jpeg(label: str, data: bytes) -> bytes:
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            image = image.convert("RGB")
            image.thumbnail((EXAMPLE_SIDE, EXAMPLE_SIDE), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=88)
            return buffer.getvalue()
    except Exception as err:
        raise ValueError(f"The example photo of {label!r} could not be read as an image: {err}") from None


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- requirements
def _logical_lines(text: str):
    """Requirement lines: continuations joined, comments and pip options dropped."""
    pending = ""
    for raw in text.splitlines():
        line = pending + (raw.lstrip() if pending else raw)
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1].rstrip() + " "
            continue
        pending = ""
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line and not line.startswith("-"):
            yield line


def _requirement_name(line: str) -> str | None:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else None


def _mentions(requirements: str, name: str) -> bool:
    names = {_requirement_name(line) for line in _logical_lines(requirements)}
    return name in names or (name == "tensorflow" and "tensorflow-cpu" in names)


# --------------------------------------------------------------------------- README
def accuracy_words(card: dict) -> str:
    """"about 93 % (90–95 %) measured by 5-fold cross-validation over 245 photos" (the README's words;
    the app's page keeps the method for its specialists' details)."""
    if card.get("accuracy") is None:
        return "not measured"
    interval = tuple(card["accuracy_interval"]) if card.get("accuracy_interval") else None
    words = estimate(float(card["accuracy"]), interval)
    return f"{words} measured by {card['method']}" if card.get("method") else words


def trained_on_words(card: dict, n_classes: int) -> str:
    """"ants_bees.zip · 2 classes · 245 photos" (as the app says it)."""
    parts = [str(card["dataset"])] if card.get("dataset") else []
    parts.append(plural(n_classes, "class", "classes"))
    if card.get("n_photos") is not None:
        parts.append(plural(int(card["n_photos"]), "photo"))
    return " · ".join(parts)


def when_words(value) -> str:
    """"2025-03-14" -> "14 March 2025" (as the app says it); anything else as it is."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return f"{moment.day} {moment:%B %Y}"


def _md(text: str) -> str:
    out = str(text)
    for char in "\\`*_[]<>#|~$":
        out = out.replace(char, "\\" + char)
    return out


def _readme(card: dict, labels: list[str], *, with_familiarity: bool) -> str:
    if with_familiarity:
        familiarity = (
            "So next to its answer the app checks whether the photo looks like the photos the model learned "
            "from (their features are in `familiarity.npz`). When it is unlike almost all of them (a photo of "
            "something else, a drawing, a very dark or blurred photo), the app says **\"This doesn't look "
            "like any of your classes\"** instead of an answer (its best guess is shown, marked as not to be "
            "trusted); a photo only somewhat unusual gets **\"Not sure\"** with the closest class.")
        rows = ("| `familiarity.npz` | the training photos' features, to tell photos unlike all of them |\n"
                "| `familiarity.py` | how a photo's familiarity is scored (numpy) |\n")
    else:
        familiarity = ("This copy of the model has no record of its training photos, so the app cannot tell "
                       "such photos: it answers every photo with one of the classes.")
        rows = ""
    return Template((TEMPLATE_DIR / "README.template.md").read_text(encoding="utf-8")).substitute(
        title=_md(card["title"]),
        n_classes=plural(len(labels), "class", "classes"),
        classes=join_words([_md(label) for label in labels]),
        accuracy=_md(accuracy_words(card)),
        trained_on=_md(trained_on_words(card, len(labels))),
        trained_at=_md(when_words(card["trained_at"])) if card.get("trained_at") else "not recorded",
        familiarity_words=familiarity,
        familiarity_rows=rows,
        model_words=_md(card.get("model") or "as exported by Quasar Nexus"),
    )
