"""Combine per-member scores into cluster scores (shared by every criterion).

Each member of a group (a weight slice, or a consumer's input features) gives a score per
position; positions map to clusters through their labels. Member scores are summed per cluster,
divided by their mean over the clusters present (per-layer normalization, so a wide layer does
not dominate), then combined over members by ``sum``, ``mean`` or ``max``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from onnxprune.analysis import ChannelAnalysis
from onnxprune.errors import InputError


def aggregate_members(
    analysis: ChannelAnalysis,
    members: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    aggregate: str = "sum",
    normalize: bool = True,
    fallback: Callable[[], np.ndarray] | None = None,
) -> np.ndarray:
    """Cluster scores from ``(labels, per-feature score)`` pairs, one pair per member."""
    n = analysis.n_clusters
    total = np.zeros(n)
    count = np.zeros(n)
    best = np.zeros(n)
    for labels, per_feature in members:
        valid = labels >= 0
        clusters = analysis.component_of[labels[valid]]
        member = np.zeros(n)
        np.add.at(member, clusters, per_feature[valid])
        present = np.unique(clusters)
        if normalize:
            scale = member[present].mean()
            if scale > 0:
                member[present] /= scale
        total[present] += member[present]
        count[present] += 1
        best[present] = np.maximum(best[present], member[present])
    if aggregate == "max":
        scores = best
    elif aggregate == "mean":
        scores = total / np.maximum(count, 1)
    elif aggregate == "sum":
        scores = total
    else:
        raise InputError(f"unknown aggregate '{aggregate}'; known: max, mean, sum")
    missing = count == 0
    if missing.any() and fallback is not None:
        base = fallback()
        reference = scores[~missing].mean() if (~missing).any() else 1.0
        scale = base[missing].mean()
        scores[missing] = base[missing] / scale * reference if scale > 0 else 0.0
    return scores
