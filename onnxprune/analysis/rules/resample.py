"""Rules for spatial resampling and padding: Resize, Upsample, Pad."""

from __future__ import annotations

from onnxprune.analysis.context import AnalysisContext
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import varying_axes
from onnxprune.analysis.registry import register
from onnxprune.analysis.rules._common import constant_ints
from onnxprune.analysis.rules.shape_edit import set_shape_entries


@register("Resize", "Upsample")
def resize(node: NodeView, ctx: AnalysisContext) -> None:
    """Resize/Upsample with scale 1 on channel axes pass labels; a constant ``sizes`` input has
    its channel entries set to the kept count; anything else blocks."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    axes = varying_axes(labels)
    if "axes" in node.attrs:
        ctx.block(labels, f"{node.op_type} '{node.name}' uses the axes attribute")
        return
    if node.op_type == "Upsample" or ctx.view.opset < 11:
        scales_index, sizes_index = 1, None
    else:
        scales_index, sizes_index = 2, 3
    scales = node.attrs.get("scales")
    if scales is None and node.input(scales_index):
        value = ctx.constant(node.input(scales_index))
        scales = None if value is None else [float(v) for v in value.reshape(-1)]
        if value is not None and value.size == 0:
            scales = None
    if scales:
        if any(scales[a] != 1.0 for a in axes):
            ctx.block(labels, f"{node.op_type} '{node.name}' rescales a channel axis")
            return
    elif sizes_index is not None and node.input(sizes_index):
        sizes = constant_ints(ctx, node.input(sizes_index))
        vector = labels.reshape(-1) if len(axes) == 1 else None
        if (
            sizes is None
            or vector is None
            or not set_shape_entries(ctx, node, sizes_index, axes, vector, keep_minus_one=False)
        ):
            ctx.block(labels, f"{node.op_type} '{node.name}' sizes computed at run time")
            return
    else:
        ctx.block(labels, f"{node.op_type} '{node.name}' scales computed at run time")
        return
    ctx.set_labels(node.outputs[0], labels)


@register("Pad")
def pad(node: NodeView, ctx: AnalysisContext) -> None:
    """Pad with zero padding on channel axes passes labels; padding a channel axis blocks."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    rank = labels.ndim
    pads = node.attrs.get("pads") if ctx.view.opset < 11 else constant_ints(ctx, node.input(1))
    axes = list(range(rank))
    if ctx.view.opset >= 18 and node.input(3):
        given = constant_ints(ctx, node.input(3))
        axes = None if given is None else [a + rank if a < 0 else a for a in given]
    if pads is None or axes is None:
        ctx.block(labels, f"Pad '{node.name}' pads computed at run time")
        return
    count = len(axes)
    for position, axis in enumerate(axes):
        if axis in varying_axes(labels) and (pads[position] or pads[position + count]):
            ctx.block(labels, f"Pad '{node.name}' pads a channel axis")
            return
    ctx.set_labels(node.outputs[0], labels)
