"""ONNX Runtime's fused BERT blocks: Attention and EmbedLayerNormalization.

Both are written back as the ops a PyTorch export of the same block holds, so the channel
analysis sees separate query/key/value projections and reshapes to heads. They need
opset 13 or newer (``Unsqueeze`` axes as input, ``Range``) and constant weights; anything
else — past key/values, an attention bias, a causal (``unidirectional``) or rotary attention,
a 3-D/4-D mask — is left fused (fail closed). ONNX Runtime's kernels are the tests' reference.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs
from onnx import TensorProto, helper

from onnxprune.passes._graph import NameGen, constant_array
from onnxprune.passes.context import PassContext
from onnxprune.passes.runtime_fusions.registry import (
    MICROSOFT,
    Emitter,
    is_read,
    register_expansion,
)
from onnxprune.passes.runtime_fusions.transformer import layer_norm

MIN_OPSET = 13
INT32, INT64 = TensorProto.INT32, TensorProto.INT64


def _present(node: gs.Node, index: int) -> gs.Tensor | None:
    if len(node.inputs) <= index or node.inputs[index].is_empty():
        return None
    return node.inputs[index]


def _ints(emit: Emitter, values, label: str) -> gs.Constant:
    return gs.Constant(emit.names(f"{emit.base.name}_{label}"), np.array(values, dtype=np.int64))


def _unsqueeze(emit: Emitter, x: gs.Tensor, axes) -> gs.Tensor:
    return emit.op("Unsqueeze", x, _ints(emit, list(axes), "axes"))


def _dim(emit: Emitter, x: gs.Tensor, axis: int) -> gs.Tensor:
    """Scalar int64: the run-time size of ``x`` along ``axis``."""
    shape = emit.op("Shape", x)
    return emit.op("Gather", shape, gs.Constant(emit.names("dim"), np.array(axis, np.int64)))


def _positions(emit: Emitter, x: gs.Tensor) -> gs.Tensor:
    """int64 [S]: 0 … S−1 for the sequence axis (1) of ``x``."""
    zero = gs.Constant(emit.names("zero"), np.array(0, np.int64))
    one = gs.Constant(emit.names("one"), np.array(1, np.int64))
    return emit.op("Range", zero, _dim(emit, x, 1), one)


def _additive_mask(emit: Emitter, mask: gs.Tensor, rank: int, keys: gs.Tensor, fill: float):
    """[B, 1, 1, S] scores offset: 0 where a key is kept, ``fill`` where masked.

    Rank 2 (raw mask [B, S], 1 = keep): (1 − m) · fill. Rank 1 (mask_index [B] of end
    positions, right padding): key j is kept when j < end_b, then the same formula. ``fill``
    is clamped to the float type's lowest finite value.
    """
    dtype = emit.dtype
    if rank == 1:
        ends = _unsqueeze(emit, emit.op("Cast", mask, to=INT64), [1])
        kept = emit.op("Less", _unsqueeze(emit, _positions(emit, keys), [0]), ends)
        mask = kept
    as_float = emit.op("Cast", mask, to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    one = gs.Constant(emit.names("one"), np.array(1.0, dtype))
    fill = max(fill, float(np.finfo(dtype).min))  # float16: −3.4e38 is −inf, and 0·−inf is NaN
    offset = emit.op("Mul", emit.op("Sub", one, as_float), emit.scalar(fill))
    return _unsqueeze(emit, offset, [1, 2])


def _attention_settings(node: gs.Node, graph: gs.Graph):
    """(q, k, v sizes, heads, scale, mask_filter) when the node is in the supported form."""
    weight, bias = constant_array(node.inputs[1]), _present(node, 2)
    bias_values = constant_array(bias) if bias is not None else None
    if weight is None or weight.ndim != 2 or (bias is not None and bias_values is None):
        return None
    if any(_present(node, index) is not None for index in (4, 5, 6)):
        return None  # past key/values, attention bias, past length
    if len(node.outputs) > 1 and is_read(node.outputs[1], graph):
        return None  # present key/values read
    attrs = node.attrs
    if attrs.get("unidirectional", 0) or attrs.get("do_rotary", 0):
        return None
    heads = int(attrs.get("num_heads", 0))
    sizes = [int(s) for s in attrs.get("qkv_hidden_sizes", [])] or [weight.shape[1] // 3] * 3
    if heads <= 0 or sum(sizes) != weight.shape[1] or sizes[0] != sizes[1]:
        return None
    if any(size % heads for size in sizes):
        return None
    scale = float(attrs.get("scale", 0.0)) or 1.0 / float(np.sqrt(sizes[0] // heads))
    return weight, bias_values, sizes, heads, scale, float(attrs.get("mask_filter_value", -10000.0))


def _mask_rank(mask: gs.Tensor) -> int | None:
    return len(mask.shape) if mask.shape is not None else None


@register_expansion(MICROSOFT, "Attention")
def attention(node: gs.Node, graph: gs.Graph, ctx: PassContext, names: NameGen) -> bool:
    """Attention(X, W, b?, mask?; num_heads h, qkv_hidden_sizes, scale s, mask_filter_value f):
    Q, K, V = X·W_q + b_q, X·W_k + b_k, X·W_v + b_v (W, b split by ``qkv_hidden_sizes``, equal
    thirds by default), each reshaped to h heads [B, h, S, d]; P = softmax(s·Q·Kᵀ + M) with
    s = 1/√d by default and M the mask offset (:func:`_additive_mask`); Y = P·V with the heads
    merged back to [B, S, H_v]."""
    if ctx.opset < MIN_OPSET or len(node.inputs) < 2:
        return False
    settings = _attention_settings(node, graph)
    if settings is None:
        return False
    weight, bias, sizes, heads, scale, fill = settings
    mask = _present(node, 3)
    rank = _mask_rank(mask) if mask is not None else None
    if mask is not None and rank not in (1, 2):
        return False
    x, y = node.inputs[0], node.outputs[0]
    node.inputs.clear()
    node.outputs.clear()
    emit = Emitter(graph, names, y, ctx.opset, like=[x, weight])
    dtype = weight.dtype
    starts = np.cumsum([0, *sizes])
    projected = []
    for index, label in enumerate(("query", "key", "value")):
        part = slice(int(starts[index]), int(starts[index + 1]))
        w = gs.Constant(names(f"{y.name}_{label}_weight"), np.ascontiguousarray(weight[:, part]))
        out = emit.op("MatMul", x, w)
        if bias is not None:
            b = gs.Constant(names(f"{y.name}_{label}_bias"), bias[part].astype(dtype))
            out = emit.op("Add", out, b)
        shape = _ints(emit, [0, 0, heads, sizes[index] // heads], f"{label}_heads")
        projected.append(emit.op("Reshape", out, shape))
    query = emit.op("Transpose", projected[0], perm=[0, 2, 1, 3])
    key = emit.op("Transpose", projected[1], perm=[0, 2, 3, 1])
    value = emit.op("Transpose", projected[2], perm=[0, 2, 1, 3])
    scores = emit.op("Mul", emit.op("MatMul", query, key), emit.scalar(scale))
    if mask is not None:
        scores = emit.op("Add", scores, _additive_mask(emit, mask, rank, x, fill))
    context = emit.op("MatMul", emit.op("Softmax", scores, axis=-1), value)
    merged = emit.op("Transpose", context, perm=[0, 2, 1, 3])
    emit.op("Reshape", merged, _ints(emit, [0, 0, sizes[2]], "merged"), out=y)
    return True


@register_expansion(MICROSOFT, "EmbedLayerNormalization")
def embed_layer_normalization(
    node: gs.Node, graph: gs.Graph, ctx: PassContext, names: NameGen
) -> bool:
    """EmbedLayerNormalization(ids, segment?, E_word, E_pos, E_seg?, γ, β, mask?, pos_ids?; ε):
    Y = LayerNorm(E_word[ids] + E_pos[pos] + E_seg[segment]; γ, β, ε) with pos = pos_ids or
    0 … S−1 per row; output 1 (mask_index, int32 [B]) = Σ_j mask_bj (the number of kept
    tokens; 0 without a mask), output 2 (when read) = the sum before normalization."""
    if ctx.opset < MIN_OPSET or len(node.inputs) < 7:
        return False
    ids, segment = node.inputs[0], _present(node, 1)
    word, position, segment_table = node.inputs[2], node.inputs[3], _present(node, 4)
    gamma, beta = node.inputs[5], _present(node, 6)
    mask, position_ids = _present(node, 7), _present(node, 8)
    if (segment is None) != (segment_table is None):
        return False
    y = node.outputs[0]
    mask_index = (
        node.outputs[1] if len(node.outputs) > 1 and is_read(node.outputs[1], graph) else None
    )
    total_out = (
        node.outputs[2] if len(node.outputs) > 2 and is_read(node.outputs[2], graph) else None
    )
    epsilon = float(node.attrs.get("epsilon", 1e-12))
    node.inputs.clear()
    node.outputs.clear()
    emit = Emitter(graph, names, y, ctx.opset, like=[word, gamma])
    total = emit.op("Gather", word, ids)
    positions = position_ids if position_ids is not None else _positions(emit, ids)
    total = emit.op("Add", total, emit.op("Gather", position, positions))
    if segment is not None:
        total = emit.op("Add", total, emit.op("Gather", segment_table, segment))
    if total_out is not None:
        emit.op("Identity", total, out=total_out)
    layer_norm(emit, total, gamma, beta, epsilon, y)
    if mask_index is not None:
        mask_index.shape = [ids.shape[0] if ids.shape else "batch"]  # rank 1, for Attention
        if mask is None:
            zeros = gs.Constant(names("no_mask"), np.array([0], np.int64))
            rows = emit.op("Unsqueeze", _dim(emit, ids, 0), _ints(emit, [0], "axis0"))
            emit.op("Cast", emit.op("Expand", zeros, rows), to=INT32, out=mask_index)
        else:
            counted = emit.op("ReduceSum", emit.op("Cast", mask, to=INT64),
                              _ints(emit, [1], "sum_axis"), keepdims=0)  # fmt: skip
            emit.op("Cast", counted, to=INT32, out=mask_index)
    return True
