"""Raising the default-domain opset when a fusion needs a newer op.

Raising the opset is only safe when no op in the graph changed meaning or signature between
the model's opset and the target; ``BREAKING`` lists those changes (attribute-to-input
moves, semantic changes) for opsets 11..17. Below opset 11 we never raise.
"""

from __future__ import annotations

import onnx
import onnx_graphsurgeon as gs

from onnxprune.passes.context import PassContext

MIN_BUMPABLE_OPSET = 11

# op type -> opsets at which it changed in a way an older node would not survive.
BREAKING: dict[str, tuple[int, ...]] = {
    "Dropout": (12,),
    "Squeeze": (13,),
    "Unsqueeze": (13,),
    "ReduceSum": (13,),
    "Split": (13,),
    "Softmax": (13,),
    "LogSoftmax": (13,),
    "Hardmax": (13,),
    "Resize": (13,),
    "BatchNormalization": (14,),
    "RoiAlign": (16,),
}


def default_opset(graph: gs.Graph) -> int:
    """The default-domain opset of ``graph``."""
    for opset in graph.import_domains or []:
        if opset.domain in ("", "ai.onnx"):
            return int(opset.version)
    return int(graph.opset)


def _all_nodes(graph: gs.Graph):
    for node in graph.nodes:
        yield node
        for subgraph in node.subgraphs():
            yield from _all_nodes(subgraph)


def can_raise_opset(graph: gs.Graph, current: int, target: int) -> str | None:
    """None when ``graph`` may be raised from ``current`` to ``target``, else the reason."""
    if current >= target:
        return None
    if current < MIN_BUMPABLE_OPSET:
        return f"opset {current} is below {MIN_BUMPABLE_OPSET}"
    for node in _all_nodes(graph):
        if node.domain not in ("", "ai.onnx", None):
            continue
        changes = BREAKING.get(node.op, ())
        if any(current < version <= target for version in changes):
            if node.op == "BatchNormalization" and len(node.outputs) == 1:
                continue
            return f"{node.op} changed between opset {current} and {target}"
    return None


def raise_opset(graph: gs.Graph, ctx: PassContext, target: int) -> bool:
    """Raise the default-domain opset to ``target`` if safe; True when the graph is at ``target``."""
    if ctx.opset >= target:
        return True
    if not ctx.allow_opset_raise:
        return False
    reason = can_raise_opset(graph, ctx.opset, target)
    if reason is not None:
        return False
    graph.opset = target
    if graph.import_domains:
        kept = [d for d in graph.import_domains if d.domain not in ("", "ai.onnx")]
        graph.import_domains = [onnx.helper.make_opsetid("", target), *kept]
    ctx.note(f"default-domain opset raised from {ctx.opset} to {target}")
    ctx.opset = target
    return True
