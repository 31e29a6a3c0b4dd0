"""What recovery repairs: every supported consumer whose input features lost channels.

For a removal, a :class:`RefitTarget` holds the consumer (from the *original* analysed model),
which of its input features survive, which of its output rows survive (its own output channels
may be pruned too), and the original weight matrix restricted to the surviving rows. Targets
are grouped into *levels*: a target's level is the number of other targets on the longest path
from the graph inputs to it, so targets of one level never feed each other and can be refitted
from one run of the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxprune.analysis import ChannelAnalysis
from onnxprune.analysis.graph_view import GraphView
from onnxprune.calibrate import ConsumerLayer, consumer_layers


@dataclass
class RefitTarget:
    """One consumer to repair (see module docstring).

    ``weight`` is the original (rows kept, all columns) matrix in float64; ``kept_columns`` /
    ``removed_columns`` index its columns; ``kept_features`` masks the input features.
    """

    layer: ConsumerLayer
    kept_features: np.ndarray
    kept_rows: np.ndarray
    weight: np.ndarray

    @property
    def kept_columns(self) -> np.ndarray:
        return self.layer.columns(np.flatnonzero(self.kept_features))

    @property
    def removed_columns(self) -> np.ndarray:
        return self.layer.columns(np.flatnonzero(~self.kept_features))


def out_axis(layer: ConsumerLayer) -> int:
    """Weight axis holding the layer's output channels."""
    if layer.op_type == "Conv":
        return 0
    return 1 - layer.in_axis


def refit_targets(analysis: ChannelAnalysis, removed) -> list[RefitTarget]:
    """The consumers of ``analysis`` whose inputs lose features when ``removed`` goes."""
    keep = analysis.keep_fn(removed)
    view = GraphView(analysis.model)
    targets = []
    for layer in consumer_layers(analysis):
        kept_features = keep(layer.labels)
        if kept_features.all():
            continue
        weight = view.constant(layer.weight)
        rows = np.ones(weight.shape[out_axis(layer)], dtype=bool)
        for request in analysis.slices:
            if request.constant == layer.weight and request.axis == out_axis(layer):
                rows &= keep(request.labels)
        matrix = layer.weight_matrix(weight)[rows]
        targets.append(RefitTarget(layer, kept_features, rows, matrix))
    return targets


def levels(analysis: ChannelAnalysis, targets: list[RefitTarget]) -> list[list[RefitTarget]]:
    """Targets by level (see module docstring), in graph order within a level."""
    by_node = {target.layer.node: target for target in targets}
    depth: dict[str, int] = {}
    level_of: dict[str, int] = {}
    for node in GraphView(analysis.model).nodes:
        level = max(
            (depth.get(name, 0) for name in {*node.inputs, *node.subgraph_inputs}), default=0
        )
        if node.name in by_node:
            level_of[node.name] = level
            level += 1
        for name in node.outputs:
            depth[name] = level
    result: list[list[RefitTarget]] = [[] for _ in range(max(level_of.values(), default=-1) + 1)]
    for target in targets:
        result[level_of[target.layer.node]].append(target)
    return [level for level in result if level]
