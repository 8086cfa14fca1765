"""Why the model answers as it does: Grad-CAM overlays ("where the model looked") and the model card.

TensorFlow loads only when an overlay is computed (that needs the run's model), so pages
call these on a user action or for a photo just classified. Overlays are kept in the
session (ui.state), per run folder, image and class, so redrawing a page costs nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from quasar_core import data
from quasar_core.errors import QuasarError
from quasar_core.runs.folder import Run
from quasar_core.runs.learned import classifier_of
from ui import resources, state

class CannotExplain(QuasarError):
    """The model lacks the layers Grad-CAM needs (it can still classify)."""


EXAMPLE_SIDE = 160  # held-out examples are saved at most this big; overlays are drawn at this size
PHOTO_SIDE = 224


def photo_id(content: bytes) -> str:
    """A short fingerprint of an uploaded photo (to key its explanations and widgets)."""
    return hashlib.sha1(content).hexdigest()[:16]


def example_overlay(run: Run, prediction: dict) -> np.ndarray | None:
    """Grad-CAM overlay of one held-out example for the class it was predicted as (None: no image kept).

    Raises QuasarError with a plain message when the model cannot be explained.
    """
    path = run.example_path(prediction)
    if path is None:
        return None
    key = (str(run.path), prediction.get("example"), prediction["predicted"])
    overlay = state.grad_cam(key)
    if overlay is None:
        from PIL import Image

        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        overlay = _explain(run, pixels, prediction["predicted"], EXAMPLE_SIDE)["overlay"]
        state.remember_grad_cam(key, overlay)
    return overlay


def photo_explanation(run: Run, content: bytes, name: str, class_name: str | None = None) -> dict:
    """{"overlay", "class_name", "probability", "probabilities"} for an uploaded photo.

    With class_name None the predicted class is explained, and this one pass through VGG16 is
    also the prediction (its probabilities are predict_proba's). Raises data.ImageRejected (the
    photo) or QuasarError (the model) with a plain message.
    """
    key = (str(run.path), photo_id(content), class_name)
    result = state.grad_cam(key)
    if result is None:
        pixels, _, _ = data.decode_image(content, name, limits=data.Limits.from_env())
        explained = _explain(run, pixels, class_name, PHOTO_SIDE)
        result = {k: explained[k] for k in ("overlay", "class_name", "probability", "probabilities")}
        state.remember_grad_cam(key, result)
        # the same answer under the class's own name, so choosing it again costs nothing
        state.remember_grad_cam((str(run.path), photo_id(content), result["class_name"]), result)
    return result


def _explain(run: Run, pixels: np.ndarray, class_name: str | None, min_side: int) -> dict:
    from quasar_core.explain import LAST_CONV_LAYER, explain_image

    model = classifier_of(run, base_loader=resources.base_loader(run.config.weights)).model()
    try:
        return explain_image(model, pixels, run.labels, class_name=class_name, min_side=min_side,
                             image_size=run.config.image_size)
    except ValueError:  # a model from elsewhere without VGG16's last convolution or a "predictions" layer
        raise CannotExplain(
            f"Where the model looked cannot be shown for this model: it lacks VGG16's last convolution "
            f"({LAST_CONV_LAYER}) or a final 'predictions' layer. Models trained or exported by Quasar Nexus "
            "have both; train one here to see it."
        ) from None


def model_card_maker(run_dir: Path) -> Callable[[], str]:
    """The model card's HTML, made only when the user clicks Download (st.download_button defers it)."""

    def make() -> str:
        from quasar_core.runs.report import model_card_html  # imported here: only needed on click

        try:
            return model_card_html(run_dir)
        except (QuasarError, ValueError, OSError):  # the model cannot be loaded: the card without overlays
            return model_card_html(run_dir, with_grad_cam=False)

    return make
