"""Pass: fold inference BatchNormalization into the preceding Conv/ConvTranspose/Gemm/MatMul.

With f = γ/√(σ²+ε) per output channel c, BN(z) = (z-μ)·f + β. For z = W*x + b:
W'[c] = W[c]·f[c] along the producer's output-channel axis and b' = (b-μ)·f + β.
Output-channel axis of W: Conv axis 0; ConvTranspose axis 1 within each group (channel
c = g·(C/groups) + j lives at W[g·Cin/groups:(g+1)·Cin/groups, j]); Gemm: columns of B
(rows when transB=1), with the C term folded as C' = β_gemm·C·f + β - μ·f and β_gemm = 1;
MatMul (2-D output only): columns of the constant right operand, plus a new bias Add.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.passes._graph import NameGen, constant_array, detach, output_names, private
from onnxprune.passes._graph import producer as producer_of
from onnxprune.passes._shapes import rank_of
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass


def _bn_factors(bn: gs.Node) -> tuple[np.ndarray, np.ndarray] | None:
    """(f, shift) with BN(z) = z·f + shift per channel, or None if BN is not foldable."""
    if int(bn.attrs.get("training_mode", 0)) != 0 or len(bn.inputs) != 5:
        return None
    arrays = [constant_array(tensor) for tensor in bn.inputs[1:]]
    if any(array is None or array.ndim != 1 for array in arrays):
        return None
    if any(not np.issubdtype(array.dtype, np.floating) for array in arrays):
        return None
    gamma, beta, mean, var = (array.astype(np.float64) for array in arrays)
    epsilon = float(bn.attrs.get("epsilon", 1e-5))
    factor = gamma / np.sqrt(var + epsilon)
    return factor, beta - mean * factor


def _float_weight(tensor: gs.Tensor) -> np.ndarray | None:
    values = constant_array(tensor)
    if values is None or not np.issubdtype(values.dtype, np.floating):
        return None
    return values


def _bias(node: gs.Node, index: int, channels: int, dtype) -> np.ndarray | None:
    """The node's bias input as float64 (zeros when absent); None when not constant."""
    if len(node.inputs) <= index or node.inputs[index].is_empty():
        return np.zeros(channels, dtype=np.float64)
    values = constant_array(node.inputs[index])
    if values is None:
        return None
    return values.astype(np.float64)


def _set_input(node: gs.Node, index: int, tensor: gs.Tensor) -> None:
    while len(node.inputs) < index:
        node.inputs.append(gs.Variable(""))
    if len(node.inputs) == index:
        node.inputs.append(tensor)
    else:
        node.inputs[index] = tensor


def _fuse_conv(node, factor, shift, names) -> bool:
    weight = _float_weight(node.inputs[1])
    if weight is None or weight.shape[0] != factor.size:
        return False
    bias = _bias(node, 2, factor.size, weight.dtype)
    if bias is None or bias.size != factor.size:
        return False
    scale = factor.reshape((-1,) + (1,) * (weight.ndim - 1))
    new_weight = (weight.astype(np.float64) * scale).astype(weight.dtype)
    new_bias = (bias.reshape(-1) * factor + shift).astype(weight.dtype)
    _set_input(node, 1, gs.Constant(names(f"{node.inputs[1].name}_bn"), new_weight))
    _set_input(node, 2, gs.Constant(names(f"{node.outputs[0].name}_bn_bias"), new_bias))
    return True


def _fuse_conv_transpose(node, factor, shift, names) -> bool:
    weight = _float_weight(node.inputs[1])
    groups = int(node.attrs.get("group", 1))
    if weight is None or weight.ndim < 3 or weight.shape[0] % groups:
        return False
    per_group = weight.shape[1]
    if per_group * groups != factor.size:
        return False
    bias = _bias(node, 2, factor.size, weight.dtype)
    if bias is None or bias.size != factor.size:
        return False
    kernel = weight.shape[2:]
    grouped = weight.astype(np.float64).reshape(groups, -1, per_group, *kernel)
    scale = factor.reshape(groups, 1, per_group, *(1,) * len(kernel))
    new_weight = (grouped * scale).reshape(weight.shape).astype(weight.dtype)
    new_bias = (bias.reshape(-1) * factor + shift).astype(weight.dtype)
    _set_input(node, 1, gs.Constant(names(f"{node.inputs[1].name}_bn"), new_weight))
    _set_input(node, 2, gs.Constant(names(f"{node.outputs[0].name}_bn_bias"), new_bias))
    return True


def _fuse_gemm(node, factor, shift, names) -> bool:
    weight = _float_weight(node.inputs[1])
    if weight is None or weight.ndim != 2:
        return False
    trans_b = int(node.attrs.get("transB", 0))
    columns = weight.shape[0] if trans_b else weight.shape[1]
    if columns != factor.size:
        return False
    bias = _bias(node, 2, factor.size, weight.dtype)
    if bias is None:
        return False
    try:
        np.broadcast_shapes(bias.shape, factor.shape)
    except ValueError:
        return False
    scale = factor[:, None] if trans_b else factor[None, :]
    beta_gemm = float(node.attrs.get("beta", 1.0))
    new_weight = (weight.astype(np.float64) * scale).astype(weight.dtype)
    new_bias = (beta_gemm * bias * factor + shift).astype(weight.dtype)
    _set_input(node, 1, gs.Constant(names(f"{node.inputs[1].name}_bn"), new_weight))
    _set_input(node, 2, gs.Constant(names(f"{node.outputs[0].name}_bn_bias"), new_bias))
    node.attrs["beta"] = 1.0
    return True


def _fuse_matmul(node, factor, shift, names) -> gs.Constant | None:
    """Scale the MatMul's constant right operand; return the bias the caller must add."""
    weight = _float_weight(node.inputs[1])
    if weight is None or weight.ndim != 2 or weight.shape[1] != factor.size:
        return None
    if rank_of(node.outputs[0]) != 2 or isinstance(node.inputs[0], gs.Constant):
        return None
    new_weight = (weight.astype(np.float64) * factor[None, :]).astype(weight.dtype)
    node.inputs[1] = gs.Constant(names(f"{node.inputs[1].name}_bn"), new_weight)
    return gs.Constant(names(f"{node.outputs[0].name}_bn_bias"), shift.astype(weight.dtype))


def _extra_outputs_unused(bn: gs.Node, graph_outputs: set[str]) -> bool:
    return all(
        tensor.is_empty() or (not tensor.outputs and tensor.name not in graph_outputs)
        for tensor in bn.outputs[1:]
    )


_FUSERS = {"Conv": _fuse_conv, "ConvTranspose": _fuse_conv_transpose, "Gemm": _fuse_gemm}


@register_pass("fuse_batchnorm")
def fuse_batchnorm(graph: gs.Graph, ctx: PassContext) -> bool:
    """Fold each inference BatchNormalization into its producer when the BN is its only consumer.

    Contract: W' = W·γ/√(σ²+ε) along the producer's output-channel axis and
    b' = (b-μ)·γ/√(σ²+ε)+β (see the module docstring); the BN output keeps its name.
    """
    graph_outputs = output_names(graph)
    names = NameGen(graph)
    fused = 0
    for bn in list(graph.nodes):
        if bn.op != "BatchNormalization" or not bn.inputs or not bn.outputs:
            continue
        source_tensor = bn.inputs[0]
        source = producer_of(source_tensor, ("Conv", "ConvTranspose", "Gemm", "MatMul"))
        if source is None or len(source.outputs) != 1 or len(source.inputs) < 2:
            continue
        if not private(source_tensor, graph_outputs):
            continue
        if not _extra_outputs_unused(bn, graph_outputs):
            continue
        factors = _bn_factors(bn)
        if factors is None:
            continue
        factor, shift = factors
        result = bn.outputs[0]
        if source.op == "MatMul":
            bias = _fuse_matmul(source, factor, shift, names)
            if bias is None:
                continue
            detach(bn)
            graph.nodes.append(
                gs.Node(
                    "Add",
                    names(f"{source.name}_bn_add"),
                    inputs=[source_tensor, bias],
                    outputs=[result],
                )
            )
        else:
            if not _FUSERS[source.op](source, factor, shift, names):
                continue
            detach(bn)
            source.outputs[0] = result
        fused += 1
    if fused:
        ctx.note(f"fused {fused} BatchNormalization node(s) into their producers")
        graph.toposort()
    return fused > 0
