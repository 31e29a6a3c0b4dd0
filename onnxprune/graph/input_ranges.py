"""Valid value ranges of a model's integer inputs, read from the graph, and random feeds in them.

Random integers are not valid input for most models that take integers: token ids index an
embedding table, token-type ids a table of 2 rows, and an attention mask is 0/1. Feeding
``[0, 10)`` to a 2-row Gather fails in ONNX Runtime. The ranges come from the model itself:

* **index**: the input reaches the *indices* input of a Gather (possibly through Cast,
  Reshape, Unsqueeze, Squeeze, Flatten, Expand, Identity) whose data is a constant (or has a
  known static shape): values in ``[0, data.shape[axis])``, the smallest table when several.
* **mask**: the input's name contains "mask", or it flows (through the same ops) into
  arithmetic (Sub, Mul, Add, Div, Where, Not, And, Or, Equal, comparison) before any Gather:
  values 0/1 — generated as a per-row prefix of ones (at least one) along the last axis,
  the shape of a padding mask, so no row is fully masked.
* **pixels**: a ``uint8`` input of rank >= 3 that indexes no table — an 8-bit image (a
  TensorFlow export's ``[N, H, W, 3]``): values in ``[0, 256)``. Checked before **mask**: the
  image's Cast/Mul would otherwise read as a mask's arithmetic and give 0/1 pixels.
* **unknown**: anything else keeps the historic ``[0, 10)``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import ModelProto

DEFAULT_HIGH = 10
_PASS_THROUGH = {"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Expand", "Identity"}
_ARITHMETIC = {
    "Sub",
    "Mul",
    "Add",
    "Div",
    "Where",
    "Not",
    "And",
    "Or",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
}
_MAX_HOPS = 8


@dataclass(frozen=True)
class InputRange:
    """Values of one integer input lie in ``[low, high)``; ``kind`` is index, mask or unknown;
    ``reason`` names the node the range was read from."""

    low: int
    high: int
    kind: str
    reason: str


def _integer_inputs(model: ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {init.name for init in model.graph.initializer}
    result = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        if np.issubdtype(dtype, np.integer):
            result.append(value)
    return result


def _is_8bit_image(value: onnx.ValueInfoProto) -> bool:
    tensor = value.type.tensor_type
    return tensor.elem_type == onnx.TensorProto.UINT8 and len(tensor.shape.dim) >= 3


def _table_rows(model: ModelProto, node: onnx.NodeProto, shapes: dict[str, tuple]) -> int | None:
    """Rows of a Gather's data along its axis, from a constant or a static shape."""
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    for init in model.graph.initializer:
        if init.name == node.input[0]:
            dims = list(init.dims)
            return int(dims[axis]) if dims else None
    shape = shapes.get(node.input[0])
    if shape is not None and -len(shape) <= axis < len(shape):
        size = shape[axis]
        return int(size) if isinstance(size, int) and size > 0 else None
    return None


def integer_input_ranges(
    model: ModelProto, shapes: dict[str, tuple] | None = None
) -> dict[str, InputRange]:
    """The :class:`InputRange` of every integer graph input (see the module docstring)."""
    shapes = shapes or {}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            if name:
                consumers[name].append(node)
    ranges: dict[str, InputRange] = {}
    for value in _integer_inputs(model):
        tables: list[tuple[int, str]] = []
        arithmetic: str | None = None
        frontier = [value.name]
        seen = set(frontier)
        for _ in range(_MAX_HOPS):
            following: list[str] = []
            for tensor in frontier:
                for node in consumers.get(tensor, []):
                    if node.op_type == "Gather" and len(node.input) > 1 and node.input[1] == tensor:
                        rows = _table_rows(model, node, shapes)
                        if rows:
                            tables.append((rows, node.name or node.op_type))
                    elif node.op_type in _PASS_THROUGH and node.input[0] == tensor:
                        following.extend(o for o in node.output if o and o not in seen)
                    elif node.op_type in _ARITHMETIC and arithmetic is None:
                        arithmetic = node.name or node.op_type
            seen.update(following)
            frontier = following
        if tables:
            rows, where = min(tables)
            ranges[value.name] = InputRange(0, rows, "index", f"indexes Gather '{where}'")
        elif _is_8bit_image(value):
            ranges[value.name] = InputRange(0, 256, "pixels", "uint8 input of rank >= 3")
        elif "mask" in value.name.lower() or arithmetic is not None:
            reason = "name contains 'mask'" if "mask" in value.name.lower() else ""
            reason = reason or f"feeds arithmetic '{arithmetic}'"
            ranges[value.name] = InputRange(0, 2, "mask", reason)
        else:
            ranges[value.name] = InputRange(0, DEFAULT_HIGH, "unknown", "no Gather or mask use")
    return ranges


def random_integers(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, value_range: InputRange
) -> np.ndarray:
    """Seeded values of ``shape`` in ``value_range``: a prefix-of-ones padding mask for masks
    (rank >= 2: per row along the last axis; rank 1: all ones), uniform integers otherwise."""
    if value_range.kind == "mask":
        if len(shape) < 2 or shape[-1] == 0:
            return np.ones(shape, dtype=dtype)
        length = shape[-1]
        kept = rng.integers(max(1, length // 2), length + 1, size=(*shape[:-1], 1))
        return (np.arange(length) < kept).astype(dtype)
    high = max(value_range.low + 1, value_range.high)
    return rng.integers(value_range.low, high, size=shape).astype(dtype)


def input_ranges_of(model: ModelProto | str | os.PathLike) -> dict[str, InputRange]:
    """:func:`integer_input_ranges` of a ModelProto or a model file (graph only: external
    weights are not loaded, initializer dims suffice)."""
    if not isinstance(model, ModelProto):
        model = onnx.load(os.fspath(model), load_external_data=False)
    return integer_input_ranges(model)


__all__ = [
    "DEFAULT_HIGH",
    "InputRange",
    "input_ranges_of",
    "integer_input_ranges",
    "random_integers",
]
