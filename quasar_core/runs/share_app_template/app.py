"""A photo classifier made with Quasar Nexus: upload photos (or take one), get the answer.

Run it with ``streamlit run app.py`` in this folder (``pip install -r requirements.txt`` first).
Everything it needs is in this folder, and it needs no TensorFlow:

* model.onnx         the classifier for ONNX Runtime: VGG16 and the learned head in one graph
                     (photos resized to card.json's image_size in; probabilities and VGG16's pooled
                     features out);
* photo_decoding.py  how a photo is read and resized: the same file Quasar Nexus itself uses;
* answers.py         the three answers in words (familiar, unusual, unlike every class);
* labels.json        the class names, in the order of the model's outputs;
* card.json          what the model card says: title, accuracy, what it was trained on, when,
                     the input size, and one example photo per class (examples/);
* familiarity.npz    optional: the training photos' features, and familiarity.py, which scores
                     how much a new photo looks like them ("none of these").

It uses streamlit, onnxruntime, numpy and pillow only.
"""

import importlib.util
import json
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import answers  # noqa: E402  (this folder's own files)
import photo_decoding  # noqa: E402

MAX_BARS = 10  # the most likely classes shown under a photo
MAX_PIXELS = 60_000_000  # larger photos are refused (a 60-megapixel photo needs about 1 GB to read)
MIN_SIDE = 16  # as Quasar Nexus itself: smaller photos say nothing


# --------------------------------------------------------------------------- words
def percent(fraction, digits=1):
    """0.9474 -> "94.7 %" (a space before the sign, everywhere in this app)."""
    return f"{float(fraction) * 100:.{digits}f} %"


def estimate(accuracy, interval):
    """"about 93 % (90–95 %)"; without an interval "93 %"."""
    if not interval:
        return percent(accuracy, 0)
    low, high = interval
    return f"about {percent(accuracy, 0)} ({low * 100:.0f}–{high * 100:.0f} %)"


def plural(count, one, many=None):
    return f"{count} {one if count == 1 else (many or one + 's')}"


def join_words(words):
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def md(text):
    """Text shown as itself in Markdown (a class called "*new*" stays "*new*")."""
    out = str(text)
    for char in "\\`*_[]<>#|~$:":
        out = out.replace(char, "\\" + char)
    return out


def when(value):
    """"2025-03-14" or "2025-03-14T09:30:00" -> "14 March 2025"; anything else as it is."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return f"{moment.day} {moment:%B %Y}"


# --------------------------------------------------------------------------- what the folder holds
def stamp(*paths):
    """What the cached loaders are keyed on: the files and their sizes and times (a replaced file is read again)."""
    return tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns) if path.is_file() else (str(path),)
                 for path in paths)


@st.cache_data(show_spinner=False)
def read_folder(files):
    labels = json.loads((HERE / "labels.json").read_text(encoding="utf-8"))
    card = json.loads((HERE / "card.json").read_text(encoding="utf-8"))
    return [str(label) for label in labels], card


@st.cache_resource(show_spinner=False)
def load_model(files):
    """An ONNX Runtime session answering (probabilities, pooled VGG16 features) in one pass."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Idle worker threads would spin between photos, taking the CPU from the page.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(files[0][0], options, providers=["CPUExecutionProvider"])


@st.cache_resource(show_spinner=False)
def load_familiarity(files):
    """(score function, arrays), or None when this folder has no familiarity reference."""
    arrays_path, code_path = (Path(file[0]) for file in files)
    if not (arrays_path.is_file() and code_path.is_file()):
        return None
    spec = importlib.util.spec_from_file_location("quasar_app_familiarity", code_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with np.load(arrays_path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    return module.familiarity, arrays


def model():
    return load_model(stamp(HERE / "model.onnx"))


def familiarity_reference():
    return load_familiarity(stamp(HERE / "familiarity.npz", HERE / "familiarity.py"))


def image_size(card):
    """The side photos are resized to: card.json's, else the model's own input size."""
    if card.get("image_size"):
        return int(card["image_size"])
    return int(model().get_inputs()[0].shape[1])


# --------------------------------------------------------------------------- answers
NotAPhoto = photo_decoding.PhotoRejected  # the file cannot be read as a photo; its reason says why and what to do


def read_photo(data):
    """The photo as uint8 RGB pixels, upright, transparency on white (photo_decoding, as Quasar Nexus reads it)."""
    pixels, _ = photo_decoding.decode_photo(data, max_pixels=MAX_PIXELS, min_side=MIN_SIDE,
                                            limit_note="the most this app opens")
    return pixels


@st.cache_data(show_spinner=False, max_entries=256)
def answer(data, labels, size, files):
    """{"label", "probabilities", "familiarity", "unknown", "unusual", "checked", "thumbnail"} for a photo's bytes.

    Raises NotAPhoto. `files` (the model's and the reference's stamps) only keys the cache: a photo
    is answered once, not again on every rerun.
    """
    pixels = read_photo(data)
    square = photo_decoding.resize_square(pixels, size)[None]
    probabilities, features = model().run(None, {"images": np.ascontiguousarray(square, dtype=np.float32)})
    probabilities = np.asarray(probabilities, dtype=np.float64)[0]
    result = {"label": labels[int(np.argmax(probabilities))], "probabilities": probabilities,
              "familiarity": None, "unknown": False, "unusual": False, "checked": None,
              "thumbnail": thumbnail(pixels)}
    try:
        reference = familiarity_reference()
        if reference is not None:
            values, unknown, unusual = answers.familiarity_verdicts(reference[0], np.asarray(features, np.float32),
                                                                    reference[1])
            result.update(familiarity=float(values[0]), unknown=bool(unknown[0]), unusual=bool(unusual[0]),
                          checked=True)
    except Exception as err:  # the answer stands; only the "none of these" check is missing
        result["checked"] = f"{type(err).__name__}: {err}"
    return result


def thumbnail(pixels, side=640):
    image = Image.fromarray(pixels)
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image)


def show_bars(result, labels, number):
    """The most likely classes as bars, the answer first; greyed words when the photo is unlike the training ones."""
    order = np.argsort(-result["probabilities"], kind="stable")[:MAX_BARS]
    with st.container(key=f"probabilities_{number}"):
        st.caption("Not to be trusted: the photo is unlike the training photos" if result["unknown"]
                   else "How sure the model is")
        for rank, index in enumerate(order):
            value = float(result["probabilities"][index])
            name = md(labels[index]) if rank or result["unknown"] else f"**{md(labels[index])}**"
            st.progress(min(max(value, 0.0), 1.0), text=f"{name} · {answers.confidence(value)}")
    if len(labels) > MAX_BARS:
        rest = 1 - float(np.sort(result["probabilities"])[::-1][:MAX_BARS].sum())
        st.caption(f"The other {len(labels) - MAX_BARS} classes share {percent(max(rest, 0.0))}.")


def show_answer(number, name, data, labels, size):
    with st.container(border=True):
        try:
            with st.spinner(f"Looking at {name}…"):
                result = answer(data, labels, size, stamp(HERE / "model.onnx", HERE / "familiarity.npz",
                                                          HERE / "familiarity.py"))
        except NotAPhoto as problem:
            st.error(f"**{md(name)}** could not be answered: {md(problem.reason)}", icon=":material/block:")
            return
        except Exception as err:  # the model itself failed: say so for this photo, answer the others
            st.error(f"**{md(name)}** could not be answered: the model failed on it ({md(err)}). Try another copy "
                     "of the photo, or a smaller one.", icon=":material/block:")
            return
        picture, words = st.columns([1, 2], gap="medium")
        picture.image(result["thumbnail"], caption=name, width="stretch")
        with words:
            kind, sentence = answers.verdict(result["probabilities"], [md(label) for label in labels],
                                             unknown=result["unknown"], unusual=result["unusual"])
            if kind == "unknown":
                closest = answers.confidence(np.max(result["probabilities"]))
                st.warning(f"**This doesn't look like any of your classes.** It is unlike every photo the model "
                           f"learned from ({md(join_words(labels))}); the closest is {md(result['label'])} "
                           f"({closest}), but that guess should not be trusted.", icon=":material/help:")
            elif kind == "unusual":
                st.info(sentence, icon=":material/help:")
            else:
                st.markdown(f"### {md(result['label'])}")
                st.markdown(sentence.replace(md(result["label"]), f"**{md(result['label'])}**", 1))
            show_bars(result, labels, number)
            if result["familiarity"] is not None:
                st.caption(f"Familiarity {percent(result['familiarity'], 0)}: how ordinary this photo looks "
                           "next to the photos the model learned from (very low means unlike all of them).")
            elif isinstance(result["checked"], str):
                st.caption(f"Whether this photo looks like the training photos could not be checked "
                           f"({md(result['checked'])}).")


def headline_words(card, n_classes):
    """The model card's headline in words: how good, trained on what, when (Markdown lines)."""
    lines = []
    if card.get("accuracy") is not None:
        accuracy = estimate(float(card["accuracy"]), card.get("accuracy_interval"))
        lines.append(f"**Accuracy:** {md(accuracy)} on photos the model being tested never saw")
    else:
        lines.append("**Accuracy:** not measured")
    trained_on = [str(card["dataset"])] if card.get("dataset") else []
    trained_on.append(plural(n_classes, "class", "classes"))
    if card.get("n_photos") is not None:
        trained_on.append(plural(int(card["n_photos"]), "photo"))
    lines.append(f"**Trained on:** {md(' · '.join(trained_on))}")
    if card.get("trained_at"):
        lines.append(f"**Trained:** {md(when(card['trained_at']))}")
    return lines


# --------------------------------------------------------------------------- the page
labels, card = read_folder(stamp(HERE / "labels.json", HERE / "card.json"))
title = str(card.get("title") or "Photo classifier")
st.set_page_config(page_title=title, page_icon=":material/image_search:", layout="centered")
st.title(title)
st.markdown("  \n".join(headline_words(card, len(labels))))
if card.get("method"):  # how it was measured, in the words specialists use
    with st.expander("Details for specialists"):
        st.markdown(md(f"Accuracy measured by {card['method']}."))
if card.get("description"):
    st.markdown(md(card["description"]))

st.subheader("What it tells apart")
examples = card.get("examples") or {}
per_row = min(len(labels), 4) or 1
for start in range(0, len(labels), per_row):
    for column, label in zip(st.columns(per_row), labels[start:start + per_row]):
        example = examples.get(label)
        if example and (HERE / example).is_file():
            column.image(str(HERE / example), caption=label, width="stretch")
        else:
            column.markdown(f"**{md(label)}**")

st.subheader("Try it")
uploads = st.file_uploader("Upload photos", accept_multiple_files=True, key="photos",
                           help=f"{photo_decoding.UPLOAD_FORMATS}; several at once if you like.")
photos = [(upload.name, upload.getvalue()) for upload in uploads or []]
if st.toggle("Use the camera", key="use_camera"):
    shot = st.camera_input("Take a photo", key="camera")
    if shot is not None:
        photos.append(("Camera photo", shot.getvalue()))

try:
    reference = familiarity_reference()
except Exception as err:  # a damaged reference: every photo is still answered, without the verdict
    reference = None
    st.warning(f"This folder's record of the training photos could not be read ({err}), so the app cannot "
               "tell photos unlike all of them: every photo gets an answer.")

try:
    size = image_size(card)  # opens the model while the page is read, so the first photo is answered sooner
except Exception as err:
    size = None
    st.error(f"The model in this folder could not be loaded ({err}). Export the app again from Quasar Nexus.")

if not photos:
    st.caption("Upload a photo (or turn on the camera) to see what the model makes of it.")
for number, (name, data) in enumerate(photos if size else []):
    show_answer(number, name, data, labels, size)

with st.expander("What \"doesn't look like any of your classes\" means"):
    st.markdown(
        "The model only knows the classes above: asked about any photo, it picks the most likely of them. "
        "So next to its answer the app checks whether the photo looks like the photos the model learned "
        "from. When it is unlike almost all of them (a photo of something else, a drawing, a very dark or "
        "blurred photo), the app says **\"This doesn't look like any of your classes\"** instead of an "
        "answer, and its best guess is shown greyed: it is there, but it means little. A photo that is only "
        "somewhat unusual gets **\"Not sure\"** with the closest class."
        + ("" if reference is not None else
           "\n\nThis copy of the model has no record of its training photos, so it cannot make that check: "
           "every photo gets an answer."))
