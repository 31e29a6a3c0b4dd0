"""Data-driven criteria from per-feature activation statistics of the consumers.

Each supported consumer of a cluster's channels (see :mod:`onnxprune.calibrate.consumers`) is a
*member*; a member gives every input feature a score, the features of a cluster are summed,
member scores are divided by their mean over the clusters present (``normalize``, as the
weight-norm criteria do) and combined over members by ``sum``, ``mean`` or ``max``. Clusters
that no supported consumer reads get the ``l1`` score rescaled to the mean data score.

* ``activation`` (Wanda-style): feature c of a consumer with weight matrix W scores
  ``Σ_{m,k} |W[m, c, k]| · ‖x_c‖`` with ‖x_c‖ = sqrt(E[x_c²]) over samples and positions;
* ``mean_activation``: E|x_c|;
* ``apoz``: 1 − P(x_c = 0) (a channel that is almost always zero after ReLU ranks low).

All take ``calibration=`` (data in any form :func:`onnxprune.calibrate.iter_feeds` accepts, or
:class:`~onnxprune.calibrate.CalibrationStats`); without it they raise ``InputError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxprune.analysis import ChannelAnalysis
from onnxprune.analysis.graph_view import GraphView
from onnxprune.calibrate import CalibrationStats, ConsumerLayer, collect_statistics
from onnxprune.errors import InputError
from onnxprune.importance.aggregate import aggregate_members
from onnxprune.importance.norms import l1, register_criterion

STAT_OPTIONS = ("batch_size", "max_samples", "positions", "seed", "progress", "max_columns")


def statistics_for(
    analysis: ChannelAnalysis, name: str, calibration: Any, *, gram: bool, options: dict
) -> CalibrationStats:
    """Calibration statistics for criterion ``name``; ``InputError`` without data."""
    if calibration is None:
        raise InputError(f"criterion '{name}' needs calibration data (give data=...)")
    settings = {key: options[key] for key in STAT_OPTIONS if key in options}
    return collect_statistics(analysis, calibration, gram=gram, **settings)


def weight_matrix(view: GraphView, layer: ConsumerLayer) -> np.ndarray:
    """The consumer's (outputs, columns) weight matrix in float64."""
    return layer.weight_matrix(view.constant(layer.weight))


def _feature_members(analysis, stats: CalibrationStats, feature_score) -> list:
    view = GraphView(analysis.model)
    members = []
    for layer in stats.consumers:
        features = stats.features.get(layer.node)
        if features is not None:
            members.append((layer.labels, feature_score(view, layer, features)))
    return members


def _score(analysis, name, calibration, options, feature_score) -> np.ndarray:
    stats = statistics_for(analysis, name, calibration, gram=False, options=options)
    return aggregate_members(
        analysis,
        _feature_members(analysis, stats, feature_score),
        aggregate=options.get("aggregate", "sum"),
        normalize=options.get("normalize", True),
        fallback=lambda: l1(analysis),
    )


@register_criterion("activation")
def activation(analysis: ChannelAnalysis, *, calibration: Any = None, **options) -> np.ndarray:
    """Wanda-style Σ_{m,k}|W[m, c, k]| · sqrt(E[x_c²]) per consumer input feature c."""

    def feature_score(view, layer, features):
        w = np.abs(weight_matrix(view, layer))
        per_feature = w.reshape(w.shape[0], -1, layer.kernel_size).sum(axis=(0, 2))
        return per_feature * features.rms

    return _score(analysis, "activation", calibration, options, feature_score)


@register_criterion("mean_activation")
def mean_activation(analysis: ChannelAnalysis, *, calibration: Any = None, **options) -> np.ndarray:
    """E|x_c| of every consumer input feature c."""
    return _score(
        analysis,
        "mean_activation",
        calibration,
        options,
        lambda _view, _layer, f: f.mean_abs.copy(),
    )


@register_criterion("apoz")
def apoz(analysis: ChannelAnalysis, *, calibration: Any = None, **options) -> np.ndarray:
    """1 − APoZ: the fraction of non-zero values of every consumer input feature c."""
    return _score(
        analysis, "apoz", calibration, options, lambda _view, _layer, f: 1.0 - f.zero_fraction
    )
