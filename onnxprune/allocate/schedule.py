"""The removal order of iterative pruning: a global ranking of removal units.

A *unit* is the smallest set of clusters of one group that can go at once: with ``round_to``
the kept channel count of a group must stay a multiple of ``round_to``, so a unit spans the
clusters between two allowed kept counts. Within a group clusters go lowest score first;
across groups units are ranked by their mean score after normalising scores per group (each
group's free clusters divided by their mean), so wide layers do not dominate. A group never
loses more than ``max_ratio`` of its clusters (or its ``ratio_for`` cap) and keeps at least one.

Iterative pruning takes a prefix of this order, step by step; rolling a step back drops its
units from the removed set, and protecting a group drops its units from the order.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from onnxprune.analysis import ChannelAnalysis, ChannelGroup
from onnxprune.errors import InputError

MEASURES = ("macs", "params", "clusters")


@dataclass(frozen=True)
class RemovalUnit:
    """Items of one group removed together, with their estimated savings.

    ``items`` are plan items (:mod:`onnxprune.pipeline.plan`): cluster ids for channel units,
    ``(kind, ...)`` tuples for other kinds. ``group`` is the key units are protected and
    reported by (a channel group's index, or a kind's own hashable key); a group's units are
    taken in order. ``score``: lower goes first. ``extra`` holds savings in measures other than
    MACs, parameters and items (e.g. ``("weights", n)`` for zeroed weights).
    """

    group: Hashable
    items: tuple[Hashable, ...]
    score: float
    macs: float
    params: float
    kind: str = "channels"
    extra: tuple[tuple[str, float], ...] = ()

    @property
    def clusters(self) -> tuple[Hashable, ...]:
        """The channel kind's name for ``items``."""
        return self.items

    def amount(self, measure: str) -> float:
        """Estimated savings in ``measure`` (``macs``, ``params``, ``clusters``/``items`` or a
        name in ``extra``; 0 for a measure the unit does not save)."""
        if measure == "macs":
            return self.macs
        if measure == "params":
            return self.params
        if measure in ("clusters", "items"):
            return float(len(self.items))
        return float(dict(self.extra).get(measure, 0.0))


def cluster_params(analysis: ChannelAnalysis) -> np.ndarray:
    """Parameters removed with each cluster: Σ over distinct sliced (constant, axis) of
    ``constant.size / constant.shape[axis]`` per labelled position of the cluster."""
    from onnxprune.analysis.graph_view import GraphView

    view = GraphView(analysis.model)
    removed = np.zeros(analysis.n_clusters, dtype=np.float64)
    seen: set[tuple[str, int]] = set()
    for request in analysis.slices:
        key = (request.constant, request.axis)
        shape = view.constant_shape(request.constant)
        if key in seen or not shape:
            continue
        seen.add(key)
        per_position = math.prod(shape) / shape[request.axis]
        labels = np.asarray(request.labels).reshape(-1)
        valid = labels >= 0
        np.add.at(removed, analysis.component_of[labels[valid]], per_position)
    return removed


def _matches(group: ChannelGroup, patterns) -> bool:
    return any(fnmatch.fnmatch(s, p) for s in group.sources for p in patterns)


def group_cap(
    group: ChannelGroup, max_ratio: float, ratio_for: dict[str, float] | None = None
) -> int:
    """Most clusters ``group`` may lose: floor(cap × size), cap = its ratio_for entry or
    ``max_ratio``; never all clusters and never a blocked one."""
    cap_ratio = max_ratio
    for pattern, value in (ratio_for or {}).items():
        if _matches(group, [pattern]):
            cap_ratio = value
            break
    return max(0, min(math.floor(cap_ratio * group.size), group.size - 1, group.free))


def _allowed_kept_counts(group: ChannelGroup, cap: int, round_to: int) -> list[int]:
    """Kept counts below ``size`` reachable by removal, largest first, each a multiple of
    ``round_to / gcd(round_to, width)`` clusters (so kept channels are multiples of round_to)."""
    step = round_to // math.gcd(round_to, group.width)
    lowest = group.size - cap
    first = (group.size - 1) // step * step
    return [k for k in range(first, lowest - 1, -step) if k >= 1]


def group_units(
    group: ChannelGroup,
    normalized: np.ndarray,
    cluster_macs: np.ndarray,
    params: np.ndarray,
    cap: int,
    round_to: int,
) -> list[RemovalUnit]:
    """Units of one group, lowest normalised score first."""
    free = group.clusters[~group.blocked]
    order = free[np.argsort(normalized[free], kind="stable")]
    units = []
    removed_so_far = 0
    for kept in _allowed_kept_counts(group, cap, round_to):
        take = order[removed_so_far : group.size - kept]
        removed_so_far = group.size - kept
        if not take.size:
            continue
        units.append(
            RemovalUnit(
                group=group.index,
                items=tuple(int(c) for c in take),
                score=float(normalized[take].mean()),
                macs=float(cluster_macs[take].sum()),
                params=float(params[take].sum()),
            )
        )
    return units


def normalize_scores(analysis: ChannelAnalysis, scores: np.ndarray) -> np.ndarray:
    """Scores divided by the mean score of their group's free clusters (when positive)."""
    normalized = np.asarray(scores, dtype=np.float64).copy()
    for group in analysis.groups:
        free = group.clusters[~group.blocked]
        if free.size:
            mean = float(normalized[free].mean())
            if mean > 0:
                normalized[group.clusters] = normalized[group.clusters] / mean
    return normalized


def removal_order(
    analysis: ChannelAnalysis,
    scores: np.ndarray,
    *,
    max_ratio: float = 0.8,
    round_to: int = 1,
    ignore: list[str] | tuple[str, ...] = (),
    ratio_for: dict[str, float] | None = None,
) -> list[RemovalUnit]:
    """All removal units of the prunable, non-ignored groups in global ranking order."""
    if not 0.0 <= max_ratio < 1.0:
        raise InputError(f"max-ratio must be in [0, 1), got {max_ratio}")
    for pattern, value in (ratio_for or {}).items():
        if not 0.0 <= value < 1.0:
            raise InputError(f"ratio-for {pattern}: ratio must be in [0, 1), got {value}")
    if round_to < 1:
        raise InputError(f"round-to must be >= 1, got {round_to}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (analysis.n_clusters,):
        raise InputError(
            f"criterion returned {scores.shape} scores, expected ({analysis.n_clusters},)"
        )
    normalized = normalize_scores(analysis, scores)
    cluster_macs = np.zeros(analysis.n_clusters)
    for group in analysis.groups:
        if group.macs_per_cluster is not None:
            cluster_macs[group.clusters] = group.macs_per_cluster
    params = cluster_params(analysis)
    units: list[tuple[float, int, int, RemovalUnit]] = []
    for group in analysis.groups:
        if not group.prunable or _matches(group, ignore):
            continue
        cap = group_cap(group, max_ratio, ratio_for)
        for position, unit in enumerate(
            group_units(group, normalized, cluster_macs, params, cap, round_to)
        ):
            units.append((unit.score, group.index, position, unit))
    # Scores within a group are sorted, so unit means never decrease along a group: sorting
    # by (score, group, position) keeps every group's units in their own order.
    units.sort(key=lambda item: item[:3])
    return [unit for *_, unit in units]


def uniform_order(analysis: ChannelAnalysis, units: list[RemovalUnit]) -> list[RemovalUnit]:
    """The same units re-ordered so that every prefix prunes all groups to about the same share:
    by the share of its group removed once the unit is gone (ties: lower score, then group),
    each group's units staying in their own order."""
    sizes = {g.index: g.size for g in analysis.groups}
    done: dict[int, int] = {}
    keyed = []
    for position, unit in enumerate(units):
        done[unit.group] = done.get(unit.group, 0) + len(unit.clusters)
        keyed.append((done[unit.group] / sizes[unit.group], unit.score, unit.group, position, unit))
    keyed.sort(key=lambda item: item[:4])
    return [item[-1] for item in keyed]


def estimated_prefix(units: list[RemovalUnit], amount: float, measure: str) -> list[RemovalUnit]:
    """The shortest prefix of ``units`` whose summed estimated ``measure`` reaches ``amount``
    (all of them when none does)."""
    picked: list[RemovalUnit] = []
    total = 0.0
    for unit in units:
        if total >= amount:
            break
        picked.append(unit)
        total += unit.amount(measure)
    return picked


def closer_prefix(
    units: list[RemovalUnit],
    count: int,
    amount: float,
    amount_of: Callable[[list[RemovalUnit]], float],
    tolerance: float,
    max_evaluations: int = 16,
    upper_estimate: Callable[[list[RemovalUnit]], float] | None = None,
) -> list[RemovalUnit]:
    """A selection from the ranking ``units`` that removes at least ``amount`` and overshoots
    it less than the shortest reaching prefix P = ``units[:count]`` does, when one exists.

    The last unit u of P can carry far more than the step still needs (a level of a wide group,
    a stem convolution at full resolution: a 30 % cut asked, 45 % removed). With overshoot
    o(S) = amount_of(S) − amount and o(P) > ``tolerance``, the walk keeps P minus u, leaves u's
    group out and goes on down the ranking: each next unit of a group not left out joins the
    selection S while o(S) < 0; a unit with which o(S ∪ {unit}) >= 0 is a candidate — the walk
    stops at the first candidate with o <= ``tolerance``, else leaves that unit's group out too
    and goes on (a group's units go in order, so a group left out stays out). Returns the
    candidate or P with the smallest o, ties to P (the cheaper units); P itself when no
    candidate reaches ``amount``. ``amount_of`` (counted or estimated) is called at most
    ``max_evaluations`` times beyond P's own; ``upper_estimate`` (optional) bounds it from
    above cheaply (the units' summed estimates, which count a convolution's saving on both
    sides): a trial whose bound stays under ``amount`` joins without a call. A subset of what
    :meth:`Schedule.available` allows never breaks a group's minimum keep."""
    prefix = units[:count]
    if not prefix or count >= len(units):
        return prefix
    best, best_over = prefix, amount_of(prefix) - amount
    if best_over <= tolerance:
        return prefix
    selection = list(prefix[:-1])
    left_out = {prefix[-1].group}
    evaluations = 0
    for unit in units[count:]:
        if unit.group in left_out:
            continue
        if evaluations >= max_evaluations:
            break
        trial = [*selection, unit]
        if upper_estimate is not None and upper_estimate(trial) < amount:
            selection = trial
            continue
        over = amount_of(trial) - amount
        evaluations += 1
        if over < -1e-9 * max(abs(amount), 1.0):
            selection = trial
            continue
        if over < best_over:
            best, best_over = trial, over
        if over <= tolerance:
            break
        left_out.add(unit.group)
    return best


class Schedule:
    """Picks the next units of the ranking for a step (see module docstring)."""

    def __init__(self, analysis: ChannelAnalysis, units: list[RemovalUnit]) -> None:
        self.analysis = analysis
        self.units = units
        self._min_keep = [set(int(c) for c in clusters) for clusters in analysis.min_keep]

    def _violates_min_keep(self, removed: set, unit: RemovalUnit) -> bool:
        if unit.kind != "channels":
            return False
        after = removed | set(unit.items)
        return any(keep and keep <= after for keep in self._min_keep)

    def available(self, removed: set[int], protected: set[int]) -> list[RemovalUnit]:
        """Units not yet removed, of unprotected groups, in ranking order; a group's units
        after one that cannot go (Split/Slice piece would be emptied) are dropped too."""
        stuck: set[int] = set(protected)
        result = []
        trial = set(removed)
        for unit in self.units:
            if unit.group in stuck or set(unit.items) <= removed:
                continue
            if self._violates_min_keep(trial, unit):
                stuck.add(unit.group)
                continue
            trial.update(unit.items)
            result.append(unit)
        return result

    def take(
        self, removed: set[int], amount: float, measure: str, protected: set[int]
    ) -> list[RemovalUnit]:
        """The next units whose summed estimated ``measure`` first reaches ``amount``."""
        return estimated_prefix(self.available(removed, protected), amount, measure)

    def remaining(self, removed: set[int], measure: str, protected: set[int]) -> float:
        """Estimated ``measure`` still removable."""
        return sum(u.amount(measure) for u in self.available(removed, protected))
