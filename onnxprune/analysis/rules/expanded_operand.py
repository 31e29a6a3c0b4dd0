"""A run-time operand broadcast over a channel axis by Expand: the padding mask of
``nn.MultiheadAttention`` ([B, T] -> [B, 1, 1, T] -> Expand to [B, H, 1, T] -> Reshape
[B·H, 1, T] -> Reshape [B, H, 1, T], added to the [B, H, T, T] scores).

The operand holds the same values for every channel of that axis (Expand copies a size-1
axis), so it stays exact when the axis shrinks — provided the Expand target and the Reshapes
after it shrink too. :func:`follow_expanded_operand` proves the pattern and gives the Expand
output the channels' labels along the copied axis; the chain's own rules (Reshape, Squeeze,
Unsqueeze, Transpose, Identity) are then run again so they carry the labels and register their
shape fixups, and the operand must end with exactly the labels it meets.
"""

from __future__ import annotations

import numpy as np

from onnxprune.analysis.context import AnalysisContext
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import pad_rank, reshape_labels, varying_axes
from onnxprune.analysis.registry import lookup
from onnxprune.analysis.rules._common import axes_of
from onnxprune.analysis.rules.shape_edit import set_shape_entries

_CHAIN_OPS = ("Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity")
_MAX_CHAIN = 6


def follow_expanded_operand(
    ctx: AnalysisContext, name: str, combined: np.ndarray, out_rank: int
) -> bool:
    """True when run-time operand ``name`` of an elementwise op (output labels ``combined``)
    is an Expand of a tensor without channels, of size 1 along the channel axis, reached
    through a private chain of layout ops; its labels are then set to match ``combined``."""
    rank = ctx.rank(name)
    if rank is None or len(varying_axes(combined)) != 1:
        return False
    offset = out_rank - rank
    full = pad_rank(combined, out_rank)
    if any(size > 1 for size in full.shape[:offset]):
        return False
    wanted = full.reshape(full.shape[offset:])
    chain = _private_chain(ctx, name)
    if chain is None:
        return False
    expand, nodes = chain
    labels = wanted
    for node in reversed(nodes):
        labels = _labels_before(ctx, node, labels)
        if labels is None:
            return False
    if not _expand_can_follow(ctx, expand, labels):
        return False
    ctx.set_labels(expand.outputs[0], labels)
    for node in nodes:
        rule = lookup(node.op_type, node.domain, ctx.view.opset)
        if rule is None:
            return False
        rule(node, ctx)
    got = ctx.labels_of(name)
    return got is not None and got.shape == wanted.shape and np.array_equal(got, wanted)


def _private_chain(ctx: AnalysisContext, name: str) -> tuple[NodeView, list[NodeView]] | None:
    """(Expand, layout nodes after it in order) when each tensor on the way has one reader."""
    nodes: list[NodeView] = []
    tensor = name
    for _ in range(_MAX_CHAIN + 1):
        producer = ctx.view.producer.get(tensor)
        if producer is None or len(ctx.view.consumers.get(tensor, [])) != 1:
            return None
        if tensor in ctx.taints or ctx.labels_of(tensor) is not None:
            return None
        if producer.op_type == "Expand":
            source = producer.input(0)
            if ctx.labels_of(source) is not None or source in ctx.taints:
                return None
            return producer, nodes[::-1]
        if producer.op_type not in _CHAIN_OPS or producer.domain not in ("", "ai.onnx"):
            return None
        nodes.append(producer)
        tensor = producer.input(0)
    return None


def _labels_before(ctx: AnalysisContext, node: NodeView, after: np.ndarray) -> np.ndarray | None:
    """The input labels that ``node`` maps to ``after`` (its output labels), or None."""
    in_shape, out_shape = ctx.static_shape(node.input(0)), ctx.static_shape(node.outputs[0])
    if in_shape is None or out_shape is None:
        return None
    if node.op_type == "Identity":
        return after
    if node.op_type == "Transpose":
        perm = node.attrs.get("perm") or list(reversed(range(len(in_shape))))
        return np.transpose(after, np.argsort([int(p) for p in perm]))
    if node.op_type in ("Squeeze", "Unsqueeze"):
        axes = axes_of(node, ctx, 1)
        if axes == "dynamic":
            return None
    expanded = np.broadcast_to(after, out_shape)
    before = reshape_labels(np.ascontiguousarray(expanded), out_shape, in_shape)
    return None if before is None else before


def _expand_can_follow(ctx: AnalysisContext, expand: NodeView, labels: np.ndarray) -> bool:
    """The Expand copies a size-1 axis of its input at every channel axis of ``labels``, and
    its target entry there can be set to the kept count."""
    source_shape = ctx.static_shape(expand.input(0))
    out_rank = ctx.rank(expand.outputs[0])
    if source_shape is None or out_rank is None or labels.ndim != out_rank:
        return False
    offset = out_rank - len(source_shape)
    axes = varying_axes(labels)
    for axis in axes:
        if axis >= offset and source_shape[axis - offset] != 1:
            return False
    target = ctx.static_shape(expand.input(1))
    if target is None or len(target) != 1:
        return False
    target_rank = target[0]
    if any(axis < out_rank - target_rank for axis in axes):
        return False
    positions = [axis - (out_rank - target_rank) for axis in axes]
    vector = labels.reshape(-1)
    return set_shape_entries(ctx, expand, 1, positions, vector, keep_minus_one=False)
