"""Data-free criteria: L1/L2 norms of every weight slice a cluster owns, BN scale, random.

A cluster's score aggregates over the *members* of its group (each (constant, axis) slice with
role ``out`` or ``in``): member scores are first divided by their mean over the member's
positions (per-layer normalization, so a wide layer does not dominate), then combined by
``sum``, ``mean`` or ``max``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from onnx import ModelProto

from onnxprune.analysis import ChannelAnalysis
from onnxprune.analysis.context import ROLE_IN, ROLE_OUT
from onnxprune.analysis.graph_view import GraphView
from onnxprune.importance.aggregate import aggregate_members

Criterion = Callable[..., np.ndarray]
CRITERIA: dict[str, Criterion] = {}


def register_criterion(name: str) -> Callable[[Criterion], Criterion]:
    """Make ``fn(analysis, **options) -> scores[n_clusters]`` usable by name (CLI and API)."""

    def decorate(fn: Criterion) -> Criterion:
        CRITERIA[name] = fn
        return fn

    return decorate


def _slice_norms(
    analysis: ChannelAnalysis, power: int, roles, aggregate: str, normalize: bool
) -> np.ndarray:
    """Lp norm of every weight slice with a role in ``roles``, aggregated per cluster."""
    view = GraphView(analysis.model)

    def members():
        for request in analysis.slices:
            if request.role not in roles:
                continue
            weight = view.constant(request.constant)
            if weight is None or not np.issubdtype(weight.dtype, np.floating):
                continue
            moved = np.moveaxis(np.abs(weight.astype(np.float64)) ** power, request.axis, 0)
            per_position = moved.reshape(moved.shape[0], -1).sum(axis=1)
            if power == 2:
                per_position = np.sqrt(per_position)
            yield request.labels, per_position

    return aggregate_members(analysis, members(), aggregate=aggregate, normalize=normalize)


@register_criterion("l1")
def l1(
    analysis: ChannelAnalysis, *, aggregate: str = "sum", normalize: bool = True, **_
) -> np.ndarray:
    """Σ|w| over the producer rows and consumer columns of each cluster."""
    return _slice_norms(analysis, 1, (ROLE_OUT, ROLE_IN), aggregate, normalize)


@register_criterion("l2")
def l2(
    analysis: ChannelAnalysis, *, aggregate: str = "sum", normalize: bool = True, **_
) -> np.ndarray:
    """sqrt(Σw²) over the producer rows and consumer columns of each cluster."""
    return _slice_norms(analysis, 2, (ROLE_OUT, ROLE_IN), aggregate, normalize)


@register_criterion("random")
def random(analysis: ChannelAnalysis, *, seed: int = 0, **_) -> np.ndarray:
    """Uniform random scores: the baseline every criterion must beat."""
    return np.random.default_rng(seed).random(analysis.n_clusters)


@register_criterion("bn")
def bn_scale(
    analysis: ChannelAnalysis, *, original: ModelProto | None = None, **options
) -> np.ndarray:
    """|γ| of the BatchNormalization that follows each source channel in the *original* model
    (read before BN fusion; BN nodes are matched to their producer Conv by name). Clusters with
    no BN fall back to the L1 score, rescaled to the BN scores' mean."""
    fallback = l1(analysis, **options)
    if original is None:
        return fallback
    view = GraphView(original)
    gamma_of: dict[str, np.ndarray] = {}
    for node in view.nodes:
        if node.op_type != "BatchNormalization":
            continue
        producer = view.producer.get(node.input(0))
        scale = view.constant(node.input(1))
        if producer is not None and scale is not None:
            gamma_of[producer.name] = np.abs(scale.astype(np.float64))
    n = analysis.n_clusters
    score = np.zeros(n)
    hits = np.zeros(n)
    for atom, (source, channel) in enumerate(analysis.atom_source):
        gamma = gamma_of.get(source)
        if gamma is not None and channel < len(gamma):
            cluster = analysis.component_of[atom]
            score[cluster] += gamma[channel]
            hits[cluster] += 1
    has = hits > 0
    if not has.any():
        return fallback
    score[has] /= hits[has]
    missing = ~has
    if missing.any() and fallback[missing].mean() > 0:
        score[missing] = fallback[missing] / fallback[missing].mean() * score[has].mean()
    return score
