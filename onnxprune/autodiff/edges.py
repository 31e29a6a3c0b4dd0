"""Gradients on graph edges: the input of one node only, not the tensor as a whole.

A tensor read by several nodes receives the sum of their gradients. The first-order effect of
zeroing what *one* node reads (the consumer of a pruned channel) needs the gradient of that
edge alone: ``expose_edges`` inserts an ``Identity`` in front of each requested (node, input)
and returns the new tensor names, which can then be passed as ``wrt``.
"""

from __future__ import annotations

from collections.abc import Sequence

from onnx import ModelProto, helper


def edge_name(node: str, position: int) -> str:
    return f"edge/{node}/{position}"


def expose_edges(
    model: ModelProto, edges: Sequence[tuple[str, int]]
) -> tuple[ModelProto, list[str]]:
    """A copy of ``model`` where input ``position`` of node ``node`` reads an Identity of the
    original tensor; returns the copy and the Identity outputs, in the order of ``edges``."""
    result = ModelProto()
    result.CopyFrom(model)
    wanted: dict[str, list[int]] = {}
    for node, position in edges:
        wanted.setdefault(node, []).append(position)
    names: dict[tuple[str, int], str] = {}
    nodes = []
    found = set()
    for node in result.graph.node:
        for position in wanted.get(node.name, []):
            source = node.input[position]
            name = edge_name(node.name, position)
            nodes.append(helper.make_node("Identity", [source], [name], name=f"{name}/identity"))
            node.input[position] = name
            names[(node.name, position)] = name
            found.add(node.name)
        nodes.append(node)
    missing = sorted(set(wanted) - found)
    if missing:
        raise KeyError(f"nodes not in the model: {', '.join(missing)}")
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    return result, [names[(node, position)] for node, position in edges]
