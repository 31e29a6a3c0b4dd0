"""How many clusters each group keeps, and which ones.

Contract: ``select_removal(analysis, scores, policy)`` returns cluster ids to remove such that
no blocked cluster is removed, no ignored group shrinks, every group keeps at least one cluster
and at least one cluster of every Split/Slice piece, and (where possible) every group's kept
channel count in its source layer is a multiple of ``round_to``.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field

import numpy as np

from onnxprune.analysis import ChannelAnalysis, ChannelGroup
from onnxprune.errors import InputError


@dataclass
class AllocationPolicy:
    """Options of the allocation step (mirrors the ``prune`` CLI flags)."""

    ratio: float = 0.3
    global_ranking: bool = False
    max_ratio: float = 0.8
    round_to: int = 1
    ignore: list[str] = field(default_factory=list)
    ratio_for: dict[str, float] = field(default_factory=dict)

    def validate(self) -> None:
        for name, value in [
            ("ratio", self.ratio),
            ("max-ratio", self.max_ratio),
            *self.ratio_for.items(),
        ]:
            if not 0.0 <= value < 1.0:
                raise InputError(f"{name} must be in [0, 1), got {value}")
        if self.round_to < 1:
            raise InputError(f"round-to must be >= 1, got {self.round_to}")

    def ignored(self, group: ChannelGroup) -> bool:
        return any(fnmatch.fnmatch(s, pattern) for s in group.sources for pattern in self.ignore)

    def ratio_of(self, group: ChannelGroup) -> float:
        for pattern, value in self.ratio_for.items():
            if any(fnmatch.fnmatch(s, pattern) for s in group.sources):
                return value
        return self.ratio


def _round_keep(group: ChannelGroup, keep: int, round_to: int) -> int:
    """Smallest count >= keep whose channel total (keep × width) is a multiple of round_to."""
    step = round_to // math.gcd(round_to, group.width)
    rounded = -(-keep // step) * step
    return min(max(rounded, 1), group.size)


def _pick(group: ChannelGroup, scores: np.ndarray, count: int) -> list[int]:
    free = group.clusters[~group.blocked]
    order = np.argsort(scores[free], kind="stable")
    return [int(c) for c in free[order[:count]]]


def select_removal(
    analysis: ChannelAnalysis, scores: np.ndarray, policy: AllocationPolicy
) -> set[int]:
    """Cluster ids to remove (see module contract)."""
    policy.validate()
    eligible = [g for g in analysis.groups if g.prunable and not policy.ignored(g)]
    removal: dict[int, int] = {}
    if policy.global_ranking:
        removal = _global_counts(eligible, scores, policy)
    else:
        for group in eligible:
            removal[group.index] = group.size - _round_keep(
                group, group.size - math.floor(policy.ratio_of(group) * group.size), policy.round_to
            )
    removed: set[int] = set()
    for group in eligible:
        count = min(removal.get(group.index, 0), group.free, group.size - 1)
        if count > 0:
            removed.update(_pick(group, scores, count))
    return _respect_min_keep(analysis, scores, removed)


def _global_counts(
    groups: list[ChannelGroup], scores: np.ndarray, policy: AllocationPolicy
) -> dict[int, int]:
    """Rank all free clusters together by score; remove the lowest ``ratio`` of all clusters,
    no group losing more than ``max_ratio`` of its clusters; then round each group's kept count."""
    total = sum(g.size for g in groups)
    target = math.floor(policy.ratio * total)
    entries = sorted(
        (float(scores[c]), g.index, g.size) for g in groups for c in g.clusters[~g.blocked]
    )
    counts: dict[int, int] = {g.index: 0 for g in groups}
    removed = 0
    for _, index, size in entries:
        if removed >= target:
            break
        if counts[index] + 1 <= min(math.floor(policy.max_ratio * size), size - 1):
            counts[index] += 1
            removed += 1
    by_index = {g.index: g for g in groups}
    return {
        index: by_index[index].size
        - _round_keep(by_index[index], by_index[index].size - count, policy.round_to)
        for index, count in counts.items()
    }


def _respect_min_keep(analysis: ChannelAnalysis, scores: np.ndarray, removed: set[int]) -> set[int]:
    """Put back the best cluster of any Split/Slice piece that would lose all of its channels."""
    for clusters in analysis.min_keep:
        if clusters.size and all(int(c) in removed for c in clusters):
            removed.discard(int(clusters[np.argmax(scores[clusters])]))
    return removed
