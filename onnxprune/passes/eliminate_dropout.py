"""Pass: drop inference-mode Dropout nodes whose mask output is unused."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from onnxprune.passes._graph import bypass, constant_array, output_names
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass


def _is_inference_mode(node: gs.Node) -> bool:
    """True when the Dropout is an identity: no training_mode input, or a constant False one."""
    if node.attrs.get("is_test", 1) == 0 and "is_test" in node.attrs:
        return False
    if len(node.inputs) < 3 or node.inputs[2].is_empty():
        return True
    training = constant_array(node.inputs[2])
    return training is not None and not bool(training.reshape(-1)[0])


def _mask_unused(node: gs.Node, graph_outputs: set[str]) -> bool:
    if len(node.outputs) < 2:
        return True
    mask = node.outputs[1]
    return mask.is_empty() or (not mask.outputs and mask.name not in graph_outputs)


@register_pass("eliminate_dropout")
def eliminate_dropout(graph: gs.Graph, ctx: PassContext) -> bool:
    """Dropout(x) -> x in inference mode when its mask output is unused.

    Contract: inference-mode Dropout is the identity on its first output; a training-mode or
    non-constant training_mode Dropout, or one whose mask is consumed, is kept.
    """
    graph_outputs = output_names(graph)
    changed = False
    for node in list(graph.nodes):
        if node.op != "Dropout" or not node.inputs or not node.outputs:
            continue
        if not _is_inference_mode(node) or not _mask_unused(node, graph_outputs):
            continue
        while len(node.outputs) > 1:
            node.outputs.pop()
        changed |= bypass(node, node.inputs[0], node.outputs[0], graph)
    return changed
