"""Experimental ops of ONNX's first opsets, rewritten to the standard ops that compute the same.

ONNX 1.0–1.3 shipped *experimental* ops that later left the standard: ``onnx.defs`` no longer
knows them, so the loader's schema check rejected them as unknown ops, yet ONNX Runtime still
runs them at opsets 7–9 and files of that era use them (ONNX Model Zoo models converted from
CoreML, Caffe2 or CNTK: Tiny YOLOv2 starts with an ``ImageScaler``). At load time each such
node of the default domain, at an opset where ``onnx.defs`` has no schema for it, is replaced by
the standard nodes of its registered lowering (``register_lowering(op_type)``; the math is in
each function's docstring), with its attributes as new initializers; a node whose lowering
declines (returns None) is left for the schema check to reject with its name. The written model
holds the standard ops. ``tests/io/test_legacy_ops.py`` checks every lowering against ONNX
Runtime's own kernel of the experimental op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import ModelProto, NodeProto, TensorProto, helper, numpy_helper

INT64_MAX = np.iinfo(np.int64).max


@dataclass
class Lowered:
    """The standard nodes (and their new constants) that replace one experimental node."""

    nodes: list[NodeProto]
    constants: list[TensorProto] = field(default_factory=list)


@dataclass
class _Context:
    """What a lowering needs: the node, the model's default opset, fresh names."""

    node: NodeProto
    opset: int
    taken: set[str]
    constants: dict[str, np.ndarray] = field(default_factory=dict)

    def attribute(self, name: str, default=None):
        for attribute in self.node.attribute:
            if attribute.name == name:
                return helper.get_attribute_value(attribute)
        return default

    def name(self, suffix: str) -> str:
        base = f"{self.node.name or self.node.output[0]}/{suffix}"
        candidate, index = base, 1
        while candidate in self.taken:
            candidate, index = f"{base}_{index}", index + 1
        self.taken.add(candidate)
        return candidate

    def constant(self, suffix: str, values, lowered: Lowered, dtype=np.float32) -> str:
        name = self.name(suffix)
        lowered.constants.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def op(
        self,
        op_type: str,
        inputs: list[str],
        lowered: Lowered,
        output: str | None = None,
        **attributes,
    ) -> str:
        result = output or self.name(op_type)
        lowered.nodes.append(
            helper.make_node(op_type, inputs, [result], name=self.name(op_type), **attributes)
        )
        return result


Lowering = Callable[[_Context], Lowered | None]
_LOWERINGS: dict[str, Lowering] = {}


def register_lowering(op_type: str) -> Callable[[Lowering], Lowering]:
    """Decorator registering ``lowering(context) -> Lowered | None`` for ``op_type``."""

    def decorate(function: Lowering) -> Lowering:
        _LOWERINGS[op_type] = function
        return function

    return decorate


def lowered_op_types() -> list[str]:
    """Experimental op types the loader rewrites."""
    return sorted(_LOWERINGS)


def _scale_shift(context: _Context, source: str, scale: float, shift, lowered: Lowered) -> None:
    """``scale · source + shift`` into the node's output (a factor of 1 and a zero shift are
    left out; both left out is an Identity)."""
    output = context.node.output[0]
    shift = np.asarray(shift, dtype=np.float32)
    needs_shift = bool(np.any(shift != 0))
    current = source
    if scale != 1.0:
        factor = context.constant("scale", np.float32(scale), lowered)
        current = context.op("Mul", [current, factor], lowered, None if needs_shift else output)
    if needs_shift:
        term = context.constant("shift", shift, lowered)
        context.op("Add", [current, term], lowered, output)
    elif current == source:
        context.op("Identity", [source], lowered, output)


@register_lowering("ImageScaler")
def _image_scaler(context: _Context) -> Lowered:
    """y[n, c, ...] = scale · x[n, c, ...] + bias[c]: Mul by the scalar, Add of bias shaped
    [1, C, 1, …] (C = len(bias); an absent bias adds nothing)."""
    lowered = Lowered([])
    bias = np.asarray(context.attribute("bias", []), dtype=np.float32)
    shift = bias.reshape(1, -1, 1, 1) if bias.size else np.zeros((), np.float32)
    _scale_shift(
        context, context.node.input[0], float(context.attribute("scale", 1.0)), shift, lowered
    )
    return lowered


@register_lowering("Affine")
def _affine(context: _Context) -> Lowered:
    """y = alpha · x + beta (defaults 1, 0): Mul, Add."""
    lowered = Lowered([])
    _scale_shift(
        context,
        context.node.input[0],
        float(context.attribute("alpha", 1.0)),
        float(context.attribute("beta", 0.0)),
        lowered,
    )
    return lowered


@register_lowering("Scale")
def _scale(context: _Context) -> Lowered:
    """y = scale · x (default 1): Mul."""
    lowered = Lowered([])
    _scale_shift(
        context, context.node.input[0], float(context.attribute("scale", 1.0)), 0.0, lowered
    )
    return lowered


def _around(context: _Context, op_type: str) -> Lowered:
    """y = alpha · op(beta · x): Mul, ``op_type``, Mul (alpha, beta from the node; a factor
    of 1 is left out)."""
    lowered = Lowered([])
    alpha, beta = float(context.attribute("alpha", 1.0)), float(context.attribute("beta", 1.0))
    current = context.node.input[0]
    if beta != 1.0:
        current = context.op(
            "Mul", [current, context.constant("beta", np.float32(beta), lowered)], lowered
        )
    output = context.node.output[0]
    inner = context.op(op_type, [current], lowered, output if alpha == 1.0 else None)
    if alpha != 1.0:
        context.op(
            "Mul", [inner, context.constant("alpha", np.float32(alpha), lowered)], lowered, output
        )
    return lowered


@register_lowering("ScaledTanh")
def _scaled_tanh(context: _Context) -> Lowered:
    """y = alpha · tanh(beta · x)."""
    return _around(context, "Tanh")


@register_lowering("ParametricSoftplus")
def _parametric_softplus(context: _Context) -> Lowered:
    """y = alpha · ln(1 + exp(beta · x)) = alpha · Softplus(beta · x)."""
    return _around(context, "Softplus")


@register_lowering("ThresholdedRelu")
def _thresholded_relu(context: _Context) -> Lowered:
    """Before opset 10: y = x where x > alpha (default 1), else 0:
    y = x · Cast(Greater(x, alpha), float) (the experimental op is float-only)."""
    lowered = Lowered([])
    x = context.node.input[0]
    alpha = context.constant("alpha", np.float32(context.attribute("alpha", 1.0)), lowered)
    above = context.op("Greater", [x, alpha], lowered)
    mask = context.op("Cast", [above], lowered, to=TensorProto.FLOAT)
    context.op("Mul", [x, mask], lowered, context.node.output[0])
    return lowered


@register_lowering("Crop")
def _crop(context: _Context) -> Lowered | None:
    """NCHW crop, border = [left, top, right, bottom]: rows top … H − bottom and columns
    left … W − right, or, with scale = [h, w], rows top … top + h and columns left … left + w;
    a Slice over axes 2, 3 (negative ends count from the end; attributes before opset 10,
    constant inputs from 10). A border of other than four values is declined."""
    border = [int(v) for v in context.attribute("border", [])]
    if len(border) != 4:
        return None
    left, top, right, bottom = border
    scale = [int(v) for v in context.attribute("scale", [])]
    if scale:
        if len(scale) != 2:
            return None
        ends = [top + scale[0], left + scale[1]]
    else:
        ends = [-bottom if bottom else INT64_MAX, -right if right else INT64_MAX]
    starts, axes = [top, left], [2, 3]
    lowered = Lowered([])
    x, output = context.node.input[0], context.node.output[0]
    if context.opset < 10:
        context.op("Slice", [x], lowered, output, starts=starts, ends=ends, axes=axes)
    else:
        inputs = [
            context.constant(name, values, lowered, np.int64)
            for name, values in (("starts", starts), ("ends", ends), ("axes", axes))
        ]
        context.op("Slice", [x, *inputs], lowered, output)
    return lowered


@register_lowering("DynamicSlice")
def _dynamic_slice(context: _Context) -> Lowered | None:
    """Before opset 10 (where ONNX Runtime runs it): a Slice whose starts, ends and optional
    axes are inputs — Slice-1 takes them as attributes, so they must be constants
    (initializers); declined otherwise, and from opset 10 on (ONNX Runtime does not run it
    there either)."""
    if context.opset >= 10:
        return None
    inputs = list(context.node.input)
    values = [context.constants.get(name) for name in inputs[1:] if name]
    if len(values) < 2 or any(value is None for value in values):
        return None
    starts, ends = (np.asarray(v).reshape(-1).tolist() for v in values[:2])
    attributes = {"starts": starts, "ends": ends}
    if len(values) > 2:
        attributes["axes"] = np.asarray(values[2]).reshape(-1).tolist()
    lowered = Lowered([])
    context.op("Slice", inputs[:1], lowered, context.node.output[0], **attributes)
    return lowered


@register_lowering("MeanVarianceNormalization")
def _mean_variance_normalization(context: _Context) -> Lowered:
    """Before opset 9 (attributes ``across_channels`` = 0, ``normalize_variance`` = 1), as ONNX
    Runtime computes it (opset 9's default axes): over A = (0, 2, 3), or (0, 1, 2, 3) across
    channels, y = x − E_A[x], divided by sqrt(E_A[x²] − E_A[x]²) + 1e-9 when the variance
    is normalized."""
    lowered = Lowered([])
    axes = [0, 1, 2, 3] if context.attribute("across_channels", 0) else [0, 2, 3]
    x, output = context.node.input[0], context.node.output[0]
    mean = context.op("ReduceMean", [x], lowered, axes=axes, keepdims=1)
    if not context.attribute("normalize_variance", 1):
        context.op("Sub", [x, mean], lowered, output)
        return lowered
    centred = context.op("Sub", [x, mean], lowered)
    square = context.op("Mul", [x, x], lowered)
    mean_square = context.op("ReduceMean", [square], lowered, axes=axes, keepdims=1)
    square_mean = context.op("Mul", [mean, mean], lowered)
    variance = context.op("Sub", [mean_square, square_mean], lowered)
    deviation = context.op("Sqrt", [variance], lowered)
    epsilon = context.constant("epsilon", np.float32(1e-9), lowered)
    denominator = context.op("Add", [deviation, epsilon], lowered)
    context.op("Div", [centred, denominator], lowered, output)
    return lowered


def default_opset(model: ModelProto) -> int | None:
    """The model's default-domain (ai.onnx) opset, None when it imports none."""
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return int(opset.version)
    return None


def _known(op_type: str, opset: int) -> bool:
    try:
        onnx.defs.get_schema(op_type, opset, "")
    except onnx.defs.SchemaError:
        return False
    return True


def lower_legacy_ops(model: ModelProto) -> list[str]:
    """Rewrite, in place, the main graph's experimental nodes (see module docstring); returns
    one line per rewritten node type (``"ImageScaler × 1"``), empty when nothing changed."""
    opset = default_opset(model)
    graph = model.graph
    if opset is None or not any(
        node.op_type in _LOWERINGS and node.domain in ("", "ai.onnx") for node in graph.node
    ):
        return []
    taken = {name for node in graph.node for name in (*node.input, *node.output, node.name)}
    taken |= {tensor.name for tensor in graph.initializer}
    taken |= {value.name for value in graph.input}
    constants = {
        tensor.name: numpy_helper.to_array(tensor)
        for tensor in graph.initializer
        if tensor.data_type == TensorProto.INT64 and len(tensor.dims) <= 1
    }
    nodes: list[NodeProto] = []
    counts: dict[str, int] = {}
    for node in graph.node:
        lowering = _LOWERINGS.get(node.op_type)
        lowered = (
            lowering(_Context(node, opset, taken, constants))
            if lowering is not None
            and node.domain in ("", "ai.onnx")
            and not _known(node.op_type, opset)
            else None
        )
        if lowered is None:
            nodes.append(node)
            continue
        nodes.extend(lowered.nodes)
        graph.initializer.extend(lowered.constants)
        if model.ir_version < 4:  # IR 3: every initializer is also a graph input
            graph.input.extend(
                helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
                for tensor in lowered.constants
            )
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    if counts:
        del graph.node[:]
        graph.node.extend(nodes)
    lines = [f"{op_type} × {count}" for op_type, count in sorted(counts.items())]
    if lines:
        _record(model, lines)
    return lines


#: metadata key naming what :func:`lower_legacy_ops` rewrote (read by :func:`lowered_note`)
LOWERED_KEY = "onnxprune.legacy_ops_lowered"


def _record(model: ModelProto, lines: list[str]) -> None:
    """Write what was rewritten into the model's metadata (it travels with every copy the
    pipeline makes, so the report can say it; the written model keeps it as provenance)."""
    kept = [entry for entry in model.metadata_props if entry.key != LOWERED_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = LOWERED_KEY, ", ".join(lines)


def lowered_note(model: ModelProto) -> str | None:
    """The report line for a model whose experimental ops were rewritten at load, else None."""
    for entry in model.metadata_props:
        if entry.key == LOWERED_KEY:
            return (
                f"experimental op(s) of ONNX's first opsets were rewritten at load as the "
                f"standard ops they compute ({entry.value}); the written model has those ops"
            )
    return None
