"""Rules for DepthToSpace and SpaceToDepth: channels move between the channel axis and blocks of
pixels (pixel shuffle in super-resolution heads, space-to-depth stems)."""

from __future__ import annotations

import numpy as np

from onnxprune.analysis.context import AnalysisContext
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import axis_labels, vector_along
from onnxprune.analysis.registry import register


def _channel_vector(node: NodeView, ctx: AnalysisContext) -> np.ndarray | None:
    """Input labels as a vector along axis 1 of a 4-D tensor, or None (blocked) / no labels."""
    labels = ctx.labels_of(node.input(0))
    shape = ctx.static_shape(node.input(0))
    if labels is None:
        return None
    vector = None if shape is None or len(shape) != 4 else vector_along(labels, 1, shape[1])
    if vector is None:
        ctx.block(labels, f"{node.op_type} '{node.name}' needs channels on axis 1 of a 4-D input")
    return vector


@register("DepthToSpace")
def depth_to_space(node: NodeView, ctx: AnalysisContext) -> None:
    """DepthToSpace(blocksize b): input channel k of C·b² becomes pixel (i, j) of output channel
    c, with k = (i·b + j)·C + c (mode DCR, the default) or k = c·b² + i·b + j (CRD, PyTorch's
    pixel shuffle). Output channel c can only go with all b² of its input channels: they are
    united, and the output carries one of them per channel. Slicing kept input channels in
    order keeps both index maps valid with C' = kept output channels."""
    vector = _channel_vector(node, ctx)
    if vector is None:
        return
    block = int(node.attrs.get("blocksize", 1))
    channels = len(vector) // (block * block)
    if channels * block * block != len(vector):
        ctx.block(vector, f"DepthToSpace '{node.name}' channel count not divisible by b²")
        return
    mode = node.attrs.get("mode", b"DCR")
    if (mode.decode() if isinstance(mode, bytes) else str(mode)) == "CRD":
        members = vector.reshape(channels, block * block)
    else:
        members = vector.reshape(block * block, channels).T
    for column in range(1, block * block):
        ctx.union(members[:, 0], members[:, column], f"DepthToSpace '{node.name}' block")
    out = np.where((members >= 0).all(axis=1), members[:, 0], -1)
    ctx.set_labels(node.outputs[0], axis_labels(4, 1, out))


@register("SpaceToDepth")
def space_to_depth(node: NodeView, ctx: AnalysisContext) -> None:
    """SpaceToDepth(blocksize b): pixel (i, j) of input channel c becomes output channel
    (i·b + j)·C + c; each channel's atom appears in b² output channels, which a kept or removed
    input channel keeps or removes together (the map stays valid with C' kept channels)."""
    vector = _channel_vector(node, ctx)
    if vector is None:
        return
    block = int(node.attrs.get("blocksize", 1))
    ctx.set_labels(node.outputs[0], axis_labels(4, 1, np.tile(vector, block * block)))
