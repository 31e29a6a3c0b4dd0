"""Sensitivity-based allocation: which groups lose how many clusters to meet a target.

Model: removing ``k`` clusters of group g costs ``s_g(k)``, the interpolated measured drop
(:meth:`~onnxprune.sensitivity.table.GroupSensitivity.drop_at`), and saves ``a_g(k)`` of the
target's measure (estimated MACs, parameters or clusters of the first ``k`` clusters of the
group's removal order). Costs are assumed additive across groups. We want

    minimise Σ_g s_g(k_g)   subject to   Σ_g a_g(k_g) >= A,

each ``k_g`` an allowed level: kept count a multiple of ``round_to`` channels, at most the
group's ``max_ratio`` (or ``ratio_for``) cap, never below one cluster, protected groups at 0.

Greedy (``order``): every group's points (a_g(k), s_g(k)) over its allowed levels are replaced
by their lower convex hull; the price of a hull segment is its slope (drop per unit of
measure). Each step between two allowed levels becomes a removal unit carrying the price of
its segment. Units sorted by price (ties: lower criterion score first, then group and
position) give one global order in which every group's units stay in sequence; the prefixes
ending on segment ends are optimal for the convexified problem at their own amount (the
Lagrangian / rate-distortion argument), the others lie inside one segment. The guarded
optimize loop follows this order; :func:`allocate_by_sensitivity` takes its shortest prefix
reaching A.

Knapsack (``method="knapsack"``): the exact multiple-choice knapsack over all allowed levels
(not only hull points) by dynamic programming on amounts discretised into ``bins`` steps;
amounts are rounded down per group and A up, so a solution found always meets the target.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from onnxprune.allocate.schedule import (
    MEASURES,
    RemovalUnit,
    Schedule,
    _allowed_kept_counts,
    group_cap,
)
from onnxprune.analysis import ChannelAnalysis, ChannelGroup
from onnxprune.errors import InputError
from onnxprune.sensitivity.measure import cluster_amounts
from onnxprune.sensitivity.table import GroupSensitivity, SensitivityTable


@dataclass
class Allocation:
    """Result of :func:`allocate_by_sensitivity`."""

    removed: set[int]
    per_group: dict[int, int]  # group index -> clusters removed
    ratios: dict[str, float]  # group name -> share of its clusters removed
    amount: float  # estimated measure removed
    sensitivity: float  # Σ interpolated drops
    met: bool  # amount reached the requested one
    measure: str = "macs"
    units: list[RemovalUnit] = field(default_factory=list)


@dataclass
class _Levels:
    """Allowed removal levels of one group with their amounts and interpolated drops."""

    group: ChannelGroup
    entry: GroupSensitivity
    counts: list[int]  # removed clusters per level, starting at 0
    amounts: list[float]
    drops: list[float]
    macs: list[float]
    params: list[float]


def _protected(group: ChannelGroup, patterns) -> bool:
    return any(fnmatch.fnmatch(s, p) for s in group.sources for p in patterns)


def _check_entry(group: ChannelGroup, entry: GroupSensitivity) -> None:
    free = {int(c) for c in group.clusters[~group.blocked]}
    if entry.size != group.size or not set(entry.order) <= free:
        raise InputError(
            f"sensitivity table does not match the model: group {group.name} "
            f"({group.size} clusters; the table has {entry.size})"
        )


def group_levels(
    table: SensitivityTable,
    analysis: ChannelAnalysis,
    *,
    measure: str = "macs",
    round_to: int = 1,
    protected=(),
    max_ratio: float = 0.8,
    ratio_for: dict[str, float] | None = None,
    measured_only: bool = False,
) -> list[_Levels]:
    """Allowed levels of every measured, prunable, unprotected group (module docstring).
    ``measured_only``: no level beyond the group's largest measured removal (no
    extrapolation of the curve)."""
    if measure not in MEASURES:
        raise InputError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    if round_to < 1:
        raise InputError(f"round-to must be >= 1, got {round_to}")
    if not 0.0 <= max_ratio < 1.0:
        raise InputError(f"max-ratio must be in [0, 1), got {max_ratio}")
    macs, params = cluster_amounts(analysis)
    result = []
    for group in analysis.groups:
        entry = table.group(group.index)
        if entry is None or not group.prunable or _protected(group, protected):
            continue
        _check_entry(group, entry)
        cap = min(group_cap(group, max_ratio, ratio_for), len(entry.order))
        if measured_only:
            cap = min(cap, int(entry.curve()[0][-1]))
        counts = [0, *sorted(group.size - k for k in _allowed_kept_counts(group, cap, round_to))]
        counts = [c for c in counts if c <= cap]
        if len(counts) < 2:
            continue
        order = np.asarray(entry.order, dtype=np.int64)
        level_macs = [float(macs[order[:c]].sum()) for c in counts]
        level_params = [float(params[order[:c]].sum()) for c in counts]
        amounts = {"macs": level_macs, "params": level_params, "clusters": list(map(float, counts))}
        result.append(
            _Levels(
                group,
                entry,
                counts,
                amounts[measure],
                [entry.drop_at(c) for c in counts],
                level_macs,
                level_params,
            )
        )
    return result


def _lower_hull(amounts: list[float], drops: list[float]) -> list[int]:
    """Indices of the lower convex hull of the points, from the first (the origin) on,
    amounts strictly increasing; the last point is always kept."""
    hull: list[int] = [0]
    for i in range(1, len(amounts)):
        if amounts[i] <= amounts[hull[-1]]:
            continue
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (amounts[b] - amounts[a]) * (drops[i] - drops[a]) - (drops[b] - drops[a]) * (
                amounts[i] - amounts[a]
            )
            if cross > 0:
                break
            hull.pop()
        hull.append(i)
    return hull


def _units_of(levels: _Levels) -> list[tuple[float, float, RemovalUnit]]:
    """(price, tie-break score, unit) per allowed level step of one group; every step of a
    hull segment carries the segment's price (drop per unit of measure)."""
    hull = _lower_hull(levels.amounts, levels.drops)
    units = []
    for a, b in itertools.pairwise(hull):
        gain = levels.amounts[b] - levels.amounts[a]
        price = (levels.drops[b] - levels.drops[a]) / gain if gain > 0 else math.inf
        for lo, hi in itertools.pairwise(range(a, b + 1)):
            start, stop = levels.counts[lo], levels.counts[hi]
            scores = levels.entry.order_scores[start:stop]
            unit = RemovalUnit(
                group=levels.group.index,
                items=tuple(int(c) for c in levels.entry.order[start:stop]),
                score=price,
                macs=levels.macs[hi] - levels.macs[lo],
                params=levels.params[hi] - levels.params[lo],
            )
            units.append((price, float(np.mean(scores)) if scores else 0.0, unit))
    return units


def sensitivity_order(
    table: SensitivityTable,
    analysis: ChannelAnalysis,
    *,
    measure: str = "macs",
    round_to: int = 1,
    protected=(),
    max_ratio: float = 0.8,
    ratio_for: dict[str, float] | None = None,
    measured_only: bool = False,
) -> list[RemovalUnit]:
    """Removal units in increasing price (module docstring, greedy); ``unit.score`` is the
    price: interpolated drop per unit of ``measure``."""
    entries = []
    for levels in group_levels(
        table,
        analysis,
        measure=measure,
        round_to=round_to,
        protected=protected,
        max_ratio=max_ratio,
        ratio_for=ratio_for,
        measured_only=measured_only,
    ):
        for position, (price, tie, unit) in enumerate(_units_of(levels)):
            entries.append((price, tie, unit.group, position, unit))
    entries.sort(key=lambda item: item[:4])
    return [item[-1] for item in entries]


def _knapsack(levels: list[_Levels], amount: float, bins: int) -> dict[int, int] | None:
    """Level position per group (index in ``levels``) of the exact discretised solution, or
    None when the amount is out of reach. Cells count discretised amount, the last cell
    meaning "goal reached"; ties keep the smaller level."""
    total = sum(lv.amounts[-1] for lv in levels)
    if total <= 0 or amount > total * (1 + 1e-12):
        return None
    step = total / bins
    goal = max(min(math.ceil(amount / step - 1e-9), bins), 0)
    best = np.full(goal + 1, np.inf)
    best[0] = 0.0
    choices = []
    for lv in levels:
        new = np.full(goal + 1, np.inf)
        choice = np.zeros(goal + 1, dtype=np.int64)
        for position, (gain, drop) in enumerate(zip(lv.amounts, lv.drops, strict=True)):
            shift = min(math.floor(gain / step + 1e-9), goal)
            candidate = np.full(goal + 1, np.inf)
            origin = np.zeros(goal + 1, dtype=np.int64)
            candidate[shift:goal] = best[: goal - shift] + drop
            origin[shift:goal] = np.arange(goal - shift)
            tail = best[goal - shift :] + drop  # every cell from goal - shift on reaches goal
            origin[goal] = goal - shift + int(np.argmin(tail))
            candidate[goal] = tail.min()
            better = candidate < new - 1e-15
            new[better] = candidate[better]
            choice[better] = position * (goal + 1) + origin[better]
        choices.append(choice)
        best = new
    if not np.isfinite(best[goal]):
        return None
    picked: dict[int, int] = {}
    cell = goal
    for position in range(len(levels) - 1, -1, -1):
        picked[position], cell = divmod(int(choices[position][cell]), goal + 1)
    return picked


def allocate_by_sensitivity(
    table: SensitivityTable,
    analysis: ChannelAnalysis,
    amount: float,
    *,
    measure: str = "macs",
    round_to: int = 1,
    protected=(),
    max_ratio: float = 0.8,
    ratio_for: dict[str, float] | None = None,
    method: str = "greedy",
    bins: int = 1000,
    measured_only: bool = False,
) -> Allocation:
    """Per-group removal meeting ``amount`` of ``measure`` (estimated MACs in analysis units,
    parameters, or clusters) with the least summed interpolated sensitivity (module docstring).
    ``protected`` globs keep groups whole. When the target cannot be met, everything allowed
    is removed and ``met`` is False. ``measured_only``: never beyond a group's largest measured
    ratio."""
    options = dict(
        measure=measure,
        round_to=round_to,
        protected=protected,
        max_ratio=max_ratio,
        ratio_for=ratio_for,
        measured_only=measured_only,
    )
    if method == "greedy":
        units = Schedule(analysis, sensitivity_order(table, analysis, **options)).available(
            set(), set()
        )
        picked, total = [], 0.0
        for unit in units:
            if total >= amount:
                break
            picked.append(unit)
            total += unit.amount(measure)
    elif method == "knapsack":
        levels = group_levels(table, analysis, **options)
        chosen = _knapsack(levels, amount, bins)
        if chosen is None:  # unreachable: everything allowed
            chosen = {i: len(lv.counts) - 1 for i, lv in enumerate(levels)}
        picked = [
            RemovalUnit(
                lv.group.index,
                tuple(lv.entry.order[: lv.counts[chosen[i]]]),
                lv.drops[chosen[i]],
                lv.macs[chosen[i]],
                lv.params[chosen[i]],
            )
            for i, lv in enumerate(levels)
            if chosen[i] > 0
        ]
    else:
        raise InputError(f"method must be 'greedy' or 'knapsack', got {method!r}")
    return _summarize(table, analysis, picked, amount, measure)


def _summarize(table, analysis, units: list[RemovalUnit], amount, measure) -> Allocation:
    per_group: dict[int, int] = {}
    for unit in units:
        per_group[unit.group] = per_group.get(unit.group, 0) + len(unit.clusters)
    by_index = {g.index: g for g in analysis.groups}
    total = sum(u.amount(measure) for u in units)
    return Allocation(
        removed={c for u in units for c in u.clusters},
        per_group=per_group,
        ratios={by_index[i].name: n / by_index[i].size for i, n in per_group.items()},
        amount=total,
        sensitivity=sum(table.group(i).drop_at(n) for i, n in per_group.items()),
        met=total >= amount - 1e-9,
        measure=measure,
        units=units,
    )
