"""Stable, unique display names for nodes (ONNX allows empty and repeated node names)."""

from __future__ import annotations

from onnx import GraphProto


def node_names(graph: GraphProto) -> list[str]:
    """One unique name per node of ``graph``, in node order.

    A node keeps its own name when it is non-empty and not taken by an earlier node. An unnamed
    node is called ``<OpType>_<index>`` and a repeated name becomes ``<name>_<index>``, where
    ``index`` is the node's position in ``graph.node``; should that still collide, ``_2``,
    ``_3``... is appended. Names depend only on the graph, so they are stable across runs.
    """
    own = {node.name for node in graph.node if node.name}
    taken: set[str] = set()
    names: list[str] = []
    for index, node in enumerate(graph.node):
        if node.name and node.name not in taken:
            name = node.name
        else:
            base = f"{node.name}_{index}" if node.name else f"{node.op_type}_{index}"
            name, suffix = base, 2
            while name in taken or (name in own and name != node.name):
                name, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(name)
        names.append(name)
    return names
