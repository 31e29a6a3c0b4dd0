"""Pass: drop dead nodes and unused initializers, then sort topologically."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass


@register_pass("cleanup")
def cleanup(graph: gs.Graph, ctx: PassContext) -> bool:
    """Remove nodes that feed no graph output and constants no node reads; toposort.

    Contract: outputs unchanged; graph inputs are kept even when unused (the interface stays).
    """
    nodes_before = len(graph.nodes)
    order_before = [id(node) for node in graph.nodes]
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    removed = nodes_before - len(graph.nodes)
    if removed:
        ctx.note(f"cleanup removed {removed} dead node(s)")
    return removed > 0 or order_before != [id(node) for node in graph.nodes]
