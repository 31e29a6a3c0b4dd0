"""Structured second-order (OBS) criterion from calibration Gram matrices.

For a consumer with weight matrix W (outputs × columns, im2col columns for convs) and input
second moment H = XᵀX / rows, removing the columns S of a cluster (for a conv: the kh·kw columns
of each of its input channels) and re-fitting the remaining columns optimally increases the
mean squared reconstruction error of the consumer's output by

    ΔL_S = tr( W_S ([H⁻¹]_SS)⁻¹ W_Sᵀ )

(the Optimal Brain Surgeon result for a block of weights of every output row; the optimal
update of the kept columns is −W_S ([H⁻¹]_SS)⁻¹ [H⁻¹]_S,:). H is damped before inversion:
H + damp · mean(diag H) · I (damp: ``defaults.OBS_DAMP``). Columns that are zero on all
calibration rows (dead channels, diag H ≤ 1e-12 · mean diag) are dropped from H first: they carry no signal, so removing them
costs exactly nothing (ΔL = 0 for an all-dead block) and damping must not invent a cost for
them. Consumers too wide for a Gram matrix (``max_columns``) use a diagonal H instead.
Member scores are aggregated over the group like the other criteria
(:func:`aggregate_members`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import scipy.linalg

from onnxprune.analysis import ChannelAnalysis
from onnxprune.analysis.graph_view import GraphView
from onnxprune.calibrate import CalibrationStats, ConsumerLayer
from onnxprune.defaults import OBS_DAMP
from onnxprune.importance.activation import statistics_for, weight_matrix
from onnxprune.importance.aggregate import aggregate_members
from onnxprune.importance.norms import l1, register_criterion


def damped_inverse(h: np.ndarray, damp: float) -> np.ndarray:
    """(H + damp · mean(diag H) · I)⁻¹ through a Cholesky factorization (float64)."""
    scale = float(np.mean(np.diag(h))) if h.size else 0.0
    damped = h + (damp * scale if scale > 0 else damp) * np.eye(h.shape[0])
    factor = scipy.linalg.cho_factor(damped, lower=True)
    return scipy.linalg.cho_solve(factor, np.eye(h.shape[0]))


def obs_deltas(w: np.ndarray, h_inv: np.ndarray, blocks: list[np.ndarray]) -> np.ndarray:
    """ΔL_S = tr(W_S ([H⁻¹]_SS)⁻¹ W_Sᵀ) for every column block S in ``blocks``."""
    deltas = np.zeros(len(blocks))
    by_size: dict[int, list[int]] = defaultdict(list)
    for position, block in enumerate(blocks):
        if len(block):
            by_size[len(block)].append(position)
    for positions in by_size.values():
        index = np.stack([blocks[p] for p in positions])  # (n, s)
        inner = h_inv[index[:, :, None], index[:, None, :]]  # (n, s, s)
        w_s = np.transpose(w[:, index], (1, 2, 0))  # (n, s, M)
        solved = np.linalg.solve(inner, w_s)
        deltas[positions] = np.einsum("nsm,nsm->n", w_s, solved)
    return deltas


def _member(
    analysis: ChannelAnalysis, view: GraphView, stats: CalibrationStats, layer: ConsumerLayer, damp
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature scores of one consumer: each cluster's ΔL put on its first feature."""
    h = stats.hessian(layer.node)
    diag = np.diag(h)
    live = np.flatnonzero(diag > 1e-12 * max(float(diag.mean()), 1e-300))
    if not len(live):
        return layer.labels, np.zeros(len(layer.labels))
    new_index = np.full(len(diag), -1)
    new_index[live] = np.arange(len(live))
    w = weight_matrix(view, layer)[:, live]
    h_inv = damped_inverse(h[np.ix_(live, live)], damp)
    labels = layer.labels
    features = np.flatnonzero(labels >= 0)
    clusters = analysis.component_of[labels[features]]
    order = np.argsort(clusters, kind="stable")
    _, starts = np.unique(clusters[order], return_index=True)
    groups = np.split(features[order], starts[1:])
    blocks = [new_index[layer.columns(group)] for group in groups]
    blocks = [block[block >= 0] for block in blocks]
    deltas = obs_deltas(w, h_inv, blocks)
    per_feature = np.zeros(len(labels))
    per_feature[[group[0] for group in groups]] = deltas
    return labels, per_feature


def _diagonal_member(view: GraphView, stats: CalibrationStats, layer: ConsumerLayer):
    """Layers too wide for a Gram matrix: diagonal H (H_jj = E[x_c²] for every kernel column of
    feature c) and no compensation, ΔL_c = E[x_c²] · Σ_{m,k} W[m, c, k]²."""
    w = weight_matrix(view, layer)
    squares = np.square(w).reshape(w.shape[0], -1, layer.kernel_size).sum(axis=(0, 2))
    features = stats.features[layer.node]
    return layer.labels, squares * (features.var + features.mean**2)


@register_criterion("obs")
def obs(
    analysis: ChannelAnalysis,
    *,
    calibration: Any = None,
    damp: float = OBS_DAMP,
    aggregate: str = "sum",
    normalize: bool = True,
    **options,
) -> np.ndarray:
    """ΔL_S = tr(W_S ([H⁻¹]_SS)⁻¹ W_Sᵀ) summed over the consumers of each cluster."""
    stats = statistics_for(analysis, "obs", calibration, gram=True, options=options)
    view = GraphView(analysis.model)
    members = []
    for layer in stats.consumers:
        if layer.node in stats.grams and stats.grams[layer.node].rows:
            members.append(_member(analysis, view, stats, layer, damp))
        elif layer.node in stats.features:
            members.append(_diagonal_member(view, stats, layer))
    return aggregate_members(
        analysis, members, aggregate=aggregate, normalize=normalize, fallback=lambda: l1(analysis)
    )
