"""Pass: decomposed hard-sigmoid (affine -> clamp -> affine) becomes one HardSigmoid node.

s·clamp(a·x + b, lo, hi) + t with s > 0, s·lo + t = 0 and s·hi + t = 1 equals
clamp(s·a·x + s·b + t, 0, 1) = HardSigmoid(x; alpha = s·a, beta = s·b + t). Examples:
Clip(x+3, 0, 6)/6 (alpha 1/6, beta 1/2) and Clip(x·0.2 + 0.5, 0, 1) (Paddle's slope/offset).
"""

from __future__ import annotations

import math

import onnx_graphsurgeon as gs

from onnxprune.passes._affine import Affine, Clamp, affine_after, affine_before, clamp_before, close
from onnxprune.passes._graph import NameGen, detach, output_names, producer
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass

_CLAMP_OPS = ("Clip", "Relu", "Min", "Max")


def _match(clamp: Clamp, post: Affine, pre: Affine) -> tuple[float, float] | None:
    """(alpha, beta) when post(clamp(pre(x))) is a hard sigmoid."""
    if not (math.isfinite(clamp.lo) and math.isfinite(clamp.hi)) or clamp.hi <= clamp.lo:
        return None
    if not pre.nodes and not post.nodes:
        return None  # a bare Clip(x, 0, 1) stays as it is
    s, t = post.scale, post.offset
    if s <= 0 or not close(s * clamp.lo + t, 0.0) or not close(s * clamp.hi + t, 1.0):
        return None
    return s * pre.scale, s * pre.offset + t


@register_pass("fuse_hardsigmoid")
def fuse_hardsigmoid(graph: gs.Graph, ctx: PassContext) -> bool:
    """Replace s·clamp(a·x+b, lo, hi)+t (mapping [lo, hi] onto [0, 1]) by HardSigmoid(x).

    Contract: alpha = s·a, beta = s·b + t (module docstring); the result keeps its name.
    """
    graph_outputs = output_names(graph)
    names = NameGen(graph)
    fused = 0
    for node in list(graph.nodes):
        if node.op not in _CLAMP_OPS or len(node.outputs) != 1 or not node.inputs:
            continue
        consumer_ops = {c.op for c in node.outputs[0].outputs}
        if consumer_ops & set(_CLAMP_OPS) and node.outputs[0].name not in graph_outputs:
            continue  # the outermost clamp of a chain does the matching
        clamp = clamp_before(node.outputs[0], graph_outputs)
        if clamp is None:
            continue
        pre = affine_before(clamp.source, graph_outputs)
        for post in reversed(affine_after(clamp.output, graph_outputs)):
            params = _match(clamp, post, pre)
            if params is None:
                continue
            end = post.output
            last = producer(end)
            detach(last)
            graph.nodes.append(
                gs.Node(
                    "HardSigmoid",
                    names(f"{end.name}_hardsigmoid"),
                    attrs={"alpha": float(params[0]), "beta": float(params[1])},
                    inputs=[pre.source],
                    outputs=[end],
                )
            )
            fused += 1
            break
    if fused:
        ctx.note(f"fused {fused} decomposed hard-sigmoid pattern(s) into HardSigmoid")
        graph.cleanup(remove_unused_graph_inputs=False).toposort()
    return fused > 0
