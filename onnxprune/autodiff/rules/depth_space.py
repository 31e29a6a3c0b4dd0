"""DepthToSpace and SpaceToDepth: permutations of values, so the gradient is the inverse
permutation of g.

* SpaceToDepth(b): ∂X = DepthToSpace(g, b, DCR) (SpaceToDepth writes pixel (i, j) of channel
  c to channel (i·b + j)·C + c, which DCR reads back).
* DepthToSpace(b, DCR): ∂X = SpaceToDepth(g, b).
* DepthToSpace(b, CRD): ∂X = Gather(SpaceToDepth(g, b), π, axis 1) with π[c·b² + p] = p·C + c
  (CRD reads input channel c·b² + i·b + j; SpaceToDepth writes (i·b + j)·C + c). Needs the
  static channel count C of the output.
"""

from __future__ import annotations

import numpy as np

from onnxprune.autodiff.builder import GradientBuilder, string_attr
from onnxprune.autodiff.registry import register_vjp


@register_vjp("SpaceToDepth", since=1)
def space_to_depth(node, b: GradientBuilder, grads, needed):
    """∂X = DepthToSpace(g, b, mode DCR)."""
    block = int(node.attrs["blocksize"])
    return [b.node("DepthToSpace", [grads[0]], blocksize=block)]


@register_vjp("DepthToSpace", since=1)
def depth_to_space(node, b: GradientBuilder, grads, needed):
    """∂X = SpaceToDepth(g, b), then (CRD) the channels put back in c·b² + i·b + j order."""
    block = int(node.attrs["blocksize"])
    back = b.node("SpaceToDepth", [grads[0]], blocksize=block)
    if string_attr(node, "mode", "DCR") != "CRD":
        return [back]
    (channels,) = b.static_dims(node.outputs[0], [1], f"DepthToSpace '{node.name}'")
    cells = block * block
    order = np.array([p * channels + c for c in range(channels) for p in range(cells)])
    return [b.node("Gather", [back, b.const(order.astype(np.int64), "crd_order")], axis=1)]
