"""Rules for pools, reductions, softmax and index-producing ops."""

from __future__ import annotations

from onnxprune.analysis.context import AnalysisContext
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import varies_only_along, varying_axes
from onnxprune.analysis.registry import register
from onnxprune.analysis.rules._common import axes_of, normalize_axis

POOL_OPS = ("MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool",
            "GlobalLpPool", "MaxRoiPool", "RoiAlign", "GridSample")  # fmt: skip
REDUCE_OPS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
              "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")  # fmt: skip


@register(*POOL_OPS)
def pool(node: NodeView, ctx: AnalysisContext) -> None:
    """Pools act on each channel separately (spatial windows): labels on axis 1 pass through.
    So do RoiAlign (per-channel crops of the boxes, [rois, C, h, w]) and GridSample (every
    channel sampled at the same grid points). A used MaxPool Indices output (flat indices
    include the channel) blocks them, and so do channels in the boxes, batch indices or grid."""
    labels = ctx.labels_of(node.input(0))
    for extra in node.inputs[1:]:
        if extra and (ctx.labels_of(extra) is not None or extra in ctx.taints):
            ctx.block_inputs(node, f"{node.op_type} reads channels in a secondary input")
            return
    if labels is None:
        return
    indices_used = (
        len(node.outputs) > 1 and node.outputs[1] and ctx.view.consumers.get(node.outputs[1])
    )
    if not varies_only_along(labels, 1) or indices_used:
        ctx.block(labels, f"{node.op_type} '{node.name}' mixes channels")
        return
    ctx.set_labels(node.outputs[0], labels)


def _centering_sub(ctx: AnalysisContext, sub: NodeView | None) -> bool:
    """``sub`` is Sub(x, ReduceMean(x)): the centering step of a decomposed normalization."""
    if sub is None or sub.op_type != "Sub":
        return False
    mean = ctx.view.producer.get(sub.input(1))
    return mean is not None and mean.op_type == "ReduceMean" and mean.input(0) == sub.input(0)


def _is_norm_statistic(node: NodeView, ctx: AnalysisContext, keepdims: bool) -> bool:
    """ReduceMean (keepdims) computing a mean or a variance of a decomposed LayerNorm/GroupNorm.

    Mean: ReduceMean(x) consumed only by Sub(x, mean). Variance: ReduceMean(d·d or d^2) with
    d = Sub(x, ReduceMean(x)). Such statistics change when channels go (like LayerNorm), so
    the channels are flagged stats-coupled instead of blocked; any other reduction over a
    channel axis blocks.
    """
    if node.op_type != "ReduceMean" or not keepdims:
        return False
    consumers = ctx.view.consumers.get(node.outputs[0], [])
    if consumers and all(
        c.op_type == "Sub" and c.input(1) == node.outputs[0] and c.input(0) == node.input(0)
        for c in consumers
    ):
        return True
    square = ctx.view.producer.get(node.input(0))
    if square is None:
        return False
    if square.op_type == "Pow":
        exponent = ctx.constant(square.input(1))
        return (
            exponent is not None
            and exponent.size == 1
            and float(exponent.reshape(-1)[0]) == 2.0
            and _centering_sub(ctx, ctx.view.producer.get(square.input(0)))
        )
    if square.op_type == "Mul" and square.input(0) == square.input(1):
        return _centering_sub(ctx, ctx.view.producer.get(square.input(0)))
    return False


def _reduce_over(
    node: NodeView, ctx: AnalysisContext, axes: list[int] | None, keepdims: bool
) -> None:
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    rank = labels.ndim
    reduced = list(range(rank)) if axes is None else sorted(normalize_axis(a, rank) for a in axes)
    if set(reduced) & set(varying_axes(labels)):
        if _is_norm_statistic(node, ctx, keepdims):
            ctx.mark_stats_coupled(labels, f"decomposed normalization '{node.name}' statistics")
            return
        ctx.block(labels, f"{node.op_type} '{node.name}' reduces over a channel axis")
        return
    out = (
        labels
        if keepdims
        else labels.reshape([s for axis, s in enumerate(labels.shape) if axis not in reduced])
    )
    for output in node.outputs:
        ctx.set_labels(output, out)


@register(*REDUCE_OPS)
def reduce(node: NodeView, ctx: AnalysisContext) -> None:
    """Reduce over axes not carrying channels: labels pass (axes dropped unless keepdims)."""
    axes = axes_of(node, ctx, 1)
    if axes == "dynamic":
        ctx.block_inputs(node, "reduction axes computed at run time")
        return
    if not axes and int(node.attrs.get("noop_with_empty_axes", 0)):
        ctx.set_labels(node.outputs[0], ctx.labels_of(node.input(0)))
        return
    _reduce_over(node, ctx, axes or None, bool(node.attrs.get("keepdims", 1)))


@register("ArgMax", "ArgMin")
def arg_reduce(node: NodeView, ctx: AnalysisContext) -> None:
    """ArgMax/ArgMin over a non-channel axis: labels pass; over a channel axis: blocked."""
    _reduce_over(node, ctx, [int(node.attrs.get("axis", 0))], bool(node.attrs.get("keepdims", 1)))


@register("TopK")
def top_k(node: NodeView, ctx: AnalysisContext) -> None:
    """TopK over a non-channel axis: both outputs keep the labels; over a channel axis: blocked."""
    _reduce_over(node, ctx, [int(node.attrs.get("axis", -1))], True)


@register("Softmax", "LogSoftmax", "Hardmax")
def softmax(node: NodeView, ctx: AnalysisContext) -> None:
    """Softmax normalizes over ``axis`` (opset >= 13) or over all axes from ``axis`` on (older
    opsets, default 1): channels there would change every output, so they are blocked."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    rank = labels.ndim
    if ctx.view.opset >= 13:
        covered = [normalize_axis(int(node.attrs.get("axis", -1)), rank)]
    else:
        covered = list(range(normalize_axis(int(node.attrs.get("axis", 1)), rank), rank))
    if set(covered) & set(varying_axes(labels)):
        ctx.block(labels, f"{node.op_type} '{node.name}' normalizes over a channel axis")
        return
    ctx.set_labels(node.outputs[0], labels)


__all__ = ["POOL_OPS", "REDUCE_OPS"]
