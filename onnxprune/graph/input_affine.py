"""The affine map a model applies to an image input before its first layer, read from the graph.

Exports often keep their preprocessing in the graph: Keras' ``Rescaling(1/255)`` and
``Normalization`` layers become ``Mul``/``Add``/``Mul`` on the NHWC input under tf2onnx,
MobileNet's ``x / 127.5 − 1`` a ``Mul`` and an ``Add``, a Caffe-style model a ``Sub`` of the
pixel means. Such a model expects raw pixels in [0, 255]: fed pixels scaled to [0, 1] (the
usual default of an image loader), it sees near-black images, and calibrating or guarding on
them measures nothing a user cares about.

:func:`input_affine` follows the one chain of nodes from a float graph input while each node is
``Mul``, ``Div``, ``Add`` or ``Sub`` with a constant other operand that is a scalar or one value
per channel, or a ``Transpose``/``Identity``/``Cast`` to float that moves no values; it stops at
the first other node (or where the chain branches) and composes the chain into

    y = a · x + b      (a, b: per channel, or scalars),

with Mul k: (a, b) ← (k·a, k·b); Div k: (a/k, b/k); Add k: (a, b + k); Sub k: (a, b − k);
``k − x``: (−a, k − b). :func:`expected_pixel_scale` reads the map: when it sends every pixel
value in [0, 255] into [−``NORMALIZED_LIMIT``, ``NORMALIZED_LIMIT``], the model normalizes raw
pixels itself and wants them unscaled (scale 1); otherwise nothing is concluded (a chain that
leaves 255 far from that range expects values already scaled, and no chain says nothing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import ModelProto, TensorProto, numpy_helper

from onnxprune.graph.constants import constant_lookup

#: |y| a normalized image stays within (ImageNet mean/std puts 0–255 pixels in [−2.2, 2.7])
NORMALIZED_LIMIT = 10.0
_SCALE_OPS = {"Mul", "Div", "Add", "Sub"}
_MOVE_OPS = {"Transpose", "Identity"}
_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}


@dataclass
class InputAffine:
    """y = scale · x + shift per channel (arrays of one value, or one per channel) and the
    op types of the nodes that apply it, in graph order."""

    scale: np.ndarray
    shift: np.ndarray
    nodes: list[str]

    def describe(self) -> str:
        """The chain in a few words: its op types in order."""
        return ", ".join(self.nodes)


def _small_constant(proto: TensorProto | None) -> np.ndarray | None:
    """The value of a constant of at most 4 elements held in the file, else None."""
    if proto is None or proto.data_location == TensorProto.EXTERNAL:
        return None
    if int(np.prod(proto.dims)) > 4:
        return None
    return numpy_helper.to_array(proto)


def _per_channel(value: np.ndarray) -> np.ndarray | None:
    """The constant as one value or one value per channel (its only non-1 axis), else None."""
    array = np.asarray(value, dtype=np.float64)
    if array.size == 1:
        return array.reshape(1)
    if sum(1 for dim in array.shape if dim != 1) == 1 and array.size in (1, 3, 4):
        return array.reshape(-1)
    return None


def input_affine(model: ModelProto, name: str) -> InputAffine | None:
    """The composed map of the elementwise chain from graph input ``name`` (module doc), or
    None when its first node is not part of such a chain."""
    constant_of = constant_lookup(model)
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for tensor in set(node.input):
            readers.setdefault(tensor, []).append(node)
    scale, shift = np.ones(1), np.zeros(1)
    nodes: list[str] = []
    current = name
    while len(readers.get(current, ())) == 1:
        node = readers[current][0]
        if node.op_type in _MOVE_OPS or (
            node.op_type == "Cast"
            and any(a.name == "to" and a.i in _FLOAT_TYPES for a in node.attribute)
        ):
            current = node.output[0]
            continue
        if node.op_type not in _SCALE_OPS or len(node.input) != 2:
            break
        first, second = node.input
        other, reversed_operands = (second, False) if first == current else (first, True)
        value = _small_constant(constant_of(other))
        constant = None if value is None else _per_channel(value)
        if constant is None or (node.op_type == "Div" and (reversed_operands or 0 in constant)):
            break
        if node.op_type == "Mul":
            scale, shift = scale * constant, shift * constant
        elif node.op_type == "Div":
            scale, shift = scale / constant, shift / constant
        elif node.op_type == "Add":
            shift = shift + constant
        elif reversed_operands:  # k - x
            scale, shift = -scale, constant - shift
        else:
            shift = shift - constant
        nodes.append(node.op_type)
        current = node.output[0]
    return InputAffine(scale, shift, nodes) if nodes else None


def expected_pixel_scale(model: ModelProto, name: str) -> tuple[float | None, str]:
    """(1.0, why) when the graph normalizes raw [0, 255] pixels of input ``name`` itself
    (module doc); (None, "") when the graph says nothing about the pixel range."""
    affine = input_affine(model, name)
    if affine is None:
        return None, ""
    low, high = affine.shift, affine.scale * 255.0 + affine.shift
    if max(float(np.abs(low).max()), float(np.abs(high).max())) > NORMALIZED_LIMIT:
        return None, ""
    return 1.0, (
        f"the model normalizes its input '{name}' itself ({affine.describe()} before its first "
        f"layer: pixels 0–255 "
        f"become [{float(np.minimum(low, high).min()):.3g}, "
        f"{float(np.maximum(low, high).max()):.3g}]), so images are fed as raw pixels (scale 1)"
    )


def image_pixel_scales(model: ModelProto) -> dict[str, tuple[float, str]]:
    """``{input name: (scale, why)}`` for every float rank-4 graph input whose graph normalizes
    raw pixels itself (:func:`expected_pixel_scale`); the image loaders use it as the default
    pixel scale when the preprocessing spec sets no scale, mean or std."""
    scales = {}
    for name in _image_inputs(model):
        scale, why = expected_pixel_scale(model, name)
        if scale is not None:
            scales[name] = (scale, why)
    return scales


def _values(array: np.ndarray) -> str:
    """One value when every channel has it, else the per-channel list (3 significant digits)."""
    flat = np.asarray(array, dtype=np.float64).reshape(-1)
    if np.allclose(flat, flat[0]):
        return f"{flat[0]:.3g}"
    return "[" + ", ".join(f"{v:.3g}" for v in flat) + "]"


def _image_inputs(model: ModelProto) -> list[str]:
    """Float graph inputs of rank 4 (or unknown rank) that are not initializers."""
    initializers = {init.name for init in model.graph.initializer}
    names = []
    for value in model.graph.input:
        tensor = value.type.tensor_type
        if value.name in initializers or tensor.elem_type not in _FLOAT_TYPES:
            continue
        if tensor.HasField("shape") and len(tensor.shape.dim) != 4:
            continue
        names.append(value.name)
    return names


def preprocessing_notes(model: ModelProto) -> list[str]:
    """One line per image input whose graph starts with an affine chain (:func:`input_affine`):
    the composed map, where pixels 0–255 and 0–1 land, and what the image-folder loaders make
    of it (``inspect`` prints it, so a user knows what the model's own graph already does)."""
    notes = []
    for name in _image_inputs(model):
        affine = input_affine(model, name)
        if affine is None:
            continue
        scale, shift = affine.scale, affine.shift
        raw = (float(np.minimum(shift, scale * 255 + shift).min()),
               float(np.maximum(shift, scale * 255 + shift).max()))  # fmt: skip
        unit = (float(np.minimum(shift, scale + shift).min()),
                float(np.maximum(shift, scale + shift).max()))  # fmt: skip
        found, _ = expected_pixel_scale(model, name)
        verdict = (
            "image folders feed it raw pixels (scale 1) unless preprocess.toml sets scale, "
            "mean or std"
            if found is not None
            else "this concludes nothing about the pixel range: image folders feed pixels "
            "scaled by 1/255 unless preprocess.toml says otherwise"
        )
        notes.append(
            f"input '{name}': the graph maps it by y = a·x + b before its first layer "
            f"({affine.describe()}; a = {_values(scale)}, b = {_values(shift)}): pixels 0–255 "
            f"become [{raw[0]:.3g}, {raw[1]:.3g}], pixels 0–1 [{unit[0]:.3g}, {unit[1]:.3g}]; "
            + verdict
        )
    return notes


def pixel_scales_of(model: ModelProto | str | os.PathLike) -> dict[str, tuple[float, str]]:
    """:func:`image_pixel_scales` of a ModelProto or a model file (graph only: external
    weights are not loaded; the constants read are a few values)."""
    if not isinstance(model, ModelProto):
        model = onnx.load(os.fspath(model), load_external_data=False)
    return image_pixel_scales(model)
