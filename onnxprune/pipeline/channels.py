"""The channel kind of the pruning plan: clusters of the channel analysis, removed by
:func:`onnxprune.rewrite.apply_removal` and repaired by the run's recovery.

Units come from the criterion's ranking (``global``), the same units re-ordered to a uniform
share per group (``uniform``), or the measured per-group sensitivity (``sensitivity``: drop per
MAC, so its scores share a unit with other kinds' measured drops).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from onnx import ModelProto

from onnxprune.allocate.schedule import removal_order, uniform_order
from onnxprune.errors import InputError
from onnxprune.pipeline.plan import CHANNELS, KindSetup, PlanContext, PlanKind, register_kind


def cluster_macs(analysis) -> np.ndarray:
    """Estimated MACs of every cluster (0 for groups without an estimate)."""
    macs = np.zeros(analysis.n_clusters)
    for group in analysis.groups:
        if group.macs_per_cluster is not None:
            macs[group.clusters] = group.macs_per_cluster
    return macs


def channel_kind(analysis, recover) -> PlanKind:
    """The kind that removes clusters of ``analysis`` (then repairs with ``recover``)."""
    per_cluster = cluster_macs(analysis)

    def apply(model: ModelProto, items: frozenset) -> ModelProto:
        from onnxprune.rewrite import apply_removal

        # Channels are the first kind built (order 0): ``model`` is the plan's base, the
        # analysed model, which apply_removal rewrites from the analysis itself.
        pruned = apply_removal(analysis, items)
        return recover(analysis, items, pruned) if recover is not None else pruned

    def apply_quick(model: ModelProto, items: frozenset) -> ModelProto:
        from onnxprune.rewrite import apply_removal

        return apply_removal(analysis, items)

    def describe(items: frozenset) -> dict[str, Any]:
        return {"clusters_removed": len(items), "groups": len(analysis.groups)}

    def estimate_macs(items: frozenset) -> float:
        return float(per_cluster[list(items)].sum()) if items else 0.0

    return PlanKind(
        CHANNELS,
        apply,
        order=0,
        group_names={g.index: g.name for g in analysis.groups},
        describe=describe,
        estimate_macs=estimate_macs,
        apply_quick=apply_quick,
    )


@register_kind(CHANNELS, options=("sensitivity_metric", "distill_loss"))
def channel_setup(context: PlanContext) -> KindSetup:
    """Channel units ranked by the run's allocation (see module docstring).

    Reads ``context.shared``: ``scores`` (criterion scores per cluster), ``recover`` (callable or
    None), ``allocation``; options ``max_ratio``, ``round_to``, ``ignore``, ``ratio_for``,
    ``sensitivity_metric`` (the table's drop metric: :mod:`onnxprune.pipeline.drop_metric`).
    """
    analysis = context.analysis
    options = context.options
    scores = context.shared["scores"]
    allocation = context.shared["allocation"]
    shape_options = {
        "max_ratio": options["max_ratio"],
        "round_to": options["round_to"],
        "ratio_for": options.get("ratio_for"),
    }
    units = removal_order(analysis, scores, ignore=options.get("ignore", ()), **shape_options)
    seconds: dict[str, float] = {}
    notes: list[str] = []
    if allocation == "uniform":
        units = uniform_order(analysis, units)
    elif allocation == "sensitivity":
        started = time.perf_counter()
        units = _sensitivity_units(context, scores, shape_options)
        seconds["sensitivity"] = time.perf_counter() - started
        metric = options.get("sensitivity_metric", "kl")
        notes.append(f"sensitivity table: drop metric {getattr(metric, '__name__', metric)}")
    kind = channel_kind(analysis, context.shared.get("recover"))
    return KindSetup(kind, units, notes=notes, seconds=seconds)


def _sensitivity_units(context: PlanContext, scores, shape_options: dict) -> list:
    """The removal order of ``allocation="sensitivity"``: a table measured on the first
    ``defaults.SENSITIVITY_SAMPLES`` calibration samples, each point repaired by
    ``defaults.SENSITIVITY_RECOVERY`` (``bias``) before its drop is measured (``none`` there:
    unrepaired; never repaired when the run's recovery is ``none``). The table is kept in
    ``context.shared["memo"]`` under (criterion, repair, samples, drop metric) when the run has
    a memo: a later
    scheme of the same session with the same criterion reads it instead of measuring it
    again (the order is still made from the scheme's own shape options)."""
    from onnxprune import defaults
    from onnxprune.recover import make_recovery
    from onnxprune.sensitivity import measure_sensitivity

    if context.calibration is None:
        raise InputError("allocation 'sensitivity' needs calibration data (give data=...)")
    samples = defaults.SENSITIVITY_SAMPLES
    repaired = (
        defaults.SENSITIVITY_RECOVERY != "none"
        and context.shared.get("recovery_name", "none") != "none"
    )
    metric = context.options.get("sensitivity_metric", "kl")
    memo = context.shared.get("memo")
    key = (
        "sensitivity",
        context.shared.get("criterion"),
        defaults.SENSITIVITY_RECOVERY if repaired else None,
        samples,
        getattr(metric, "__name__", metric),
    )
    if memo is not None and key in memo:
        return _order(context, memo[key], shape_options)
    repair = (
        make_recovery(
            defaults.SENSITIVITY_RECOVERY,
            context.analysis,
            context.calibration,
            max_samples=samples,
        )
        if repaired
        else None
    )
    table = measure_sensitivity(
        context.analysis,
        context.calibration,
        scores=scores,
        original=context.original,
        progress=context.progress,
        max_samples=samples,
        recover=repair,
        metric=metric,
    )
    if memo is not None:
        memo[key] = table
    return _order(context, table, shape_options)


def _order(context: PlanContext, table, shape_options: dict) -> list:
    """The removal order of a sensitivity ``table`` for the run's target measure."""
    from onnxprune.sensitivity.allocate import sensitivity_order

    measure = {"params": "params", "ratio": "clusters"}.get(context.target.kind, "macs")
    return sensitivity_order(
        table,
        context.analysis,
        measure=measure,
        protected=context.options.get("ignore", ()),
        **shape_options,
    )
