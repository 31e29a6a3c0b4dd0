"""Post-training recovery of the consumers of removed channels (no training loop).

``make_recovery(method, analysis, calibration)`` returns ``recover(analysis, removed, pruned)``
for :func:`onnxprune.optimize`: ``none`` returns the pruned model, ``bias`` shifts the bias of
every consumer by the removed channels' mean contribution (:mod:`~onnxprune.recover.bias`),
``lsq`` refits the consumers' kept weights and bias by ridge least squares against the original
model, level by level (:mod:`~onnxprune.recover.lsq`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onnx import ModelProto

from onnxprune.analysis import ChannelAnalysis
from onnxprune.calibrate import collect_statistics
from onnxprune.errors import InputError
from onnxprune.recover.bias import compensate_bias
from onnxprune.recover.lsq import refit_least_squares
from onnxprune.recover.targets import RefitTarget, refit_targets

RECOVERY_METHODS = ("none", "bias", "lsq")

Recovery = Callable[[ChannelAnalysis, Any, ModelProto], ModelProto]


def make_recovery(
    method: str,
    analysis: ChannelAnalysis | None,
    calibration: Any,
    *,
    ridge: float = 1e-3,
    max_samples: int | None = 512,
    batch_size: int = 32,
    positions: int | None = 64,
    rows_per_column: int | None = 32,
    max_columns: int = 6144,
    stats_correction: bool = False,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Recovery:
    """``recover(analysis, removed_clusters, pruned_model) -> ModelProto`` for ``method``.

    ``analysis`` is the analysis the removals refer to (the callable also receives it, and uses
    the one it is given). ``calibration``: data in any form :func:`onnxprune.calibrate.iter_feeds`
    accepts; required unless ``method`` is ``none``. ``ridge``: λ relative to tr(H)/d.
    ``max_samples``, ``batch_size``, ``positions`` (output positions sampled per sample) and
    ``rows_per_column`` (lsq: rows per unknown, None = no cap) bound the cost; consumers
    with more than ``max_columns`` kept columns get bias compensation instead of a refit
    (bounding each normal matrix to max_columns² float64); ``stats_correction`` matches each refitted channel's mean/std to the original.
    """
    if method not in RECOVERY_METHODS:
        raise InputError(f"unknown recovery '{method}'; known: {', '.join(RECOVERY_METHODS)}")
    if method != "none" and calibration is None:
        raise InputError(f"recovery '{method}' needs calibration data (give data=...)")
    if ridge < 0:
        raise InputError(f"ridge must be >= 0, got {ridge}")
    settings = {
        "batch_size": batch_size,
        "max_samples": max_samples,
        "positions": positions,
        "seed": seed,
    }

    def recover(current: ChannelAnalysis, removed, pruned: ModelProto) -> ModelProto:
        current = current if current is not None else analysis
        if method == "none" or len(removed) == 0:
            return pruned
        targets = refit_targets(current, removed)
        if not targets:
            return pruned
        wide = [t for t in targets if len(t.kept_columns) + 1 > max_columns]
        narrow = [t for t in targets if len(t.kept_columns) + 1 <= max_columns]
        model = pruned
        if method == "bias" or wide:
            stats = collect_statistics(
                current, calibration, gram=False, progress=progress, **settings
            )
            if method == "lsq" and progress is not None:
                progress(f"{len(wide)} layer(s) wider than {max_columns} columns: bias only")
            model = compensate_bias(model, targets if method == "bias" else wide, stats)
        if method == "lsq" and narrow:
            model = refit_least_squares(
                current,
                model,
                narrow,
                calibration,
                ridge=ridge,
                rows_per_column=rows_per_column,
                stats_correction=stats_correction,
                progress=progress,
                **settings,
            )
        return model

    return recover


__all__ = ["RECOVERY_METHODS", "RefitTarget", "make_recovery", "refit_targets"]
