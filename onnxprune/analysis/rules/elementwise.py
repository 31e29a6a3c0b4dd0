"""Rules for elementwise ops: unary pass-through and broadcasting n-ary coupling."""

from __future__ import annotations

import numpy as np

from onnxprune.analysis.context import ROLE_PARAM, AnalysisContext
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import FIXED, pad_rank, varying_axes
from onnxprune.analysis.registry import register
from onnxprune.analysis.rules.expanded_operand import follow_expanded_operand
from onnxprune.analysis.rules.shape_edit import constant_shape_source, set_shape_entries
from onnxprune.analysis.shape_values import shape_values

UNARY_OPS = (
    "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu",
    "Gelu", "Erf", "Exp", "Log", "Softplus", "Softsign", "Mish", "Abs", "Neg", "Sqrt",
    "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Cast", "Identity", "Not",
    "IsNaN", "IsInf", "ThresholdedRelu", "Shrink", "CastLike", "Swish",
)  # fmt: skip

BROADCAST_OPS = (
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Where", "Equal", "Less",
    "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Mod", "PRelu", "BitwiseAnd",
    "BitwiseOr", "BitwiseXor",
)  # fmt: skip


@register(*UNARY_OPS)
def unary(node: NodeView, ctx: AnalysisContext) -> None:
    """y = f(x) position by position: output labels are the input labels.

    Extra scalar inputs (CastLike's target) carry no channels. Mask equivalence holds for any f
    because the oracle zeroes the *consumers* of pruned channels, not the channels themselves.
    """
    labels = ctx.labels_of(node.input(0))
    for extra in node.inputs[1:]:
        if ctx.labels_of(extra) is not None:
            ctx.block_inputs(node, "channels enter a secondary input")
            return
    ctx.set_labels(node.outputs[0], labels)


@register("Dropout")
def dropout(node: NodeView, ctx: AnalysisContext) -> None:
    """Inference Dropout is the identity on output 0; a used mask output blocks its channels."""
    labels = ctx.labels_of(node.input(0))
    if len(node.outputs) > 1 and node.outputs[1] and ctx.view.consumers.get(node.outputs[1]):
        ctx.block(labels, f"Dropout '{node.name}' mask output is used")
        return
    ctx.set_labels(node.outputs[0], labels)


@register("Clip")
def clip(node: NodeView, ctx: AnalysisContext) -> None:
    """Clip(x, min, max) with scalar bounds is unary; bounds carrying channels block them."""
    for bound in node.inputs[1:]:
        if bound and ctx.labels_of(bound) is not None:
            ctx.block_inputs(node, "Clip bounds carry channels")
            return
    ctx.set_labels(node.outputs[0], ctx.labels_of(node.input(0)))


@register(*BROADCAST_OPS)
def broadcast(node: NodeView, ctx: AnalysisContext) -> None:
    """Elementwise op with numpy broadcasting over all inputs.

    Output position p reads position p of every input (after broadcasting), so labelled
    inputs are united position by position (residual Add, SE gate Mul). A constant input that
    is full-size along a channel axis is sliced with those labels (bias, layer scale, PRelu
    slope, position embedding). A run-time input that is full-size along a channel axis and
    carries no labels pins the channels (blocked) — unless it is a constant broadcast by
    Expand or Tile (class tokens, query embeddings), whose constant is sliced instead, or a
    run-time tensor broadcast by
    Expand along the channel axis (an attention padding mask: :mod:`.expanded_operand`).
    """
    names = [name for name in node.inputs if name]
    out_name = node.outputs[0]
    labelled = [(name, ctx.labels_of(name)) for name in names if ctx.labels_of(name) is not None]
    if not labelled:
        return
    out_rank = ctx.rank(out_name)
    if out_rank is None:
        ctx.block_inputs(node, "elementwise output of unknown rank")
        return
    padded = [pad_rank(labels, out_rank) for _, labels in labelled]
    try:
        label_shape = np.broadcast_shapes(*(p.shape for p in padded))
    except ValueError:
        ctx.block_inputs(node, "labels of inputs do not broadcast")
        return
    arrays = [np.broadcast_to(p, label_shape) for p in padded]
    combined = arrays[0]
    for other in arrays[1:]:
        ctx.union(combined, other, f"{node.op_type} '{node.name}' couples channels with fixed ones")
        combined = np.maximum(combined, other)
    axes = varying_axes(combined)
    for name in names:
        if ctx.labels_of(name) is not None:
            continue
        unlabelled_operand(node, ctx, name, combined, axes, out_rank)
    ctx.set_labels(out_name, combined)


def unlabelled_operand(
    node: NodeView,
    ctx: AnalysisContext,
    name: str,
    combined: np.ndarray,
    axes: list[int],
    out_rank: int,
) -> None:
    """Handle an input without labels: broadcast (nothing to do), constant (slice) or fixed."""
    shape = ctx.static_shape(name)
    rank = ctx.rank(name)
    if rank is None:
        ctx.block(combined, f"{node.op_type} '{node.name}' has an operand of unknown shape")
        return
    offset = out_rank - rank
    full_axes = [a for a in axes if a >= offset and (shape is None or shape[a - offset] > 1)]
    if not full_axes:
        return
    source = ctx.weight_shape(name) is not None and name
    expand = None
    if not source:
        expand = constant_shape_source(ctx, name)
        source = expand[0] if expand else None
    if not source:
        if not follow_expanded_operand(ctx, name, combined, out_rank):
            ctx.block(
                combined,
                f"{node.op_type} '{node.name}' couples channels with run-time tensor '{name}'",
            )
        return
    source_shape = ctx.weight_shape(source)
    source_offset = out_rank - len(source_shape)
    for axis in full_axes:
        source_axis = axis - source_offset
        if source_axis < 0 or source_shape[source_axis] == 1:
            continue
        if len(axes) != 1:
            ctx.block(combined, f"{node.op_type} '{node.name}' constant spans several channel axes")
            return
        user = expand[1] if expand is not None else node
        ctx.request_slice(source, source_axis, combined.reshape(-1), user, ROLE_PARAM)
    if expand is not None and expand[1].op_type == "Tile":
        _check_tile_repeats(ctx, expand[1], combined, full_axes, out_rank)
    elif expand is not None:
        _fix_expand_shape(ctx, expand[1], combined, full_axes, out_rank)


def _check_tile_repeats(ctx, tile_node, combined, full_axes, out_rank) -> None:
    """A Tile of a sliced constant follows it when it repeats 1 time along the channel axes
    (the constant then holds the full channel axis; other entries may be run-time, the batch
    of ``weight.unsqueeze(0).repeat(B, 1, 1)``); other repeats there would need the channel
    count in the repeats: blocked."""
    repeats = shape_values(ctx, tile_node.input(1))
    offset = out_rank - (0 if repeats is None else len(repeats))
    if repeats is None or any(axis < offset or repeats[axis - offset] != 1 for axis in full_axes):
        ctx.block(
            combined, f"Tile '{tile_node.name}' repeats along a channel axis are not proven 1"
        )


def _fix_expand_shape(ctx, expand_node, combined, full_axes, out_rank) -> None:
    """An Expand target that names the channel count must shrink with it."""
    target_rank = ctx.rank(expand_node.outputs[0]) or out_rank
    offset = out_rank - target_rank
    positions = [axis - offset for axis in full_axes if axis - offset >= 0]
    vector = combined.reshape(-1)
    if set_shape_entries(ctx, expand_node, 1, positions, vector, keep_minus_one=True):
        return
    target = shape_values(ctx, expand_node.input(1))
    if target is not None and all(0 <= p < len(target) and target[p] == 1 for p in positions):
        return  # entries known to be 1: the output follows the sliced constant
    ctx.block(combined, f"Expand '{expand_node.name}' target shape is computed at run time")


__all__ = ["BROADCAST_OPS", "FIXED", "UNARY_OPS"]


@register("Expand")
def expand(node: NodeView, ctx: AnalysisContext) -> None:
    """Expand(x, shape): x broadcast to ``shape`` (numpy rules, aligned from the right).

    An axis x carries channels on keeps its size — and its labels at the aligned output axis —
    when the target entry there is proven to be 1 (:func:`shape_values`; exporters write 1, or
    ``Where(shape == -1, 1, shape)`` for -1) or the target does not reach that axis; nothing
    is sliced. A target entry that is unknown or states the size itself would have to change
    with the channel count: blocked. The shape operand never carries channels.
    """
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    out_rank = ctx.rank(node.outputs[0])
    target = shape_values(ctx, node.input(1))
    if out_rank is None or target is None:
        ctx.block(labels, f"Expand '{node.name}' has an unknown target shape")
        return
    padded = pad_rank(labels, out_rank)
    offset = out_rank - len(target)
    for axis in varying_axes(padded):
        if axis >= offset and target[axis - offset] != 1:
            ctx.block(
                labels, f"Expand '{node.name}' target on a channel axis is not proven to be 1"
            )
            return
    ctx.set_labels(node.outputs[0], padded)


@register("Tile")
def tile(node: NodeView, ctx: AnalysisContext) -> None:
    """Tile(x, repeats): y[..., i, ...] = x[..., i mod n, ...] on every axis. Labels repeat
    like the data (``np.tile``); a channel axis repeated r times holds each channel r times,
    which stay or go together, and the repeats never name the channel count (no fixup).
    Repeats along a channel axis computed at run time block the channels (other entries may
    be: a batch read through ``Shape``)."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    repeats = shape_values(ctx, node.input(1))
    if repeats is None or len(repeats) != labels.ndim:
        ctx.block(labels, f"Tile '{node.name}' repeats unknown")
        return
    reps = [r if labels.shape[axis] > 1 else 1 for axis, r in enumerate(repeats)]
    if any(r is None for r in reps):
        ctx.block(labels, f"Tile '{node.name}' repeats along a channel axis computed at run time")
        return
    ctx.set_labels(node.outputs[0], np.tile(labels, reps))
