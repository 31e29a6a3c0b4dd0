"""How many weights each layer loses: the selection modes turned into per-layer counts.

Every mode counts over the *whole model*: the denominator is every Conv/ConvTranspose/Gemm/
MatMul weight not ``ignored`` (skipped, protected and small layers included), and zeros
already present in layers that stay dense count as zeros. So a layer the targets skip is made
up elsewhere:

* uniform: layers with a ``sparsity_for`` override get exactly their fraction; the others share
  needed = ⌈s·total⌉ − zeros of skipped layers − override counts through the ``allocation``
  (:mod:`~onnxprune.sparsity.allocation`): ``uniform`` gives each one fraction
  f = needed / their weights, at most ``max_ratio`` (a note says so when the cap binds);
  ``error`` splits exactly ``needed`` by the layers' measured error curves;
* global: the same amount, taken as the lowest scores of all non-overridden layers together,
  layer l giving at most ⌊max_ratio·n_l⌋;
* keep K: n_l − K per layer; threshold t: the weights with score < t (the sparsity is ignored).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence

import numpy as np

from onnxprune.sparsity.allocation import ALLOCATIONS, Allocation, ErrorCurve
from onnxprune.sparsity.patterns import global_counts, uniform_count
from onnxprune.sparsity.targets import SparseLayer


def override_for(layer: SparseLayer, overrides: Mapping[str, float]) -> float | None:
    """The first ``sparsity_for`` fraction whose glob matches the node or weight name."""
    for pattern, value in overrides.items():
        if fnmatch.fnmatch(layer.node, pattern) or fnmatch.fnmatch(layer.weight, pattern):
            return float(value)
    return None


def whole_model_counts(
    layers: Sequence[SparseLayer],
    sparsity: float,
    total_weights: int,
    skipped_zeros: int,
    *,
    overrides: Mapping[str, float] | None = None,
    scores: Sequence[np.ndarray] | None = None,
    max_ratio: float = 0.95,
    allocation: Allocation | None = None,
    curves: Mapping[str, ErrorCurve] | None = None,
) -> tuple[list[int], list[str]]:
    """Per-layer counts for uniform (``scores`` None: split by ``allocation``, default
    ``uniform``, ``curves`` by node for those that read them) or global ranking, and notes."""
    overrides = overrides or {}
    counts = [0] * len(layers)
    free = []
    for index, layer in enumerate(layers):
        fraction = override_for(layer, overrides)
        if fraction is None:
            free.append(index)
        else:
            counts[index] = uniform_count(layer.size, fraction)
    needed = math.ceil(sparsity * total_weights - 1e-9) - skipped_zeros - sum(counts)
    notes = []
    free_weights = sum(layers[i].size for i in free)
    if needed <= 0 or not free:
        return counts, notes
    if scores is None:
        allocation = allocation or ALLOCATIONS["uniform"]
        fraction = needed / free_weights
        if fraction > max_ratio:
            notes.append(
                f"uniform share {fraction:.3f} capped at max_ratio {max_ratio}: the whole-model "
                f"sparsity {sparsity} is not reached"
            )
        chosen = allocation.fn(
            [layers[i].size for i in free], needed, max_ratio,
            [(curves or {}).get(layers[i].node) for i in free],
        )  # fmt: skip
        for index, count in zip(free, chosen, strict=True):
            counts[index] = count
        return counts, notes
    chosen = global_counts([scores[i] for i in free], needed, max_ratio)
    if sum(chosen) < needed:
        notes.append(f"per-layer cap {max_ratio} binds: the whole-model sparsity is not reached")
    for index, count in zip(free, chosen, strict=True):
        counts[index] = count
    return counts, notes
