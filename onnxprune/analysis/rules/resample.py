"""Rules for spatial resampling and padding: Resize, Upsample, Pad."""

from __future__ import annotations

import numpy as np

from onnxprune.analysis.context import AnalysisContext
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import axis_labels, varying_axes, vector_along
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
    """Pad: padding on axes without channels passes the labels.

    Zero padding of the channel axis (mode ``constant``, value 0, pads ≥ 0) widens a tensor
    with channels that are 0 everywhere: TensorFlow/TFLite models grow a residual stream this
    way (BlazeFace, MediaPipe: y = conv(x) + pad(x, channels C → C')), as the "option A"
    shortcut of CIFAR ResNets does. Such a Pad is a Concat of x with zero blocks before and
    after it, so the padded positions become *new atoms* — channels with no producer weights
    and nothing to compute — joined to whatever they meet downstream (the conv output channels
    they are added to); a fixup writes the kept counts of the two blocks into the pads. Masking
    a zero channel changes nothing, so mask equivalence holds as for any other channel. Other
    padding of a channel axis (edge/reflect, a non-zero value, negative pads that crop,
    several channel axes) blocks."""
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
    padded = [
        (position, axis)
        for position, axis in enumerate(axes)
        if axis in varying_axes(labels) and (pads[position] or pads[position + count])
    ]
    if not padded:
        ctx.set_labels(node.outputs[0], labels)
        return
    reason = _channel_pad_blocker(node, ctx, pads, padded, count)
    if reason is not None:
        ctx.block(labels, f"Pad '{node.name}' {reason}")
        return
    ((position, axis),) = padded
    shape = ctx.static_shape(node.input(0))
    vector = None if shape is None else vector_along(labels, axis, shape[axis])
    if vector is None:
        ctx.block(labels, f"Pad '{node.name}' pads a channel axis of a tensor of unknown shape")
        return
    before = ctx.new_atoms(node, pads[position] + pads[position + count])
    before, after = before[: pads[position]], before[pads[position] :]
    ctx.set_labels(
        node.outputs[0], axis_labels(rank, axis, np.concatenate([before, vector, after]))
    )
    old_pads = list(pads)
    attribute = ctx.view.opset < 11

    def set_pads(editor, keep, name=node.name, at=position, end=position + count) -> None:
        new_pads = list(old_pads)
        new_pads[at] = int(keep(before).sum())
        new_pads[end] = int(keep(after).sum())
        if attribute:
            editor.set_attr(name, "pads", new_pads)
        else:
            editor.replace_constant_input(name, 1, np.array(new_pads, dtype=np.int64))

    ctx.add_fixup(node, set_pads)


def _channel_pad_blocker(
    node: NodeView, ctx: AnalysisContext, pads: list[int], padded: list, count: int
) -> str | None:
    """Why padding the channel axis cannot become zero atoms (None: it can)."""
    mode = node.attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode != "constant":
        return f"pads a channel axis in mode '{mode}'"
    if len(padded) > 1:
        return "pads several channel axes"
    position, _ = padded[0]
    if pads[position] < 0 or pads[position + count] < 0:
        return "crops a channel axis (negative pads)"
    if ctx.view.opset < 11:
        value = float(node.attrs.get("value", 0.0))
    elif node.input(2):
        constant = ctx.constant(node.input(2))
        if constant is None:
            return "pads a channel axis with a value computed at run time"
        value = float(np.asarray(constant).reshape(-1)[0]) if constant.size else 0.0
    else:
        value = 0.0
    if value != 0.0:
        return f"pads a channel axis with the value {value:g}, not 0"
    return None
