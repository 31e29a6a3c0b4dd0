"""Post-training recovery of a pruned model (no training loop), selected by name.

``make_recovery(method, analysis, calibration)`` returns ``recover(analysis, removed, pruned)``
for :func:`onnxprune.optimize`. Methods are registered by name
(:func:`~onnxprune.recover.registry.register_recovery`; the math is in each factory's
docstring): ``none`` returns the pruned model, ``bias`` shifts the bias of every consumer of
removed channels by their mean contribution (:mod:`~onnxprune.recover.bias`), ``lsq`` refits
those consumers' kept weights and bias by ridge least squares against the original model, level
by level (:mod:`~onnxprune.recover.lsq`), ``reconstruct`` refits every linear layer of the
pruned network against the unpruned one (:mod:`~onnxprune.recover.reconstruct`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from onnx import ModelProto

from onnxprune.analysis import ChannelAnalysis
from onnxprune.calibrate import collect_statistics
from onnxprune.errors import InputError
from onnxprune.io.provenance import mark_made_by
from onnxprune.recover.bias import compensate_bias
from onnxprune.recover.lsq import refit_least_squares
from onnxprune.recover.reconstruct import reconstruct
from onnxprune.recover.registry import (
    RecoverySettings,
    describe_recovery,
    lookup_recovery,
    recovery_names,
    register_recovery,
)
from onnxprune.recover.targets import RefitTarget, refit_targets

Recovery = Callable[[ChannelAnalysis, Any, ModelProto], ModelProto]


def _statistics(analysis, calibration, settings: RecoverySettings):
    return collect_statistics(
        analysis,
        calibration,
        gram=False,
        progress=settings.progress,
        batch_size=settings.batch_size,
        max_samples=settings.max_samples,
        positions=settings.positions,
        seed=settings.seed,
    )


@register_recovery("none", needs_data=False)
def _none(analysis, calibration, settings: RecoverySettings) -> Recovery:
    """No recovery: the pruned model as it is."""

    def recover(current, removed, pruned: ModelProto) -> ModelProto:
        return pruned

    return recover


@register_recovery("bias")
def _bias(analysis, calibration, settings: RecoverySettings) -> Recovery:
    """Bias compensation of the consumers of removed channels S:
    b' = b + Σ_{c∈S} W[:, c]·E[x_c] (E from the original model; summed over the kernel)."""

    def recover(current, removed, pruned: ModelProto) -> ModelProto:
        current = current if current is not None else analysis
        targets = refit_targets(current, removed) if len(removed) else []
        if not targets:
            return pruned
        return compensate_bias(pruned, targets, _statistics(current, calibration, settings))

    return recover


@register_recovery("lsq")
def _lsq(analysis, calibration, settings: RecoverySettings) -> Recovery:
    """Ridge least-squares refit of the consumers of removed channels, level by level:
    [W'ᵀ; δ] = argmin ‖X Wᵀ − X_k W'ᵀ − 1δ‖² + λ‖W' − W_k‖², λ = ridge·tr(X_kᵀX_k)/d
    (X: original input rows, X_k: the pruned model's rows; consumers wider than
    ``max_columns`` get bias compensation)."""

    def recover(current, removed, pruned: ModelProto) -> ModelProto:
        current = current if current is not None else analysis
        targets = refit_targets(current, removed) if len(removed) else []
        if not targets:
            return pruned
        wide = [t for t in targets if len(t.kept_columns) + 1 > settings.max_columns]
        narrow = [t for t in targets if len(t.kept_columns) + 1 <= settings.max_columns]
        model = pruned
        if wide:
            if settings.progress is not None:
                settings.progress(
                    f"{len(wide)} layer(s) wider than {settings.max_columns} columns: bias only"
                )
            model = compensate_bias(model, wide, _statistics(current, calibration, settings))
        if narrow:
            model = refit_least_squares(
                current,
                model,
                narrow,
                calibration,
                ridge=settings.ridge,
                rows_per_column=settings.rows_per_column,
                stats_correction=settings.stats_correction,
                progress=settings.progress,
                batch_size=settings.batch_size,
                max_samples=settings.max_samples,
                positions=settings.positions,
                frontier_mb=settings.frontier_mb,
                seed=settings.seed,
            )
        return mark_made_by(model, "recover (lsq)")

    return recover


@register_recovery("reconstruct")
def _reconstruct(analysis, calibration, settings: RecoverySettings) -> Recovery:
    """Whole-network sequential reconstruction: every Conv (any group, per group)/Gemm/MatMul
    with constant weights of the pruned model, in level order, is refitted on the pruned
    model's own inputs to the unpruned model's output at the same point (or, before a residual
    Add, to the Add's output minus the pruned skip operand):
    θ = argmin ‖Y − [X_P, 1]θ‖² + λ‖W − W_P‖², λ = ridge·tr(X_Pᵀ X_P)/d; an output whose
    calibration error would grow keeps its weights."""

    def recover(current, removed, pruned: ModelProto) -> ModelProto:
        current = current if current is not None else analysis
        if not len(removed):
            return pruned
        return reconstruct(current, removed, pruned, calibration, settings)

    return recover


def _distill_factory(base: str):
    def factory(analysis, calibration, settings: RecoverySettings) -> Recovery:
        """Distillation (``recover/distill.py``): Adam in numpy on the pruned model's
        initializers minimizing the output loss ``settings.distill_loss`` (default
        KL(softmax(y_orig/T) ‖ softmax(y_pruned/T)); ``mse`` for embeddings) on unlabeled
        calibration mini-batches, early stopping on a held-out share; ``lsq+distill`` refits
        by least squares first (then lr 3e-6, depthwise weights left alone)."""
        from onnxprune.recover.distill import make_distill_recovery

        return make_distill_recovery(
            analysis,
            calibration,
            base=base,
            max_samples=settings.max_samples,
            seed=settings.seed,
            progress=settings.progress,
            loss=settings.distill_loss,
        )

    return factory


register_recovery("distill")(_distill_factory("none"))
register_recovery("lsq+distill")(_distill_factory("lsq"))

RECOVERY_METHODS = recovery_names()


def make_recovery(
    method: str,
    analysis: ChannelAnalysis | None,
    calibration: Any,
    **options: Any,
) -> Recovery:
    """``recover(analysis, removed_clusters, pruned_model) -> ModelProto`` for ``method``.

    ``analysis`` is the analysis the removals refer to (the callable also receives it, and uses
    the one it is given). ``calibration``: data in any form :func:`onnxprune.calibrate.iter_feeds`
    accepts; required unless the method needs none. ``options``: fields of
    :class:`~onnxprune.recover.registry.RecoverySettings` (ridge, max_samples, batch_size,
    positions, rows_per_column, max_columns, stats_correction, block_output, seed, progress).
    """
    registered = lookup_recovery(method)
    known = {field.name for field in dataclasses.fields(RecoverySettings)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"unknown recovery option(s) {', '.join(unknown)}")
    settings = RecoverySettings(**options)
    if registered.needs_data and calibration is None:
        raise InputError(f"recovery '{method}' needs calibration data (give data=...)")
    if settings.ridge < 0:
        raise InputError(f"ridge must be >= 0, got {settings.ridge}")
    return registered.factory(analysis, calibration, settings)


__all__ = [
    "RECOVERY_METHODS",
    "RecoverySettings",
    "RefitTarget",
    "describe_recovery",
    "make_recovery",
    "recovery_names",
    "refit_targets",
    "register_recovery",
]
