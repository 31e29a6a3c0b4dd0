"""Pass: drop Identity nodes (graph output names are kept)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from onnxprune.passes._graph import bypass
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass


@register_pass("eliminate_identity")
def eliminate_identity(graph: gs.Graph, ctx: PassContext) -> bool:
    """Identity(x) -> x, except where removal would rename or disconnect a graph output.

    Contract: y = x exactly; consumers of y read x (or x's producer writes y directly when y is
    a graph output). An Identity between a graph input/initializer and a graph output stays.
    """
    changed = False
    for node in list(graph.nodes):
        if node.op != "Identity" or len(node.inputs) != 1 or len(node.outputs) != 1:
            continue
        changed |= bypass(node, node.inputs[0], node.outputs[0], graph)
    return changed
