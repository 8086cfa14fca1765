"""Model files from outside: checked before Keras reads them, loaded with safe_mode.

A `.keras` file is a zip whose config.json names the classes to build. A Lambda layer
carries Python bytecode and a custom class runs whatever code it names, so a file from
someone else is only loaded when every object in its config is a stock Keras layer of the
kinds this app builds; Keras' own safe_mode then stays on as a second line.
"""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from pathlib import Path

from quasar_core.config import TrainConfig
from quasar_core.errors import QuasarError, UnsafeModelError
from quasar_core.runs.folder import FILES, Run, Status, atomic_write, write_json

# Every class a Quasar model is made of (see head.assemble_model), plus plain containers.
ALLOWED_CLASSES = frozenset({
    "Functional", "Sequential", "Model", "InputLayer", "Resizing", "Conv2D", "MaxPooling2D",
    "GlobalAveragePooling2D", "Flatten", "Dropout", "Dense", "Normalization", "Activation",
    "DTypePolicy", "FloatDTypePolicy", "GlorotUniform", "Zeros", "Ones", "L2", "HeNormal", "HeUniform",
    "GlorotNormal", "VarianceScaling", "RandomNormal", "RandomUniform",
    "Concatenate", "Relu", "Add", "Sqrt",  # the features side by side, square-rooted (Keras operations, no code)
    "__keras_tensor__",  # a reference between layers in a functional graph, not an object
})
MAX_CONFIG_BYTES = 16 * 1024**2


def _objects(node, found):
    """Collect (class_name, module, registered_name) of every serialized object in a Keras config."""
    if isinstance(node, dict):
        if "class_name" in node and isinstance(node["class_name"], str):
            found.append((node["class_name"], str(node.get("module") or ""), node.get("registered_name")))
        for value in node.values():
            _objects(value, found)
    elif isinstance(node, list):
        for value in node:
            _objects(value, found)
    return found


def check_model_config(config: dict, *, name: str = "the model file") -> None:
    """Raise UnsafeModelError naming the first object that is not a stock layer this app uses."""
    for class_name, module, registered in _objects(config, []):
        if class_name == "__lambda__" or class_name == "Lambda":
            raise UnsafeModelError(
                f"{name} contains a Lambda layer, which holds Python code; it was not loaded. "
                "Only models made of standard Keras layers (like the ones this app exports) can be opened."
            )
        stock = module == "" or module == "keras" or module.startswith("keras.")
        if class_name not in ALLOWED_CLASSES or not stock or (registered and registered != class_name):
            raise UnsafeModelError(
                f"{name} contains an object this app does not know ({class_name!r}"
                f"{f' from {module!r}' if module else ''}); it was not loaded, because unknown objects can run "
                "code. Open a model exported by Quasar Nexus instead."
            )


def read_keras_config(source, *, name: str) -> dict:
    """The config.json inside a .keras archive (path or bytes), without loading anything."""
    try:
        with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise UnsafeModelError(f"{name} has an implausibly large model description; it was not loaded.")
            return json.loads(archive.read(info).decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError, OSError) as exc:
        raise QuasarError(
            f"{name} is not a Keras 3 '.keras' model file ({exc.__class__.__name__}). "
            "Open the model.keras from a Quasar Nexus export."
        ) from None


def load_checked_model(path: str | Path):
    """Check, then load with safe_mode=True (compile=False: only predictions are needed)."""
    import keras

    path = Path(path)
    check_model_config(read_keras_config(path, name=f"{path.name!r}"), name=f"{path.name!r}")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except (ValueError, TypeError, OSError) as exc:
        raise QuasarError(f"Could not load the model {path.name!r}: {exc}") from None


def image_size_of(model) -> int:
    """The input size a Quasar model resizes to (its 'resize' layer), else its fixed input size."""
    try:
        return int(model.get_layer("resize").get_config()["height"])
    except ValueError:
        shape = model.inputs[0].shape
        if shape[1] is None:
            raise QuasarError("The model does not say what image size it expects.") from None
        return int(shape[1])


def import_model(data: bytes, file_name: str, run_dir: str | Path):
    """Make a run folder from an uploaded model: a Quasar export zip or a bare .keras file.

    The upload is checked and loaded safely before anything is kept; its predictions then work
    like those of a run trained here. An export zip's labels, evaluation, training date and
    "none of these" reference come with it. Returns the Run.
    """
    run_dir = Path(run_dir)
    name = repr(file_name)
    try:
        parts = _parts_of_upload(data, name)
        check_model_config(read_keras_config(parts["model"], name=name), name=name)
    except QuasarError:
        shutil.rmtree(run_dir, ignore_errors=True)  # an empty folder made for it by the caller
        raise
    run_dir.mkdir(parents=True, exist_ok=True)
    model_path = run_dir / FILES.MODEL
    atomic_write(model_path, parts["model"])
    try:
        model = load_checked_model(model_path)
        classes = int(model.outputs[0].shape[-1])
        labels = parts.get("labels") or [f"class {i + 1}" for i in range(classes)]
        if len(labels) != classes:
            raise QuasarError(f"{name} predicts {classes} classes but its labels name {len(labels)}.")
        config = TrainConfig(image_size=image_size_of(model))
        if isinstance(parts.get("config"), dict):  # an export's own settings, where they still read
            try:
                config = TrainConfig.from_dict(parts["config"]).replace(image_size=image_size_of(model))
            except (TypeError, ValueError):
                pass
        write_json(run_dir / FILES.CONFIG, config.to_dict())
        write_json(run_dir / FILES.LABELS, list(labels))
        trained = parts.get("status") or {}
        now = time.time()
        # A bare .keras file does not say when it was trained: "finished" stays unknown (None).
        status = Status(state="done", started=float(trained.get("started") or now),
                        finished=float(trained["finished"]) if trained.get("finished") else None,
                        opened_from=str(file_name),
                        source=str(trained.get("source") or ""),
                        message=f"Opened from {file_name}.")
        for name_in_zip, data_in_zip in parts.get("extra", {}).items():
            atomic_write(run_dir / name_in_zip, data_in_zip)
        write_json(run_dir / FILES.STATUS, status.to_dict())
    except QuasarError:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    except Exception as exc:  # a damaged or hostile file must not show a traceback
        shutil.rmtree(run_dir, ignore_errors=True)
        raise QuasarError(f"{name} could not be opened as a model ({exc.__class__.__name__}). Open the model.keras "
                          "or the zip downloaded from Quasar Nexus's Predict page.") from None
    return Run.open(run_dir)


# Files of an export zip kept with an opened model (checked: JSON parses, arrays load without pickle).
KEPT_FROM_EXPORT = (FILES.METRICS, FILES.HISTORY, FILES.DATA_REPORT, FILES.FAMILIARITY)


def _parts_of_upload(data: bytes, name: str) -> dict:
    """{"model": .keras bytes, "labels", "status", "extra": {file: bytes}} from an export zip or a .keras file."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise QuasarError(f"{name} is neither a '.keras' model nor a Quasar Nexus export zip.") from None
    with archive:
        members = set(archive.namelist())
        if "config.json" in members and "model.weights.h5" in members:
            return {"model": data}  # a bare .keras archive
        if FILES.MODEL not in members:
            raise QuasarError(f"{name} is neither a '.keras' model nor a Quasar Nexus export zip "
                              f"(no {FILES.MODEL} inside).")
        info = archive.getinfo(FILES.MODEL)
        if info.file_size > 2 * 1024**3:
            raise QuasarError(f"{name} holds an implausibly large model.")
        parts = {"model": archive.read(info), "extra": {}}
        for member, key in ((FILES.LABELS, "labels"), (FILES.STATUS, "status"), (FILES.CONFIG, "config")):
            if member in members:
                parts[key] = _small_json(archive, member, name)
        if "labels" in parts:
            parts["labels"] = [str(x) for x in parts["labels"]]
        for member in KEPT_FROM_EXPORT:
            if member in members and archive.getinfo(member).file_size < 64 * 1024**2:
                content = archive.read(member)
                _check_member(member, content, name)
                parts["extra"][member] = content
        return parts


def _small_json(archive, member: str, name: str):
    try:
        return json.loads(archive.read(member).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise QuasarError(f"{name} has a damaged {member}.") from None


def _check_member(member: str, content: bytes, name: str) -> None:
    try:
        if member.endswith(".json"):
            json.loads(content.decode("utf-8"))
        else:
            import numpy as np

            with np.load(io.BytesIO(content), allow_pickle=False) as arrays:
                _ = [arrays[key] for key in arrays.files]
    except Exception:
        raise QuasarError(f"{name} has a damaged {member}.") from None
