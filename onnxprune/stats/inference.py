"""Static shapes of every tensor at fixed input shapes, cheaply, for statistics.

Weights are not needed to infer shapes, so large float initializers are replaced by graph inputs
of the same shape (a light "skeleton" model): inference never copies or serializes the weights,
and works the same for models over 2 GB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from onnx import GraphProto, ModelProto, TensorProto, helper

from onnxprune.errors import InputError
from onnxprune.graph.measured_shapes import (
    fill_unknown_shapes,
    measure_shapes,
    measured_note,
    measuring_failed_note,
    needs_measurement,
)
from onnxprune.graph.shapes import Shape, fix_input_shapes, infer_shapes, value_shapes

_FLOAT_TYPES = {
    TensorProto.FLOAT,
    TensorProto.FLOAT16,
    TensorProto.BFLOAT16,
    TensorProto.DOUBLE,
}
# Float initializers up to this many elements stay (Resize scales, Clip bounds...).
_KEEP_ELEMENTS = 64


@dataclass
class InferredShapes:
    """Shapes by tensor name, the concrete input shapes used, and notes on assumptions."""

    shapes: dict[str, Shape]
    input_shapes: dict[str, list[int]]
    notes: list[str] = field(default_factory=list)


def real_inputs(graph: GraphProto) -> list:
    """Graph inputs that are not initializers (the values a user feeds)."""
    initializers = {init.name for init in graph.initializer}
    return [value for value in graph.input if value.name not in initializers]


def shape_skeleton(model: ModelProto) -> ModelProto:
    """A copy of ``model`` whose float initializers of more than 64 elements became graph inputs.

    Nodes, small initializers (shape constants, scales), opsets and local functions are kept, so
    shape inference with data propagation gives the same shapes as on the full model.
    """
    skeleton = ModelProto()
    skeleton.ir_version = model.ir_version
    skeleton.producer_name = model.producer_name
    skeleton.producer_version = model.producer_version
    skeleton.opset_import.extend(model.opset_import)
    skeleton.functions.extend(model.functions)
    source = model.graph
    graph = skeleton.graph
    graph.name = source.name
    graph.node.extend(source.node)
    graph.output.extend(source.output)
    graph.value_info.extend(source.value_info)
    graph.sparse_initializer.extend(source.sparse_initializer)
    listed = {value.name for value in source.input}
    graph.input.extend(source.input)
    for init in source.initializer:
        elements = 1
        for dim in init.dims:
            elements *= int(dim)
        if init.data_type in _FLOAT_TYPES and elements > _KEEP_ELEMENTS:
            if init.name not in listed:
                graph.input.append(
                    helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
                )
        else:
            graph.initializer.append(init)
    return skeleton


def _check_names(model: ModelProto, input_shapes: dict[str, list[int]]) -> None:
    """InputError when ``input_shapes`` names something that is not a model input."""
    names = [value.name for value in real_inputs(model.graph)]
    unknown = sorted(set(input_shapes) - set(names))
    if unknown:
        raise InputError(
            f"input_shapes names unknown input(s) {', '.join(unknown)}; "
            f"model inputs are {', '.join(names) or '(none)'}"
        )


def _dims(value) -> list:
    return [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
        for d in value.type.tensor_type.shape.dim
    ]


def infer_static_shapes(
    model: ModelProto, input_shapes: dict[str, list[int]] | None = None, *, measure: bool = True
) -> InferredShapes:
    """Shapes of all tensors with inputs fixed by ``input_shapes`` (other dynamic dims -> 1).

    Uses :func:`onnxprune.graph.shapes.fix_input_shapes` and ``infer_shapes`` with data
    propagation on :func:`shape_skeleton`; if inference fails, retries without data
    propagation, then falls back to the shapes stored in the model, with a note each time.
    A dynamic dimension other than the first (batch) one that is set to 1 is noted too.
    Shapes inference leaves unknown are measured by one ONNX Runtime run at the same input
    shapes when ``measure`` is on (:mod:`onnxprune.graph.measured_shapes`), with a note.
    """
    input_shapes = dict(input_shapes or {})
    _check_names(model, input_shapes)
    notes: list[str] = []
    original_inputs = real_inputs(model.graph)
    fixed = fix_input_shapes(shape_skeleton(model), input_shapes)
    for value in original_inputs:
        if value.name in input_shapes:
            continue
        for axis, dim in enumerate(_dims(value)):
            if axis > 0 and not isinstance(dim, int):
                notes.append(
                    f"input '{value.name}' dimension {axis} ({dim or '?'}) is dynamic and was "
                    "set to 1; give --input-shape for real MACs"
                )
    used = {
        value.name: [int(d.dim_value) for d in value.type.tensor_type.shape.dim]
        for value in real_inputs(fixed.graph)
        if value.name in {v.name for v in original_inputs}
    }
    inferred = fixed
    for data_prop in (True, False):
        try:
            inferred = infer_shapes(fixed, data_prop=data_prop)
            break
        except Exception as error:
            notes.append(
                f"shape inference failed{' with data propagation' if data_prop else ''}: "
                f"{' '.join(str(error).split())[:200]}"
            )
    shapes = value_shapes(inferred)
    if measure and needs_measurement(model, shapes):
        notes.extend(_measure(model, input_shapes, shapes))
    return InferredShapes(shapes, used, notes)


def _measure(model: ModelProto, input_shapes: dict[str, list[int]], shapes: dict) -> list[str]:
    """Fill unknown ``shapes`` in place from one ONNX Runtime run; the notes to report."""
    from onnxprune.passes.lower_attention import attention_lowered

    try:  # ONNX Attention in the form onnxprune writes: ORT's kernel refuses padding masks
        measured = measure_shapes(fix_input_shapes(attention_lowered(model)[0], input_shapes))
    except Exception as error:  # custom ops, invalid models: keep the static shapes
        return [measuring_failed_note(error)]
    filled = fill_unknown_shapes(shapes, measured)
    if not filled:
        return []
    return [
        measured_note(len(filled), "once in ONNX Runtime (valid random inputs at the shapes above)")
    ]
