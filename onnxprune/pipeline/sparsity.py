"""The sparsity kind of the pruning plan: weight masks, one 10 % increment of one layer per
unit (:mod:`onnxprune.sparsity.units`), and the ``sparsity`` target's goal.

Items are ``("sparsity", node, k)``: layer ``node`` zeroes its ``k`` lowest-scored tenths.
Masks are built last (order 20), on the weights the structural kinds left: a layer whose
weight changed shape since it was scored (channels removed) is re-scored by magnitude on its
current weights, noted. Criterion: ``sparsity_criterion`` option, default ``wanda`` with
calibration data and ``magnitude`` without.

Ranking (``sparsity_ranking``): ``criterion`` orders the increments by the mean criterion
score of their weights over the layer's mean (cheap, blind to how layers pass errors on);
``output``, the default when the run refits, by the rise of the layer's measured
model-output error per weight zeroed (:func:`_measured_scores`: the error curves and output
gains of ``sparsify``'s ``output`` allocation, so the loop takes layers in the order that
allocation would fill them).

Recovery: with calibration data and any recovery but ``none`` (``context.shared
["recovery_name"]``), each candidate is rebuilt by the sequential OBS reconstruction of
``sparsify --criterion obs`` at the zero count the items give each layer
(:func:`onnxprune.sparsity.reconstruct.refit_masked` with ``keep_positions=False``, bias
corrected): the plan decides how many weights of each layer go, the sweep decides which and
refits the rest — the recovery of weight masks, as lsq is that of removed channels. On
EfficientNet-Lite2 at 50 % (criterion ranking) it keeps 48.4 % top-1 agreement where
re-fitting the criterion's own positions kept 10.9 %; with the measured ranking 85.2 %
(docs/benchmarks.md, optimize-sparsity*). The quick build
(``apply_quick``: counting, ranking a failed step's groups) applies the criterion's masks
alone: the same zero counts. Option ``sparsity_keep_positions`` (plan option, default off)
keeps the criterion's positions and refits only the other weights.

The target ``sparsity=S`` asks that a share S of all Conv/ConvTranspose/Gemm/MatMul weights of
the model be zero (skipped layers count as dense, as in ``sparsify``): the goal's measure is
``weights`` (zeroed weights), its gap counts the zeros of the candidate model.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np
from onnx import ModelProto, numpy_helper

from onnxprune.allocate.schedule import RemovalUnit
from onnxprune.errors import InputError
from onnxprune.pipeline.drop_metric import GAIN_METRIC_DEFAULT
from onnxprune.pipeline.goals import GoalContext, register_goal
from onnxprune.pipeline.loop import LoopSettings, Measured
from onnxprune.pipeline.plan import KindSetup, PlanContext, PlanKind, register_kind
from onnxprune.sensitivity.metrics import resolve_drop_metric

SPARSITY = "sparsity"
STEP = 0.1


def _layer_scores(context: PlanContext, layers, criterion) -> dict[str, np.ndarray]:
    from onnxprune.sparsity.calibration import collect_layer_stats
    from onnxprune.sparsity.criteria import criterion_scores

    weights = {i.name: numpy_helper.to_array(i) for i in context.prepared.graph.initializer}
    stats = {}
    if criterion.needs_data and criterion.model_fn is None:
        context.progress(f"sparsity: calibrating {len(layers)} layers")
        stats = collect_layer_stats(
            context.prepared, layers, context.calibration, seed=context.options.get("seed", 0)
        )
    return criterion_scores(
        criterion, context.prepared, layers, weights, context.calibration, stats
    )


def _measured_scores(
    context: PlanContext, layers, max_ratio: float
) -> dict[tuple[str, int], float]:
    """Score of increment k of each layer = the rise of its measured model-output error per
    weight zeroed: c_l(b_k) − c_l(b_{k−1}) over b_k − b_{k−1}, with c_l the lower convex hull of
    gain_l · e_l (the ``output`` error curve of the OBS reconstruction,
    :func:`onnxprune.sparsity.curves.error_curves`) and b_k the weights zeroed after k
    increments. The gains are measured by the ``gain_metric`` option (chosen from the guard:
    :func:`onnxprune.pipeline.drop_metric.choose_gain_metric`). Layers without a curve are
    left out."""
    from onnxprune.sparsity.allocation import hull_costs
    from onnxprune.sparsity.criteria import resolve_criterion
    from onnxprune.sparsity.curves import error_curves
    from onnxprune.sparsity.units import increment_bound

    weights = {i.name: numpy_helper.to_array(i) for i in context.prepared.graph.initializer}
    _, measure = resolve_drop_metric(context.options.get("gain_metric", GAIN_METRIC_DEFAULT))
    curves = error_curves(
        context.prepared, layers, weights, context.calibration, resolve_criterion("obs"),
        seed=context.options.get("seed", 0), output_gain=True, gain_metric=measure,
        progress=context.progress,
    )  # fmt: skip
    steps = math.floor(max_ratio / STEP + 1e-9)
    scores: dict[tuple[str, int], float] = {}
    for layer in layers:
        curve = curves.get(layer.node)
        if curve is None:
            continue
        bounds = [increment_bound(layer.size, STEP, k) for k in range(steps + 1)]
        cap = math.floor(max_ratio * layer.size + 1e-9)
        costs = hull_costs(curve, layer.size, cap, bounds)
        for k in range(1, steps + 1):
            if bounds[k] > bounds[k - 1]:
                scores[(layer.node, k)] = (costs[k] - costs[k - 1]) / (bounds[k] - bounds[k - 1])
    return scores


def _recovery_note(refit: bool, keep_positions: bool, criterion: str) -> str:
    """The report's line on what repairs the masks."""
    if not refit:
        return "sparsity recovery: none (masks only)"
    if keep_positions:
        return (
            "sparsity recovery: the criterion's masks kept, the other weights refitted by "
            "sequential least squares (bias corrected)"
        )
    return (
        "sparsity recovery: sequential OBS reconstruction at each layer's zero count (the sweep "
        f"re-chooses which weights are zero and refits the rest; bias corrected; the {criterion} "
        "masks serve the quick builds only)"
    )


def _ranked_by_measure(units: list[RemovalUnit], measured: dict) -> list[RemovalUnit]:
    """``units`` re-scored by ``measured`` (per (node, k)); an increment of a layer without a
    curve takes the mean measured score of the same increment over the measured layers."""
    by_step: dict[int, list[float]] = {}
    for (_, k), value in measured.items():
        by_step.setdefault(k, []).append(value)
    ranked = []
    for unit in units:
        _, node, k = unit.items[0]
        score = measured.get((node, k))
        if score is None:
            score = float(np.mean(by_step[k])) if by_step.get(k) else unit.score
        ranked.append(replace(unit, score=score))
    return sorted(ranked, key=lambda unit: (unit.score, unit.items))


@register_kind(
    SPARSITY,
    options=(
        "sparsity_criterion",
        "sparsity_ranking",
        "sparsity_keep_positions",
        "sparsity_max_ratio",
        "min_size",
        "gain_metric",
        "distill_loss",
    ),
)
def sparsity_setup(context: PlanContext) -> KindSetup:
    """Per-layer 10 % increments, ranked by measured output error per weight (``output``) or by
    normalised criterion score (``criterion``); options: ``sparsity_criterion``,
    ``sparsity_ranking`` (default ``output`` when the run refits, else ``criterion``),
    ``sparsity_keep_positions``, ``ignore``, ``sparsity_max_ratio`` (default 0.95),
    ``min_size``, ``gain_metric`` (the measure of the output gains: a smooth drop metric;
    default chosen from the guard)."""
    from onnxprune.sparsity.criteria import resolve_criterion
    from onnxprune.sparsity.targets import DEFAULT_MIN_SIZE, find_layers
    from onnxprune.sparsity.units import apply_items, sparsity_units

    options = context.options
    name = options.get("sparsity_criterion") or (
        "wanda" if context.calibration is not None else "magnitude"
    )
    criterion = resolve_criterion(name)
    if criterion.needs_data and context.calibration is None:
        raise InputError(f"sparsity criterion '{criterion.name}' needs calibration data (data=...)")
    targets = find_layers(
        context.prepared,
        ignore=tuple(options.get("ignore", ())),
        min_size=int(options.get("min_size", DEFAULT_MIN_SIZE)),
    )
    layers = targets.layers
    scores = _layer_scores(context, layers, criterion)
    max_ratio = float(options.get("sparsity_max_ratio", 0.95))
    units = [
        RemovalUnit(u.group, u.items, u.score, 0.0, 0.0, kind=SPARSITY, extra=u.extra)
        for u in sparsity_units(layers, scores, step=STEP, max_ratio=max_ratio)
    ]
    refit = (
        context.calibration is not None and context.shared.get("recovery_name", "none") != "none"
    )
    keep_positions = bool(options.get("sparsity_keep_positions", False))
    ranking = options.get("sparsity_ranking") or ("output" if refit else "criterion")
    if ranking not in ("output", "criterion"):
        raise InputError(f"sparsity_ranking must be 'output' or 'criterion', got {ranking!r}")
    if ranking == "output" and context.calibration is None:
        raise InputError("sparsity_ranking 'output' measures error curves: give data=...")
    seconds: dict[str, float] = {}
    if ranking == "output" and layers:
        tick = time.perf_counter()
        units = _ranked_by_measure(units, _measured_scores(context, layers, max_ratio))
        seconds["sparsity_curves"] = time.perf_counter() - tick
    shapes = {layer.node: tuple(layer.shape) for layer in layers}
    context.shared["sparsity_targets"] = targets
    notes = [
        f"sparsity: {len(layers)} layers, criterion {criterion.name}; skipped "
        f"{len(targets.skipped)} ({', '.join(sorted(set(targets.skipped.values())))})"
        if targets.skipped
        else f"sparsity: {len(layers)} layers, criterion {criterion.name}"
    ]

    notes.append(
        "sparsity ranking: measured model-output error per weight (OBS error curves times "
        "each layer's output gain, measured by "
        f"{options.get('gain_metric', GAIN_METRIC_DEFAULT)})"
        if ranking == "output"
        else f"sparsity ranking: normalised {criterion.name} score"
    )
    notes.append(_recovery_note(refit, keep_positions, criterion.name))

    def masked(model: ModelProto, items: frozenset) -> tuple[ModelProto, list]:
        weights = {i.name: i for i in model.graph.initializer}
        current_layers, current_scores = [], dict(scores)
        for layer in layers:
            weight = weights.get(layer.weight)
            if weight is not None and tuple(weight.dims) != shapes[layer.node]:
                # channels were removed from this layer: magnitude on its remaining weights
                layer = _resized(layer, tuple(int(d) for d in weight.dims))
                array = numpy_helper.to_array(weight)
                current_scores[layer.node] = np.abs(layer.to_matrix(array)).astype(np.float64)
            current_layers.append(layer)
        return apply_items(model, current_layers, current_scores, items, step=STEP), current_layers

    def apply_quick(model: ModelProto, items: frozenset) -> ModelProto:
        return masked(model, items)[0]

    def apply(model: ModelProto, items: frozenset) -> ModelProto:
        candidate, current_layers = masked(model, items)
        if not refit or not items:
            return candidate
        from onnxprune.sparsity.reconstruct import refit_masked

        refitted, _ = refit_masked(
            model,
            current_layers,
            candidate,
            context.calibration,
            seed=options.get("seed", 0),
            keep_positions=keep_positions,
        )
        return refitted

    def describe(items: frozenset) -> dict[str, Any]:
        highest: dict[str, int] = {}
        for _, node, k in items:
            highest[node] = max(highest.get(node, 0), int(k))
        return {
            # with the OBS rebuild the written zeros are the sweep's: the criterion's masks
            # serve the quick builds only
            "criterion": "obs" if refit and not keep_positions else criterion.name,
            "layers": {node: round(min(1.0, k * STEP), 3) for node, k in sorted(highest.items())},
            "eligible_layers": len(layers),
            "skipped": dict(targets.skipped),
        }

    return KindSetup(
        PlanKind(
            SPARSITY,
            apply,
            order=20,
            group_names={(SPARSITY, layer.node): f"{layer.node} (weights)" for layer in layers},
            describe=describe,
            apply_quick=apply_quick,
            summarize=per_layer_sparsity,
        ),
        units,
        notes=notes,
        seconds=seconds,
    )


def per_layer_sparsity(before: ModelProto, after: ModelProto) -> dict[str, Any]:
    """Measured zero share of every Conv/ConvTranspose/Gemm/MatMul weight before the loop and
    in the written model (:func:`onnxprune.sparsity.measure.weight_sparsity`), graph order:
    ``per_layer`` rows {node, op_type, weights, before, after} and the totals over them,
    ``sparsity_before`` / ``sparsity_after`` = Σ zeros / Σ weights."""
    from onnxprune.sparsity.measure import weight_sparsity

    old = {row.node: row for row in weight_sparsity(before)}
    rows, zeros_before, zeros_after, total = [], 0, 0, 0
    for row in weight_sparsity(after):
        base = old.get(row.node)
        zeros = base.zeros if base is not None and base.size == row.size else 0
        rows.append(
            {
                "node": row.node,
                "op_type": row.op_type,
                "weights": row.size,
                "before": round(zeros / row.size, 4) if row.size else 0.0,
                "after": round(row.sparsity, 4),
            }
        )
        zeros_before, zeros_after, total = (
            zeros_before + zeros,
            zeros_after + row.zeros,
            total + row.size,
        )
    return {
        "per_layer": rows,
        "sparsity_before": round(zeros_before / total, 4) if total else 0.0,
        "sparsity_after": round(zeros_after / total, 4) if total else 0.0,
    }


def _resized(layer, shape: tuple[int, ...]):
    """``layer`` for its channel-pruned weight of ``shape`` (rows/columns of a Conv follow)."""
    from dataclasses import replace

    if layer.op_type == "Conv":
        columns = int(np.prod(shape[1:]))
        return replace(layer, shape=shape, rows=shape[0], columns=columns, reduction=shape[1])
    return replace(layer, shape=shape)


def model_zeros(model: ModelProto, weight_names: set[str]) -> int:
    """Zeros in the initializers named ``weight_names``."""
    return sum(
        int(np.count_nonzero(numpy_helper.to_array(init) == 0))
        for init in model.graph.initializer
        if init.name in weight_names
    )


@register_goal(SPARSITY)
def sparsity_goal(target, ctx: GoalContext) -> tuple[LoopSettings, Any]:
    """``sparsity=S``: zero a share S of all counted weights (``weights`` measure); the gap is
    S·total − zeros counted on the candidate's layer weights (0 within 0.1 % of the total)."""
    from onnxprune.sparsity.targets import find_layers

    model = ctx.extra["model"]
    targets = find_layers(model)
    names = {layer.weight for layer in targets.layers}
    names |= {
        i.input[1]
        for i in model.graph.node
        if i.name in targets.skipped and len(i.input) > 1 and targets.skipped[i.name] != "ignored"
    }
    total = max(targets.total_weights, 1)
    goal = target.value * total
    already = model_zeros(model, names)

    def gap(measured: Measured) -> float:
        missing = goal - model_zeros(measured.model, names)
        return missing if missing > 0.001 * total else 0.0

    return LoopSettings("weights", max(0.0, goal - already), whole=float(total)), gap
