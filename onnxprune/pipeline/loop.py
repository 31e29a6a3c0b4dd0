"""Iterative pruning with an accuracy guard and rollback.

The model is analysed once; the state is the set of removed clusters. Step k of N removes
the next units of the ranking (:class:`~onnxprune.allocate.schedule.Schedule`) worth
``total × k / N`` of the target's measure in all, so each step is one increment (counted on
the model without repair when the hooks can count it, ``LoopHooks.removed_amount``; else the
sum of the units' estimates). A candidate
is kept when ``metric_before - metric(candidate) <= max_drop``. A step that breaks the guard
is rolled back (its items leave the removed set) and retried (the drop is signed by the
metric's direction: ``value - original`` for lower-is-better metrics such as KL):

1. with half the increment, then a quarter (``max_halvings``);
2. with the most sensitive groups protected: each group touched by the failed step is removed
   alone on top of the kept state and its metric drop measured; the worst groups leave the
   ranking for the rest of the run (``protect_rounds`` rounds, more groups each round).

When no retry fits, the loop stops with the best (last kept) state: status
``guard_not_met``. When the ranking runs out before the target: ``target_not_reached``.
After the planned steps the target is checked on measured values (MACs/params counted on the
written model, latency timed) and up to ``max_corrections`` extra steps close the gap.
Every attempt, kept or rolled back, is recorded.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from onnx import ModelProto

from onnxprune import defaults
from onnxprune.allocate.schedule import RemovalUnit, Schedule, closer_prefix, estimated_prefix
from onnxprune.pipeline.plan import CHANNELS, item_kind
from onnxprune.report.schema import (
    STATUS_GUARD_NOT_MET,
    STATUS_OK,
    STATUS_TARGET_NOT_REACHED,
    STEP_KEPT,
    STEP_ROLLED_BACK,
    StepRecord,
)


def _count_kinds(removed) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in removed:
        counts[item_kind(item)] = counts.get(item_kind(item), 0) + 1
    return counts


@dataclass
class Measured:
    """What is known about one candidate model."""

    removed: frozenset
    model: ModelProto | None  # None: a rejected measurement kept only for its figures
    macs: int
    macs_estimated: int
    params: int
    metric: float | None
    latency_ms: float | None = None


@dataclass
class LoopHooks:
    """The loop's access to the world (injected, so the loop is testable without ORT).

    * ``build(removed) -> ModelProto`` — the pruned (and recovered) model for a removed set;
    * ``count(model) -> (macs, params)`` — measured on the model;
    * ``metric(model, quick) -> float | None`` — the guard metric (``quick``: a subset is
      enough, used for sensitivity);
    * ``gap(measured) -> float`` — estimated amount of the measure still to remove to meet
      the target on measured values (<= 0: met);
    * ``latency(model) -> float | None`` — p50 in ms, only called when ``time_steps``;
    * ``build_quick(removed)`` — the model without repair, for the diagnosis of a failed step
      (it only ranks groups; ``build`` when absent);
    * ``removed_amount(removed) -> float`` — the amount of the settings' measure that
      ``removed`` takes away, *counted* (on the model built without repair), in the units of
      ``LoopSettings.total``. When given, every step is sized on it instead of on the sum of
      the units' estimates: a per-cluster MAC estimate counts a convolution's saving once for
      its input channels and once for its output channels, so a sum over both overstates what
      goes (2.5 points too much at a 30 % cut on EfficientNet-Lite2) and a one-step run stops short.
    """

    build: Callable[[frozenset[int]], ModelProto]
    count: Callable[[ModelProto], tuple[int, int]]
    metric: Callable[[ModelProto, bool], float | None]
    gap: Callable[[Measured], float]
    latency: Callable[[ModelProto], float | None] | None = None
    progress: Callable[[str], None] | None = None
    build_quick: Callable[[frozenset], ModelProto] | None = None
    removed_amount: Callable[[frozenset], float] | None = None


@dataclass
class LoopSettings:
    """How the loop walks toward the target."""

    measure: str  # "macs", "params" or "clusters"
    total: float  # estimated amount of the measure to remove in the planned steps
    steps: int = 4
    max_drop: float = 1.0  # the guard's threshold on the metric's loss
    higher_is_better: bool = True
    max_halvings: int = 2
    protect_rounds: int = 2
    max_corrections: int = 3
    max_sensitivity_groups: int = 12
    time_steps: bool = False
    # The measure's amount in the whole original model (0: unknown). A step whose units
    # overshoot its amount by more than fit_tolerance × whole looks for a closer selection.
    whole: float = 0.0
    fit_tolerance: float = defaults.FIT_TOLERANCE


@dataclass
class LoopOutcome:
    """Result of the loop: the best kept state, every attempt, and why it stopped."""

    status: str
    reason: str | None
    best: Measured
    records: list[StepRecord]
    protected: set = field(default_factory=set)
    sensitivity: dict = field(default_factory=dict)  # group key -> loss when removed alone


class GuardedPruning:
    """One run of the loop (see module docstring)."""

    def __init__(
        self,
        schedule: Schedule,
        hooks: LoopHooks,
        settings: LoopSettings,
        original: Measured,
        group_names: dict[int, str],
        macs_of: Callable[[frozenset], int],
    ) -> None:
        if settings.steps < 1:
            from onnxprune.errors import InputError

            raise InputError(f"steps must be >= 1, got {settings.steps}")
        self.schedule = schedule
        self.hooks = hooks
        self.settings = settings
        self.original = original
        self.best = original
        self.records: list[StepRecord] = []
        self.protected: set = set()
        self.sensitivity: dict = {}
        self.group_names = group_names
        self.macs_of = macs_of
        self._estimated = 0.0
        self._rejected: dict[tuple[frozenset, bool], Measured] = {}
        self._counted_amounts: dict[frozenset, float] = {}
        self.reused = 0

    # -- helpers --------------------------------------------------------------------------

    def _say(self, message: str) -> None:
        if self.hooks.progress:
            self.hooks.progress(message)

    def _drop(self, metric: float | None) -> float | None:
        if metric is None or self.original.metric is None:
            return None
        if self.settings.higher_is_better:
            return self.original.metric - metric
        return metric - self.original.metric

    def _fits(self, metric: float | None) -> bool:
        drop = self._drop(metric)
        return drop is None or drop <= self.settings.max_drop + 1e-9

    def _measure(self, removed: frozenset[int], quick: bool = False) -> Measured:
        """The candidate ``removed`` built and measured; a removed set already measured and
        not kept (a halving that lands on an earlier failed step, a diagnosis of the same
        group) is answered from memory without its model: the build and the metric are
        deterministic, so the second measurement would repeat the first."""
        known = self._rejected.get((removed, quick))
        if known is not None:
            self.reused += 1
            return known
        build = self.hooks.build_quick if quick and self.hooks.build_quick else self.hooks.build
        model = build(removed)
        macs, params = self.hooks.count(model)
        metric = self.hooks.metric(model, quick)
        latency = (
            self.hooks.latency(model)
            if self.settings.time_steps and self.hooks.latency and not quick
            else None
        )
        measured = Measured(removed, model, macs, self.macs_of(removed), params, metric, latency)
        if quick:
            self._rejected[(removed, quick)] = dataclasses.replace(measured, model=None)
        return measured

    def _amount(self, units: list[RemovalUnit]) -> float:
        return sum(u.amount(self.settings.measure) for u in units)

    def _counted(self, removed: frozenset) -> float:
        """``hooks.removed_amount(removed)``, remembered per removed set."""
        if removed not in self._counted_amounts:
            self._counted_amounts[removed] = float(self.hooks.removed_amount(removed))
        return self._counted_amounts[removed]

    def _take(self, amount: float) -> list[RemovalUnit]:
        """The next units of the ranking worth ``amount`` of the measure on top of the kept
        state: the shortest reaching prefix of the available units (:meth:`_prefix`), or a
        selection that overshoots ``amount`` less when that prefix overshoots it by more than
        ``fit_tolerance × whole`` (:func:`closer_prefix`)."""
        removed = set(self.best.removed)
        available = self.schedule.available(removed, self.protected)
        units = self._prefix(available, removed, amount)
        tolerance = self.settings.fit_tolerance * self.settings.whole
        if not units or len(units) >= len(available) or tolerance <= 0:
            return units
        if self.hooks.removed_amount is None:
            return closer_prefix(available, len(units), amount, self._amount, tolerance)
        base = self._counted(frozenset(removed))

        def counted(selection: list[RemovalUnit]) -> float:
            items = {c for u in selection for c in u.items}
            return self._counted(frozenset(removed | items)) - base

        return closer_prefix(
            available, len(units), amount, counted, tolerance, upper_estimate=self._amount
        )

    def _prefix(
        self, available: list[RemovalUnit], removed: set, amount: float
    ) -> list[RemovalUnit]:
        """The shortest prefix of ``available`` worth ``amount``: by the units' estimates
        (:func:`estimated_prefix`), or, with ``removed_amount``, by the *counted* amount
        (bisection: removing more never counts less); all of them when none reaches it."""
        units = estimated_prefix(available, amount, self.settings.measure)
        if self.hooks.removed_amount is None or not units:
            return units
        base = self._counted(frozenset(removed))

        def reaches(count: int) -> bool:
            items = {c for u in available[:count] for c in u.items}
            return self._counted(frozenset(removed | items)) - base >= amount * (1 - 1e-9)

        low, high = 1, len(available)  # the answer lies in [low, high]
        if reaches(len(units)):
            high = len(units)
        else:
            low = len(units) + 1
            if low > high or not reaches(high):
                return available
        while low < high:
            middle = (low + high) // 2
            if reaches(middle):
                high = middle
            else:
                low = middle + 1
        return available[:low]

    def _attempt(
        self, step: int, attempt: int, kind: str, units: list[RemovalUnit]
    ) -> tuple[bool, Measured]:
        """Measure best ∪ units; keep it when it fits the guard; record either way."""
        started = time.perf_counter()
        removed = frozenset(self.best.removed | {c for u in units for c in u.items})
        candidate = self._measure(removed)
        kept = self._fits(candidate.metric)
        drop = self._drop(candidate.metric)
        reason = (
            None
            if kept
            else f"drop {drop:.4g} > guard {self.settings.max_drop:.4g}"
            if drop is not None
            else "metric failed"
        )
        self.records.append(
            StepRecord(
                index=len(self.records) + 1,
                step=step,
                attempt=attempt,
                kind=kind,
                status=STEP_KEPT if kept else STEP_ROLLED_BACK,
                macs=int(candidate.macs),
                macs_estimated=int(candidate.macs_estimated),
                params=int(candidate.params),
                metric=candidate.metric,
                drop=drop,
                removed_clusters=sum(1 for item in removed if item_kind(item) == CHANNELS),
                removed_items=_count_kinds(removed),
                groups_changed=sorted({self.group_names[u.group] for u in units}),
                protected_groups=sorted(self.group_names[g] for g in self.protected),
                latency_ms=candidate.latency_ms,
                reason=reason,
                seconds=time.perf_counter() - started,
            )
        )
        metric_text = "-" if candidate.metric is None else f"{candidate.metric:.4g}"
        self._say(
            f"step {step}.{attempt} ({kind}): MACs {candidate.macs:,}, metric {metric_text}, "
            + ("kept" if kept else "rolled back")
            + (
                " (same removal as an earlier attempt, not rebuilt)"
                if candidate.model is None
                else ""
            )
        )
        if kept:
            self.best = candidate
            if self.hooks.removed_amount is not None:
                self._estimated = self._counted(candidate.removed)
            else:
                self._estimated += self._amount(units)
        else:
            self._rejected[(removed, False)] = dataclasses.replace(candidate, model=None)
        return kept, candidate

    def _sensitivity(self, units: list[RemovalUnit]) -> dict[int, float]:
        """Metric drop of each group of a failed step removed alone on top of the kept state
        (quick metric, built without repair: this ranks groups, it decides nothing); the groups
        with the largest share of the step first, at most ``max_sensitivity_groups`` measured,
        the rest get 0."""
        per_group: dict[int, list[RemovalUnit]] = {}
        for unit in units:
            per_group.setdefault(unit.group, []).append(unit)
        ranked = sorted(per_group, key=lambda g: -self._amount(per_group[g]))
        drops: dict[int, float] = {}
        for position, group in enumerate(ranked):
            if position >= self.settings.max_sensitivity_groups:
                drops[group] = 0.0
                continue
            removed = frozenset(self.best.removed | {c for u in per_group[group] for c in u.items})
            metric = self._measure(removed, quick=True).metric
            drop = self._drop(metric)
            drops[group] = math.inf if drop is None and metric is None else (drop or 0.0)
            self.sensitivity[group] = max(self.sensitivity.get(group, -math.inf), drops[group])
        return drops

    # -- the loop -------------------------------------------------------------------------

    def _step(self, step: int, amount: float, kind: str = "full") -> str:
        """One planned increment with its retries: 'kept', 'failed' or 'exhausted'."""
        attempt = 0
        first_failed: list[RemovalUnit] | None = None
        for halving in range(self.settings.max_halvings + 1):
            units = self._take(amount / 2**halving)
            if not units:
                return "exhausted" if first_failed is None else "failed"
            attempt += 1
            kept, _ = self._attempt(step, attempt, kind if halving == 0 else "halved", units)
            if kept:
                return "kept"
            first_failed = first_failed or units
            if len(units) == 1:
                break  # cannot halve a single unit
        assert first_failed is not None
        drops = self._sensitivity(first_failed)
        ranked = sorted(drops, key=lambda g: -drops[g])
        for round_ in range(1, self.settings.protect_rounds + 1):
            worst = {g for g in ranked if drops[g] > self.settings.max_drop}
            share = ranked[
                : max(1, math.ceil(len(ranked) * round_ / (self.settings.protect_rounds + 1)))
            ]
            newly = (worst | set(share)) - self.protected
            if not newly:
                continue
            self.protected |= newly
            self._say("protected: " + ", ".join(sorted(self.group_names[g] for g in newly)))
            units = self._take(amount)
            if not units:
                return "failed"
            attempt += 1
            kept, _ = self._attempt(step, attempt, "protected", units)
            if kept:
                return "kept"
        return "failed"

    def run(self) -> LoopOutcome:
        """Walk the planned steps, then correct toward the measured target."""
        settings = self.settings
        step = 0
        for step in range(1, settings.steps + 1):
            goal = settings.total * step / settings.steps - self._estimated
            if goal <= 0:
                continue
            result = self._step(step, goal)
            if result == "failed":
                return self._stop(STATUS_GUARD_NOT_MET, self._guard_reason())
            if result == "exhausted":
                break
        for _ in range(settings.max_corrections + 1):
            gap = self.hooks.gap(self.best)
            if gap <= 0:
                return self._stop(STATUS_OK, None)
            if not self.schedule.available(set(self.best.removed), self.protected):
                return self._stop(STATUS_TARGET_NOT_REACHED, self._exhausted_reason())
            if _ == settings.max_corrections:
                break
            step += 1
            result = self._step(step, gap, "correction")
            if result == "failed":
                return self._stop(STATUS_GUARD_NOT_MET, self._guard_reason())
            if result == "exhausted":
                return self._stop(STATUS_TARGET_NOT_REACHED, self._exhausted_reason())
        return self._stop(STATUS_TARGET_NOT_REACHED, "target not reached after corrections")

    def _exhausted_reason(self) -> str:
        """Why the loop ran out of units: none left, or none from the start (every channel
        group blocked: the analysis, not the guard, stopped it)."""
        if self.records:
            return "no prunable units left"
        return (
            "nothing to prune: the plan has no prunable unit (for channels, "
            "'onnxprune inspect MODEL --groups' shows why each group is blocked)"
        )

    def _guard_reason(self) -> str:
        return (
            f"no step fits the guard (threshold {self.settings.max_drop:.4g}) "
            "even halved and with sensitive groups protected"
        )

    def _stop(self, status: str, reason: str | None) -> LoopOutcome:
        return LoopOutcome(
            status, reason, self.best, self.records, set(self.protected), dict(self.sensitivity)
        )
