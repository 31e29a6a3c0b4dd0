"""Rules for recurrent layers (RNN, GRU, LSTM): consumers of their input features."""

from __future__ import annotations

import numpy as np

from onnxprune.analysis.context import ROLE_IN, AnalysisContext
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import varying_axes
from onnxprune.analysis.registry import register
from onnxprune.graph.recurrent import RECURRENT_OPS

#: Input indices after W: R, B, sequence_lens, initial_h (and LSTM's initial_c, P).
_OTHER_INPUTS = range(2, 8)


@register(*RECURRENT_OPS)
def recurrent(node: NodeView, ctx: AnalysisContext) -> None:
    """RNN / GRU / LSTM read input feature i of X (its last axis: ``[S, B, I]`` or, with
    ``layout`` 1, ``[B, S, I]``) only through column i of W ``[D, G·H, I]``: every gate of every
    step and direction adds ``W[d, :, i] · x_i``. A consumer slice along W's axis 2, and
    mask-equivalent: a zeroed feature adds nothing, a removed one is gone with its column.

    The hidden size is not pruned (it would slice R along both axes, the biases, the initial
    states and every output): the outputs carry no channels, so a tensor that meets them with
    channels is pinned by that op's rule. Channels reaching R, B, sequence_lens, the initial
    states or the peepholes, input features that vary along another axis, and a W computed at
    run time are blocked.
    """
    for index in _OTHER_INPUTS:
        ctx.block(
            ctx.labels_of(node.input(index)),
            f"{node.op_type} '{node.name}' reads channels at input {index} (not its features)",
        )
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    weight_name = node.input(1)
    weight = ctx.weight_shape(weight_name)
    axes = varying_axes(labels)
    if not axes:
        return
    if labels.ndim != 3 or axes != [2]:
        ctx.block(labels, f"{node.op_type} '{node.name}' input channels are not its features")
        return
    if weight is None or len(weight) != 3:
        ctx.block(labels, f"{node.op_type} '{node.name}' has a run-time W")
        return
    vector = np.broadcast_to(labels.reshape(-1), (int(weight[2]),))
    ctx.request_slice(weight_name, 2, vector, node, ROLE_IN)
