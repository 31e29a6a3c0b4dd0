"""Rules for convolutions: the main channel sources and consumers."""

from __future__ import annotations

import numpy as np

from onnxprune.analysis.context import ROLE_IN, ROLE_OUT, ROLE_PARAM, AnalysisContext
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import axis_labels, vector_along
from onnxprune.analysis.registry import register


def _output_rank(node: NodeView, ctx: AnalysisContext, weight: tuple[int, ...]) -> int:
    return ctx.rank(node.outputs[0]) or len(weight)


@register("Conv")
def conv(node: NodeView, ctx: AnalysisContext) -> None:
    """Conv: X[N, Cin, ...] * W[Cout, Cin/g, k...] (+ b[Cout]).

    * group 1: input channel c is read by column W[:, c] (consumer); every output channel is a
      new atom written by row W[o] and bias b[o] (source).
    * depthwise (Cin/g = 1, multiplier m = Cout/g): output channel c·m+r is computed from input
      channel c alone, so it carries the input's label; rows W[c·m+r] and b follow it and the
      ``group`` attribute becomes the kept input count.
    * grouped (1 < Cin/g < Cin): every group must keep the same positions, so input position j
      of every group is one unit (the groups' labels are united) and output position k of every
      group is one new atom; W columns and rows are sliced by in-group position.
    """
    weight_name, bias_name = node.input(1), node.input(2)
    weight = ctx.weight_shape(weight_name)
    in_labels = ctx.labels_of(node.input(0))
    if weight is None:
        ctx.block(in_labels, f"Conv '{node.name}' has a weight computed at run time")
        return
    group = int(node.attrs.get("group", 1))
    cout, cin_per_group = int(weight[0]), int(weight[1])
    cin = cin_per_group * group
    rank = _output_rank(node, ctx, weight)
    in_vector = None
    if in_labels is not None:
        in_vector = vector_along(in_labels, 1, cin)
        if in_vector is None:
            ctx.block(in_labels, f"Conv '{node.name}' input labels vary outside the channel axis")
    if group == 1:
        if in_vector is not None:
            ctx.request_slice(weight_name, 1, in_vector, node, ROLE_IN)
        out_vector = ctx.new_atoms(node, cout)
    elif cin_per_group == 1:
        if in_vector is None:
            return  # depthwise over fixed channels: its outputs cannot shrink either
        out_vector = np.repeat(in_vector, cout // group)

        def set_group(editor, keep, vector=in_vector, name=node.name) -> None:
            editor.set_attr(name, "group", int(keep(vector).sum()))

        ctx.add_fixup(node, set_group)
    else:
        if in_vector is not None:
            per_group = in_vector.reshape(group, cin_per_group)
            for g in range(1, group):
                ctx.union(
                    per_group[0],
                    per_group[g],
                    f"grouped Conv '{node.name}' mixes prunable and fixed channels in its groups",
                )
            ctx.request_slice(weight_name, 1, per_group[0], node, ROLE_IN)
        out_vector = np.tile(ctx.new_atoms(node, cout // group), group)
    ctx.request_slice(weight_name, 0, out_vector, node, ROLE_OUT)
    if bias_name:
        ctx.request_slice(bias_name, 0, out_vector, node, ROLE_PARAM)
    ctx.set_labels(node.outputs[0], axis_labels(rank, 1, out_vector))


@register("ConvTranspose")
def conv_transpose(node: NodeView, ctx: AnalysisContext) -> None:
    """ConvTranspose: X[N, Cin, ...] with W[Cin, Cout/g, k...] (+ b[Cout]).

    group 1 only: input channel c is read by W[c] (consumer, axis 0); each output channel is a
    new atom written by W[:, o] and b[o]. Grouped transposed convolutions block their channels.
    """
    weight_name, bias_name = node.input(1), node.input(2)
    weight = ctx.weight_shape(weight_name)
    in_labels = ctx.labels_of(node.input(0))
    group = int(node.attrs.get("group", 1))
    if weight is None or group != 1:
        why = "a weight computed at run time" if weight is None else f"group={group}"
        ctx.block(in_labels, f"ConvTranspose '{node.name}' has {why}")
        return
    cin, cout = int(weight[0]), int(weight[1])
    if in_labels is not None:
        in_vector = vector_along(in_labels, 1, cin)
        if in_vector is None:
            ctx.block(in_labels, f"ConvTranspose '{node.name}' input labels vary outside channels")
        else:
            ctx.request_slice(weight_name, 0, in_vector, node, ROLE_IN)
    out_vector = ctx.new_atoms(node, cout)
    ctx.request_slice(weight_name, 1, out_vector, node, ROLE_OUT)
    if bias_name:
        ctx.request_slice(bias_name, 0, out_vector, node, ROLE_PARAM)
    rank = _output_rank(node, ctx, weight)
    ctx.set_labels(node.outputs[0], axis_labels(rank, 1, out_vector))
