"""Parameter counts: which stored tensors are weights, and how many elements and bytes."""

from __future__ import annotations

from collections.abc import Iterator

from onnx import ModelProto, TensorProto

from onnxprune.io.tensors import element_count, tensor_nbytes

FLOAT_TYPES = frozenset(
    getattr(TensorProto, name)
    for name in (
        "FLOAT",
        "FLOAT16",
        "BFLOAT16",
        "DOUBLE",
        "FLOAT8E4M3FN",
        "FLOAT8E4M3FNUZ",
        "FLOAT8E5M2",
        "FLOAT8E5M2FNUZ",
        "FLOAT4E2M1",
    )
    if hasattr(TensorProto, name)
)


def param_tensors(model: ModelProto) -> Iterator[TensorProto]:
    """The tensors that count as parameters, each once, in graph order.

    Counted: main-graph initializers of float types (float64/32/16, bfloat16, float8/4), float
    tensors held in main-graph ``Constant`` nodes (weights of Paddle2ONNX-style models), and
    integer initializers read as the data input of a ``DequantizeLinear`` or as an operand of
    a quantized layer (``QLinearConv``, ``ConvInteger``, ``QLinearMatMul``, ``MatMulInteger``:
    quantized weights). Not counted: integer tensors otherwise (shapes, indices, axes, zero
    points), subgraph tensors.
    """
    from onnxprune.stats.macs import OPERANDS

    graph = model.graph
    dequantized = {
        node.input[0] for node in graph.node if node.op_type == "DequantizeLinear" and node.input
    }
    for node in graph.node:
        formula, a, b = OPERANDS.get(node.op_type, (node.op_type, 0, 1))
        if formula != node.op_type:  # a quantized layer: its operands may be stored weights
            dequantized.update(node.input[i] for i in (a, b) if i < len(node.input))
    for init in graph.initializer:
        if init.data_type in FLOAT_TYPES or init.name in dequantized:
            yield init
    for node in graph.node:
        if node.op_type != "Constant":
            continue
        for attribute in node.attribute:
            if attribute.name == "value" and attribute.t.data_type in FLOAT_TYPES:
                yield attribute.t


def count_params(model: ModelProto) -> tuple[int, int]:
    """(parameters, bytes) over :func:`param_tensors`: elements and stored data bytes."""
    params = 0
    size = 0
    for tensor in param_tensors(model):
        params += element_count(tensor)
        size += tensor_nbytes(tensor)
    return params, size
