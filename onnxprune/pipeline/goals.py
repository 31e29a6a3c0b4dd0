"""What the guarded loop walks toward, per target kind: its measure, planned amount and gap.

A *goal* is registered per target kind (``macs``, ``params``, ``ratio``, ``latency``, ...):
``goal(target, ctx) -> (LoopSettings, gap)``. ``LoopSettings.measure`` names the unit amount the
schedule sums (:meth:`~onnxprune.allocate.schedule.RemovalUnit.amount`) and ``total`` the
amount the planned steps remove; ``gap(measured)`` is the amount still to remove to meet the
target on *measured* values (counted on the written model, or timed), in the same units,
``<= 0`` when met.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from onnxprune.errors import InputError
from onnxprune.pipeline.loop import LoopSettings, Measured

# Latency target: accepted when measured p50 is within this factor of the goal (timer noise).
LATENCY_TOLERANCE = 1.02


@dataclass
class GoalContext:
    """Quantities a goal is computed from.

    ``estimated_macs``: the analysis' MAC total (unit estimates are in these units);
    ``macs_before``/``params_before``: counted on the original; ``latency_before`` in ms;
    ``units``: every candidate unit; ``extra``: kind-specific totals (e.g. ``weights``).
    """

    estimated_macs: float
    macs_before: int
    params_before: int
    latency_before: float | None
    units: list
    extra: dict[str, Any]


Gap = Callable[[Measured], float]
Goal = Callable[[Any, GoalContext], tuple[LoopSettings, Gap]]
GOALS: dict[str, Goal] = {}


def register_goal(kind: str) -> Callable[[Goal], Goal]:
    """Decorator registering the goal of target kind ``kind``."""

    def decorate(goal: Goal) -> Goal:
        GOALS[kind] = goal
        return goal

    return decorate


def make_goal(target, context: GoalContext) -> tuple[LoopSettings, Gap]:
    """Settings and gap of ``target`` (its kind must have a registered goal)."""
    if target.kind not in GOALS:
        raise InputError(f"no goal is registered for target kind '{target.kind}'")
    return GOALS[target.kind](target, context)


@register_goal("macs")
def macs_goal(target, ctx: GoalContext) -> tuple[LoopSettings, Gap]:
    """Keep a share F of the counted MACs: remove (1 - F)·estimated total; the gap is
    (counted MACs - F·MACs_before) scaled to estimated units, 0 within 0.1 %, and at least 1
    while the target is missed (a model whose counted MACs the analysis cannot reach — layers
    it has no rule for, e.g. QLinearConv — estimates 0: the gap must still say "not met"). A
    model with no counted MACs at all (only ops such as ``ai.onnx.ml`` LinearClassifier) has
    nothing a MAC share can measure: its gap is 1 for ever, so the loop reports that it has
    nothing to prune instead of calling 0 ≤ F·0 met."""
    scale = ctx.estimated_macs / max(ctx.macs_before, 1)
    goal = target.value * ctx.macs_before

    def gap(measured: Measured) -> float:
        if ctx.macs_before <= 0:
            return 1.0
        if measured.macs <= goal * 1.001:
            return 0.0
        return max((measured.macs - goal) * scale, 1.0)

    return LoopSettings(
        "macs", (1 - target.value) * ctx.estimated_macs, whole=ctx.estimated_macs
    ), gap


@register_goal("params")
def params_goal(target, ctx: GoalContext) -> tuple[LoopSettings, Gap]:
    """Keep a share F of the counted parameters; gap in parameters, 0 within 0.1 % (1 for
    ever when no parameter is counted)."""
    goal = target.value * ctx.params_before

    def gap(measured: Measured) -> float:
        if ctx.params_before <= 0:  # nothing counted (see macs_goal)
            return 1.0
        return float(measured.params - goal) if measured.params > goal * 1.001 else 0.0

    return LoopSettings(
        "params", (1 - target.value) * ctx.params_before, whole=ctx.params_before
    ), gap


@register_goal("ratio")
def ratio_goal(target, ctx: GoalContext) -> tuple[LoopSettings, Gap]:
    """Remove a share R of the eligible items (clusters of groups that have units)."""
    total = target.value * ctx.extra.get("eligible_items", 0)

    def gap(measured: Measured) -> float:
        return max(0.0, total - len(measured.removed))

    whole = float(ctx.extra.get("eligible_items", 0))
    return LoopSettings("clusters", float(int(total)), whole=whole), gap


@register_goal("latency")
def latency_goal(target, ctx: GoalContext) -> tuple[LoopSettings, Gap]:
    """Keep a share F of the measured p50 latency. Steps are planned in MACs (latency assumed
    proportional to MACs over the last step) and every kept step is timed; met within
    :data:`LATENCY_TOLERANCE`."""
    scale = ctx.estimated_macs / max(ctx.macs_before, 1)
    latency_before = ctx.latency_before
    goal_ms = target.value * (latency_before or 0.0)

    def gap(measured: Measured) -> float:
        if measured.latency_ms is None or not latency_before:
            return 0.0
        if measured.latency_ms <= goal_ms * LATENCY_TOLERANCE:
            return 0.0
        kept_macs = measured.macs_estimated * scale
        return kept_macs * (1 - goal_ms / measured.latency_ms)

    settings = LoopSettings(
        "macs", (1 - target.value) * ctx.estimated_macs, time_steps=True, whole=ctx.estimated_macs
    )
    settings.max_corrections = 4
    return settings, gap
