"""MACs of one node from static shapes (used to weigh clusters during analysis)."""

from __future__ import annotations

import numpy as np

from onnxprune.analysis.graph_view import GraphView, NodeView
from onnxprune.graph.attention import attention_macs
from onnxprune.graph.einsum import equation_macs
from onnxprune.graph.recurrent import RECURRENT_OPS, recurrent_macs


def node_macs(node: NodeView, view: GraphView) -> int:
    """Multiply-accumulates of Conv, ConvTranspose, Gemm, MatMul and Einsum; 0 for other ops.

    Conv: out elements × Cin/g × kernel area. ConvTranspose: input elements × Cout/g × kernel
    area. Gemm/MatMul: output elements × contraction length. Einsum (one the ``lower_einsum``
    pass left as it is): :func:`onnxprune.graph.einsum.einsum_macs`. Attention (one the
    ``lower_attention`` pass left): :func:`onnxprune.graph.attention.attention_macs`.
    RNN/GRU/LSTM: :func:`onnxprune.graph.recurrent.recurrent_macs`.
    """
    if node.op_type == "Einsum":
        return _einsum_macs(node, view)
    if node.op_type == "Attention":
        shapes = [view.static_shape(name) if name else None for name in node.inputs]
        return attention_macs(shapes, node.attrs) or 0
    if node.op_type in RECURRENT_OPS:
        x, w, r = (view.static_shape(name) for name in node.inputs[:3])
        return recurrent_macs(x, w, r, node.attrs) or 0
    if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
        return 0
    out_shape = view.static_shape(node.outputs[0])
    a_shape = view.static_shape(node.input(0))
    b_shape = view.static_shape(node.input(1))
    if out_shape is None or a_shape is None or b_shape is None:
        return 0
    if node.op_type == "Conv":
        return int(np.prod(out_shape)) * int(np.prod(b_shape[1:]))
    if node.op_type == "ConvTranspose":
        return int(np.prod(a_shape)) * int(b_shape[1]) * int(np.prod(b_shape[2:]))
    if node.op_type == "Gemm":
        k = a_shape[0] if node.attrs.get("transA", 0) else a_shape[-1]
        return int(np.prod(out_shape)) * int(k)
    return int(np.prod(out_shape)) * int(a_shape[-1])


def _einsum_macs(node: NodeView, view: GraphView) -> int:
    shapes = [view.static_shape(name) for name in node.inputs]
    equation = node.attrs.get("equation")
    if any(shape is None for shape in shapes) or equation is None:
        return 0
    return equation_macs(equation, shapes) or 0
