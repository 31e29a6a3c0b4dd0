"""Sparsity as a kind of the one pruning plan: removal units and ``apply(model, items)``.

For the guarded loop (pipeline/loop.py grows a set of removed *items* from a ranked list of
units). A unit is one increment of one layer's sparsity: step k of layer l zeroes the weights
ranked ⌈(k−1)·step·n⌉ … ⌈k·step·n⌉ by the criterion (lowest first), up to ``max_ratio``.
Its item is ``("sparsity", node, k)`` (the plan's item convention: kind name first); a
layer's steps stay in order because their scores increase. The unit's ``group`` is
``("sparsity", node)``.

* ``score`` = mean criterion score of the increment's weights / mean score of the layer
  (per-layer normalization, as for channel criteria), so lower = remove first across layers;
* ``weights`` = weights zeroed (``extra = (("weights", n),)``, the plan's measure for masks);
  ``macs`` = ``params`` = 0: ONNX Runtime's CPU/CUDA kernels do not skip zeros and the dense
  tensor keeps its parameters, so a sparsity target is measured in zeroed weights.

``apply_items`` realizes any set of items: layer l loses the weights of its highest step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from onnx import ModelProto, numpy_helper

from onnxprune.sparsity.apply import apply_weights
from onnxprune.sparsity.patterns import lowest_mask
from onnxprune.sparsity.targets import SparseLayer

KIND = "sparsity"
Item = tuple[str, str, int]


@dataclass(frozen=True)
class SparsityUnit:
    """One sparsity increment of one layer (see module docstring)."""

    group: tuple[str, str]
    items: tuple[Item, ...]
    score: float
    weights: int
    macs: float = 0.0
    params: float = 0.0

    @property
    def extra(self) -> tuple[tuple[str, int], ...]:
        return (("weights", self.weights),)


def increment_bound(size: int, step: float, k: int) -> int:
    """Weights zeroed after ``k`` increments of ``step`` of a layer of ``size`` weights."""
    return min(size, math.ceil(k * step * size - 1e-9))


def sparsity_units(
    layers: Sequence[SparseLayer],
    scores: Mapping[str, np.ndarray],
    *,
    step: float = 0.1,
    max_ratio: float = 0.95,
) -> list[SparsityUnit]:
    """Every layer's increments, sorted by score (lower = remove first)."""
    units = []
    for layer in layers:
        flat = np.sort(np.asarray(scores[layer.node], dtype=np.float64).reshape(-1))
        mean = float(flat.mean()) if flat.size and flat.mean() > 0 else 1.0
        steps = math.floor(max_ratio / step + 1e-9)
        for k in range(1, steps + 1):
            start, stop = (
                increment_bound(layer.size, step, k - 1),
                increment_bound(layer.size, step, k),
            )
            if stop <= start:
                continue
            score = float(flat[start:stop].mean()) / mean
            item = (KIND, layer.node, k)
            units.append(SparsityUnit((KIND, layer.node), (item,), score, stop - start))
    return sorted(units, key=lambda unit: (unit.score, unit.items))


def apply_items(
    model: ModelProto,
    layers: Sequence[SparseLayer],
    scores: Mapping[str, np.ndarray],
    items: Iterable[Item],
    *,
    step: float = 0.1,
) -> ModelProto:
    """``model`` with every layer sparsified to the highest step among ``items``."""
    highest: dict[str, int] = {}
    for _, node, k in items:
        highest[node] = max(highest.get(node, 0), int(k))
    by_node = {layer.node: layer for layer in layers}
    arrays = {init.name: init for init in model.graph.initializer}
    weights = {}
    for node, k in highest.items():
        layer = by_node[node]
        value = numpy_helper.to_array(arrays[layer.weight])
        mask = lowest_mask(np.asarray(scores[node]), increment_bound(layer.size, step, k))
        matrix = np.where(mask, 0, layer.to_matrix(value)).astype(value.dtype)
        weights[layer.weight] = layer.from_matrix(matrix)
    return apply_weights(model, weights) if weights else model
