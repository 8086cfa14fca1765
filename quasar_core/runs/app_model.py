"""The shared app's model: one ONNX file that ONNX Runtime runs without TensorFlow.

images [N, S, S, 3] (RGB 0..255, already resized by photo_decoding.resize_square) ->
``probabilities`` [N, classes] and ``features`` [N, d] (the pooled VGG16 features "none of these" scores).

VGG16's conv stack comes from features/vgg16_onnx.py's builder (which needs no TensorFlow):

* ``int8``: a run whose features were int8 (checked against float32 when it trained) ships the very
  int8 model its features came from, so the app answers exactly as the product does;
* ``int8 weights``: otherwise (float32/bfloat16 training, fine-tuned blocks, a model opened from a
  file) the float graph with each convolution's weights stored in 8 bits per output channel and
  expanded to float32 in the graph: the arithmetic is float32; the file is a quarter of float32's
  59 MB (14.8 MB);
* ``mixed weights``: 16-bit weights, block 5's (7.1 M of the 14.7 M) in 8 bits: 22.4 MB;
* ``float16 weights`` / ``float32``: 16-bit or full weights (29.5 MB, 59 MB).
export.py takes the smallest that reproduces the product's answers within its tolerance.

The head follows in the graph: square root (runs since the richer features), standardise, dense,
softmax of the logits divided by the temperature — head.Head's arithmetic, from its arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quasar_core.features import vgg16_onnx
from quasar_core.backbone import FEATURE_LAYERS
from quasar_core.head_arrays import LEGACY_LAYERS, ROOT_EPSILON, Head

STORAGES = ("int8", "int8 weights", "mixed weights", "float16 weights", "float32")
EIGHT_BIT_IN_MIXED = ("block5_conv1", "block5_conv2", "block5_conv3")  # 7.1 M of VGG16's 14.7 M weights
WORDS = {
    "int8": "VGG16 in int8 (the int8 model this run's features came from, checked against float32 when it trained)",
    "int8 weights": "VGG16 in float32 arithmetic with its weights stored in 8 bits per output channel",
    "mixed weights": ("VGG16 in float32 arithmetic with its weights stored in 16 bits, block 5's in 8 bits per "
                      "output channel"),
    "float16 weights": "VGG16 in float32 arithmetic with its weights stored in 16 bits",
    "float32": "VGG16 in float32",
}


@dataclass
class AppModel:
    onnx: bytes
    storage: str  # one of STORAGES
    image_size: int
    n_features: int

    @property
    def words(self) -> str:
        return WORDS[self.storage]


def build(*, conv_model=None, conv_weights=None, head: Head, image_size: int, storage: str) -> AppModel:
    """The app's ONNX model: `conv_model` (an onnx.ModelProto of int8.py's, int8) or `conv_weights` (13 float
    (kernel HWIO, bias) pairs, stored as `storage` says), then the head."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}.")
    if (conv_model is None) == (conv_weights is None):
        raise ValueError("Give the int8 conv model or the conv weights, not both.")
    if conv_model is None:
        conv_model = vgg16_onnx.build_float_model(conv_weights, image_size=None)
        if storage != "float32":
            _store_weights(conv_model, storage)
    model = onnx.ModelProto()
    model.CopyFrom(conv_model)
    graph = model.graph
    for dim, value in zip(graph.input[0].type.tensor_type.shape.dim[1:3], (image_size, image_size)):
        dim.Clear()
        dim.dim_value = int(image_size)
    # The head: the feature pass's 1,024 (block4, block5) or, for runs saved before them, block5's 512 alone.
    pooled = "features"
    nodes, inits = [], []
    if tuple(head.layers) == LEGACY_LAYERS:
        inits += [numpy_helper.from_array(np.array([512], np.int64), "head/start"),
                  numpy_helper.from_array(np.array([1024], np.int64), "head/end"),
                  numpy_helper.from_array(np.array([1], np.int64), "head/axis")]
        nodes.append(helper.make_node("Slice", ["features", "head/start", "head/end", "head/axis"], ["head/pooled"]))
        pooled = "head/pooled"
    elif tuple(head.layers) != FEATURE_LAYERS:
        raise ValueError(f"The head's layers {head.layers!r} are not the feature pass's {FEATURE_LAYERS!r}.")
    x = pooled
    if head.root:
        inits.append(numpy_helper.from_array(np.array(ROOT_EPSILON, np.float32), "head/epsilon"))
        nodes += [helper.make_node("Relu", [x], ["head/positive"]),
                  helper.make_node("Add", ["head/positive", "head/epsilon"], ["head/shifted"]),
                  helper.make_node("Sqrt", ["head/shifted"], ["head/rooted"])]
        x = "head/rooted"
    temperature = np.float32(head.temperature)
    inits += [numpy_helper.from_array(np.asarray(head.mean, np.float32), "head/mean"),
              numpy_helper.from_array(np.asarray(head.scale, np.float32), "head/scale"),
              numpy_helper.from_array(np.asarray(head.kernel, np.float32), "head/kernel"),
              numpy_helper.from_array(np.asarray(head.bias, np.float32), "head/bias"),
              numpy_helper.from_array(np.array(temperature, np.float32), "head/temperature")]
    nodes += [helper.make_node("Sub", [x, "head/mean"], ["head/centred"]),
              helper.make_node("Div", ["head/centred", "head/scale"], ["head/standard"]),
              helper.make_node("MatMul", ["head/standard", "head/kernel"], ["head/product"]),
              helper.make_node("Add", ["head/product", "head/bias"], ["head/logits"]),
              helper.make_node("Div", ["head/logits", "head/temperature"], ["head/calibrated"]),
              helper.make_node("Softmax", ["head/calibrated"], ["probabilities"], axis=-1)]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    n_features = vgg16_onnx.FEATURES if pooled == "features" else 512
    del graph.output[:]  # read by position: probabilities, then the pooled features
    graph.output.extend([
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(head.bias)]),
        helper.make_tensor_value_info(pooled, TensorProto.FLOAT, ["batch", n_features]),
    ])
    helper.set_model_props(model, {"image_size": str(image_size), "storage": storage,
                                   "producer": "Quasar Nexus shared app"})
    onnx.checker.check_model(model)
    return AppModel(model.SerializeToString(), storage, int(image_size), n_features)


def _store_weights(model, storage: str) -> None:
    """Each conv kernel (OIHW float32) replaced by a smaller stored form expanded to float32 in the graph."""
    from onnx import helper, numpy_helper

    graph = model.graph
    kernels = {init.name: init for init in graph.initializer if init.name.endswith("/kernel")}
    added_nodes = []
    for name, init in kernels.items():
        kernel = numpy_helper.to_array(init).astype(np.float32)
        graph.initializer.remove(init)
        sixteen = storage == "float16 weights" or (storage == "mixed weights"
                                                   and name.split("/")[0] not in EIGHT_BIT_IN_MIXED)
        if sixteen:
            graph.initializer.append(numpy_helper.from_array(kernel.astype(np.float16), f"{name}/stored"))
            added_nodes.append(helper.make_node("Cast", [f"{name}/stored"], [name], to=1, name=f"{name}/expand"))
            continue
        # Symmetric per output channel: scale = max|w| / 127, zero point 0.
        peak = np.abs(kernel).reshape(kernel.shape[0], -1).max(axis=1)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        quantized = np.clip(np.rint(kernel / scale[:, None, None, None]), -127, 127).astype(np.int8)
        graph.initializer.extend([numpy_helper.from_array(quantized, f"{name}/stored"),
                                  numpy_helper.from_array(scale, f"{name}/scale"),
                                  numpy_helper.from_array(np.zeros(len(scale), np.int8), f"{name}/zero")])
        added_nodes.append(helper.make_node("DequantizeLinear", [f"{name}/stored", f"{name}/scale", f"{name}/zero"],
                                            [name], axis=0, name=f"{name}/expand"))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(added_nodes + nodes)  # kernels first: the graph stays in topological order


def conv_weights_of(keras_model) -> list[tuple[np.ndarray, np.ndarray]]:
    """VGG16's 13 (kernel, bias) pairs as a Quasar Keras model holds them (fine-tuned blocks included)."""
    names = {layer.name for layer in keras_model.layers}
    missing = [name for name in vgg16_onnx.LAYER_NAMES if name not in names]
    if missing:
        raise ValueError(f"Not a Quasar VGG16 model: no layers {missing!r}.")
    return [tuple(np.asarray(w, np.float32) for w in keras_model.get_layer(name).get_weights())
            for name in vgg16_onnx.LAYER_NAMES]


def head_of(keras_model) -> Head:
    """The head a Quasar Keras model holds (Normalization, Dense with the temperature folded in)."""
    names = {layer.name for layer in keras_model.layers}
    normalization = keras_model.get_layer("feature_normalization")
    dense = keras_model.get_layer("predictions")
    mean = np.asarray(normalization.mean, np.float32).reshape(-1)
    variance = np.asarray(normalization.variance, np.float32).reshape(-1)
    kernel, bias = (np.asarray(w, np.float32) for w in dense.get_weights())
    richer = "features" in names
    return Head(mean, np.sqrt(variance), kernel, bias, temperature=1.0,
                layers=FEATURE_LAYERS if richer else LEGACY_LAYERS, root=richer)


def session(data: bytes):
    """An ONNX Runtime session of an app model, as the app opens it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def run(data_or_session, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, features) of resized images, one photo at a time as the app answers."""
    sess = session(data_or_session) if isinstance(data_or_session, (bytes, bytearray)) else data_or_session
    outputs = [o.name for o in sess.get_outputs()]
    parts = [sess.run(outputs, {"images": np.ascontiguousarray(image[None], np.float32)}) for image in images]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
