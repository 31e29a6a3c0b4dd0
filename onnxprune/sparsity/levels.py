"""Levels for sequential calibration: layers of one level never feed each other.

A layer's level is the number of sparsified layers on the longest path from the graph inputs to
it (nodes are visited in the graph's topological order). All layers of level k read tensors
computed only through layers of levels < k, so after those are rewritten one calibration pass
over the current model gives every level-k layer its inputs on the already-sparsified upstream
model.
"""

from __future__ import annotations

from collections.abc import Sequence

from onnx import ModelProto

from onnxprune.sparsity.targets import SparseLayer


def layer_levels(model: ModelProto, layers: Sequence[SparseLayer]) -> list[list[SparseLayer]]:
    """``layers`` grouped by level, lowest first, graph order inside a level."""
    by_node = {layer.node: layer for layer in layers}
    depth: dict[str, int] = {}  # tensor -> sparsified layers on the longest path to it
    levels: dict[int, list[SparseLayer]] = {}
    for node in model.graph.node:
        level = max((depth.get(name, 0) for name in node.input if name), default=0)
        layer = by_node.get(node.name)
        if layer is not None:
            levels.setdefault(level, []).append(layer)
            level += 1
        for name in node.output:
            if name:
                depth[name] = level
    return [levels[key] for key in sorted(levels)]
