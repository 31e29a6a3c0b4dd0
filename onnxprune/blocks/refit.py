"""Optional repair after block removal: refit the layers that read a removed unit's output.

The first layers after y (Conv with ``group == 1``, Gemm, MatMul with a constant 2-D weight,
see :func:`onnxprune.calibrate.consumers.describe_node`) now see x + c instead of x + f(x):
they are found by walking forward from y through nodes with one run-time input (activations,
norms, grouped convs, layout ops; at most ``MAX_HOPS`` of them), stopping at the first such
layer on each path and at any node joining several run-time tensors. Each is refitted by the existing least-squares recovery (:mod:`onnxprune.recover.lsq`) with all of
its input features kept: W', δ minimise ‖X Wᵀ − X' W'ᵀ − 1δ‖² + λ‖W' − W‖², X the rows the
original model feeds it, X' the rows the block-removed model feeds it. Paths through
a residual Add (two run-time inputs) are not followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import ModelProto

from onnxprune.analysis.graph_view import GraphView
from onnxprune.blocks.find import BlockSearch
from onnxprune.calibrate.consumers import describe_node
from onnxprune.recover.lsq import refit_least_squares
from onnxprune.recover.targets import RefitTarget

MAX_HOPS = 4


@dataclass
class _ModelOnly:
    """The part of a ChannelAnalysis the least-squares refit reads: the original model."""

    model: ModelProto


def _weight_axis(op_type: str, attrs: dict) -> int:
    if op_type == "Gemm":
        return 1 if int(attrs.get("transB", 0)) else 0
    return 1 if op_type == "Conv" else 0


def _following_layers(view: GraphView, start: str, skip: set[str]) -> list:
    """First supported layers on every path forward from ``start`` (module docstring)."""
    found: dict[str, object] = {}
    frontier = [(start, 0)]
    seen = {start}
    while frontier:
        tensor, hops = frontier.pop()
        for node in view.consumers.get(tensor, []):
            if node.name in skip:
                continue
            layer = _describe(view, node) if node.input(0) == tensor else None
            if layer is not None:
                found.setdefault(node.name, layer)
                continue
            dynamic = [n for n in node.inputs if n and not view.is_constant(n)]
            if len(dynamic) != 1 or hops >= MAX_HOPS or node.subgraph_inputs:
                continue
            for output in node.outputs:
                if output and output not in seen:
                    seen.add(output)
                    frontier.append((output, hops + 1))
    return list(found.values())


def _describe(view: GraphView, node):
    weight = node.input(1)
    shape = view.constant_shape(weight)
    if shape is None or node.op_type not in ("Conv", "Gemm", "MatMul"):
        return None
    axis = _weight_axis(node.op_type, node.attrs)
    if axis >= len(shape):
        return None
    return describe_node(node, view, weight, axis, np.zeros(shape[axis], dtype=np.int64))


def refit_targets(search: BlockSearch, removed: list[int], pruned: ModelProto) -> list[RefitTarget]:
    """One target per first supported layer after a removed unit's y still in ``pruned``."""
    view = GraphView(search.model)
    present = {node.name for node in pruned.graph.node}
    skip = {node.name for node in view.nodes if node.name not in present}
    targets: dict[str, RefitTarget] = {}
    for index in removed:
        for layer in _following_layers(view, search.units[index].output, skip):
            if layer.node in targets:
                continue
            matrix = layer.weight_matrix(view.constant(layer.weight))
            kept = np.ones(len(layer.labels), dtype=bool)
            rows = np.ones(matrix.shape[0], dtype=bool)
            targets[layer.node] = RefitTarget(layer, kept, rows, matrix)
    return list(targets.values())


def refit_readers(
    search: BlockSearch,
    removed: list[int],
    pruned: ModelProto,
    calibration: Any,
    *,
    max_samples: int | None = 256,
    batch_size: int = 16,
    ridge: float = 1e-3,
) -> tuple[ModelProto, int]:
    """``pruned`` with the readers of removed units' outputs refitted, and how many."""
    targets = refit_targets(search, removed, pruned)
    if not targets:
        return pruned, 0
    model = refit_least_squares(
        _ModelOnly(search.model),  # type: ignore[arg-type]
        pruned,
        targets,
        calibration,
        ridge=ridge,
        batch_size=batch_size,
        max_samples=max_samples,
    )
    return model, len(targets)
