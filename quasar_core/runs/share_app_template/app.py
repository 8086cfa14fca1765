"""A photo classifier made with Quasar Nexus: upload photos (or take one), get the answer.

Run it with ``streamlit run app.py`` in this folder (``pip install -r requirements.txt`` first).
Everything it needs is in this folder:

* model.keras        the classifier (raw RGB pixels of any size in; resizing and VGG16's
                     preprocessing are inside it), loaded with safe_mode=True;
* labels.json        the class names, in the order of the model's outputs;
* card.json          what the model card says: title, accuracy, what it was trained on, when,
                     and one example photo per class (examples/);
* familiarity.npz    optional: the training photos' features, and familiarity.py, which scores
                     how much a new photo looks like them ("none of these").

It uses streamlit, keras (TensorFlow), numpy, pillow and plotly only.
"""

import importlib.util
import io
import json
import os
from datetime import datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pandas  # noqa: F401  (before plotly: plotly's lazy pandas import races between Streamlit's script threads)
import plotly.graph_objects as go
import streamlit as st
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

HERE = Path(__file__).resolve().parent
MAX_BARS = 10  # the most likely classes drawn in a photo's chart
MAX_PIXELS = 60_000_000  # larger photos are refused (a 60-megapixel photo needs about 1 GB to answer)
ACCENT, SOFT, GREY = "#1f6fb2", "#a9c8e4", "#c9c9c9"


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
    """The classifier, answering (probabilities, pooled VGG16 features) in one pass."""
    import keras

    model = keras.saving.load_model(files[0][0], safe_mode=True, compile=False)
    pooled = "features" if any(layer.name == "features" for layer in model.layers) else "pool"  # "pool": older runs
    return keras.Model(model.inputs, [model.outputs[0], model.get_layer(pooled).output])


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
    return load_model(stamp(HERE / "model.keras"))


def familiarity_reference():
    return load_familiarity(stamp(HERE / "familiarity.npz", HERE / "familiarity.py"))


# --------------------------------------------------------------------------- photos
class NotAPhoto(ValueError):
    """A file this app cannot read as a photo; the message says why and what to do."""


def describe(data):
    head = data[:512]
    for signature, what in ((b"%PDF", "a PDF document"), (b"PK\x03\x04", "a zip archive or an Office document"),
                            (b"\x1f\x8b", "compressed data (gzip)"), (b"8BPS", "a Photoshop document")):
        if head.startswith(signature):
            return what
    if head[4:8] == b"ftyp":
        if head[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "heic"
        return "a video"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "a web page"
    if b"<svg" in lowered:
        return "an SVG drawing"
    try:
        text = data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return "text" if text is not None and "\x00" not in text else "not a picture format this app can read"


def read_photo(data):
    """The photo as uint8 RGB pixels: EXIF orientation applied, transparency on white."""
    if not data:
        raise NotAPhoto("the file is empty (0 bytes). Copy the photo again and upload it.")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        what = describe(data)
        if what == "heic":
            raise NotAPhoto("it is an HEIC photo (the iPhone format), which this app cannot read. Save it as "
                            "JPEG (on the iPhone: Settings > Camera > Formats > Most Compatible) and upload "
                            "it again.") from None
        raise NotAPhoto(f"it is not a photo (the file is {what}). Upload a JPEG, PNG, WebP, GIF, BMP or TIFF "
                        "photo instead.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise NotAPhoto("it has too many pixels to open safely. Make it smaller and upload it again.") from None
    except Exception as err:  # Pillow's parsers raise many kinds of errors on broken headers
        raise NotAPhoto(f"the file is damaged ({err or type(err).__name__}). Save the photo again and upload "
                        "the new copy.") from None
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise NotAPhoto(f"it is too large ({width}x{height} pixels, the most is {MAX_PIXELS // 1_000_000} "
                            "megapixels). Make it smaller and upload it again.")
        try:
            image.load()
            return np.array(to_rgb(upright(image)), dtype=np.uint8)
        except NotAPhoto:
            raise
        except MemoryError:
            raise NotAPhoto("it is too large for the memory this computer has. Make it smaller and upload "
                            "it again.") from None
        except Exception as err:  # truncated data, broken streams
            raise NotAPhoto(f"the file is damaged or cut short ({err or type(err).__name__}). Save the photo "
                            "again and upload the new copy.") from None


def upright(image):
    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) == 1:
            return image
        return ImageOps.exif_transpose(image)
    except Exception:  # broken EXIF: the photo as stored
        return image


def to_rgb(image):
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):  # high-bit-depth greyscale: scale, never clip
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        high = float(values.max()) if values.size else 0.0
        if mode == "F" and high <= 1.0:
            values = values * 255.0
        elif mode.startswith("I;16") or high > 255.0:
            values = values / 257.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA", "RGBa", "La", "P") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError:
        raise NotAPhoto(f"its colour mode ({mode}) is unusual. Save it as an ordinary JPEG or PNG and upload "
                        "it again.") from None


# --------------------------------------------------------------------------- answers
@st.cache_data(show_spinner=False, max_entries=256)
def answer(data, labels, files):
    """{"label", "probabilities", "familiarity", "unknown", "checked", "thumbnail"} for one photo's bytes.

    Raises NotAPhoto. `files` (the model's and the reference's stamps) only keys the cache: a photo
    is answered once, not again on every rerun.
    """
    pixels = read_photo(data)
    probabilities, features = model()([pixels[None].astype(np.float32)], training=False)
    probabilities = np.asarray(probabilities, dtype=np.float64)[0]
    result = {"label": labels[int(np.argmax(probabilities))], "probabilities": probabilities,
              "familiarity": None, "unknown": False, "checked": None, "thumbnail": thumbnail(pixels)}
    try:
        reference = familiarity_reference()
        if reference is not None:
            score, unknown = reference[0](np.asarray(features, dtype=np.float32), reference[1])
            result["familiarity"], result["unknown"] = float(np.asarray(score)[0]), bool(np.asarray(unknown)[0])
            result["checked"] = True
    except Exception as err:  # the answer stands; only the "none of these" check is missing
        result["checked"] = f"{type(err).__name__}: {err}"
    return result


def thumbnail(pixels, side=640):
    image = Image.fromarray(pixels)
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image)


def probability_chart(result, labels, *, greyed):
    order = np.argsort(-result["probabilities"], kind="stable")[:MAX_BARS]
    names = [labels[i] for i in order]
    values = [float(result["probabilities"][i]) * 100 for i in order]
    colours = [GREY] * len(order) if greyed else [ACCENT] + [SOFT] * (len(order) - 1)
    figure = go.Figure(go.Bar(
        x=values, y=names, orientation="h", marker_color=colours, opacity=0.6 if greyed else 1.0,
        text=[f"{value:.1f} %" for value in values], textposition="auto",
        textfont_color="#6b6b6b" if greyed else None,
        hovertemplate="%{y}: %{x:.1f} %<extra></extra>", cliponaxis=False,
    ))
    figure.update_layout(
        height=70 + 34 * len(order), margin=dict(l=10, r=30, t=40, b=10), showlegend=False,
        title=dict(text="Not to be trusted: the photo is unlike the training photos" if greyed
                   else "How sure the model is", font=dict(size=14, color="#8a8a8a" if greyed else None)),
        xaxis=dict(range=[0, 100], ticksuffix=" %", title=None, fixedrange=True),
        yaxis=dict(type="category", autorange="reversed", title=None, fixedrange=True,
                   tickfont=dict(color="#8a8a8a") if greyed else None),
    )
    return figure


def show_answer(number, name, data, labels):
    with st.container(border=True):
        try:
            with st.spinner(f"Looking at {name}…"):
                result = answer(data, labels, stamp(HERE / "model.keras", HERE / "familiarity.npz",
                                                    HERE / "familiarity.py"))
        except NotAPhoto as problem:
            st.error(f"**{md(name)}** could not be answered: {problem}", icon=":material/block:")
            return
        except Exception as err:  # the model itself failed: say so for this photo, answer the others
            st.error(f"**{md(name)}** could not be answered: the model failed on it ({err}). Try another copy "
                     "of the photo, or a smaller one.", icon=":material/block:")
            return
        picture, words = st.columns([1, 2], gap="medium")
        picture.image(result["thumbnail"], caption=name, width="stretch")
        with words:
            confidence = float(np.max(result["probabilities"]))
            if result["unknown"]:
                st.warning(
                    "**This doesn't look like any of your classes.** It is unlike every photo the model "
                    f"learned from ({md(join_words(labels))}), so its best guess, {md(result['label'])} "
                    f"({percent(confidence)}), should not be trusted.", icon=":material/help:")
            else:
                st.markdown(f"### {md(result['label'])}")
                st.markdown(f"It is most likely **{md(result['label'])}** ({percent(confidence)} sure).")
            st.plotly_chart(probability_chart(result, labels, greyed=result["unknown"]),
                            key=f"probabilities_{number}", config={"displayModeBar": False})
            if len(labels) > MAX_BARS:
                rest = 1 - float(np.sort(result["probabilities"])[::-1][:MAX_BARS].sum())
                st.caption(f"The other {len(labels) - MAX_BARS} classes share {percent(max(rest, 0.0))}.")
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
        method = f" measured by {card['method']}" if card.get("method") else ""
        lines.append(f"**Accuracy:** {md(accuracy + method)}")
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
                           help="JPEG, PNG, WebP, GIF, BMP or TIFF; several at once if you like.")
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

if not photos:
    st.caption("Upload a photo (or turn on the camera) to see what the model makes of it.")
for number, (name, data) in enumerate(photos):
    show_answer(number, name, data, labels)

with st.expander("What \"doesn't look like any of your classes\" means"):
    st.markdown(
        "The model only knows the classes above: asked about any photo, it picks the most likely of them. "
        "So next to its answer the app checks whether the photo looks like the photos the model learned "
        "from. When it is unlike almost all of them (a photo of something else, a drawing, a very dark or "
        "blurred photo), the app says **\"This doesn't look like any of your classes\"** instead of an "
        "answer, and greys out the model's probabilities: they are shown, but they mean little."
        + ("" if reference is not None else
           "\n\nThis copy of the model has no record of its training photos, so it cannot make that check: "
           "every photo gets an answer."))

# Ready the model while the page is read, so the first photo is answered sooner.
try:
    model()
except Exception as err:
    st.error(f"The model in this folder could not be loaded ({err}). Export the app again from Quasar Nexus.")
