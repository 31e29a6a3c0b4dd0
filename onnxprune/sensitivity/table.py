"""The sensitivity table: per group, the measured drop at each removal ratio.

Interpolation contract (:meth:`GroupSensitivity.drop_at`): the drop of removing ``k`` clusters
is read off the piecewise-linear curve through (0, 0) and the measured points, made
non-decreasing (running maximum: removing more never counts as helping); beyond the last
measured point it continues with the slope of the last segment (never negative).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class SensitivityPoint:
    """One measurement: ``removed`` clusters of a group at the requested ``ratio``."""

    ratio: float
    removed: int
    macs: float  # estimated MACs removed (analysis units)
    params: float  # parameters removed
    drop: float  # metric drop against the original outputs


@dataclass
class GroupSensitivity:
    """The measured curve of one prunable group."""

    index: int
    name: str
    sources: list[str]
    size: int
    width: int
    removable: int  # clusters the group can lose (free, never all, Split pieces kept)
    points: list[SensitivityPoint] = field(default_factory=list)
    order: list[int] = field(default_factory=list)  # cluster ids in removal order
    order_scores: list[float] = field(default_factory=list)  # their scores / group mean

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(removed counts, non-decreasing drops) including the origin, counts increasing."""
        counts = [0.0] + [float(p.removed) for p in self.points]
        drops = [0.0] + [max(float(p.drop), 0.0) for p in self.points]
        order = np.argsort(counts, kind="stable")
        counts_arr, drops_arr = np.asarray(counts)[order], np.asarray(drops)[order]
        unique, first = np.unique(counts_arr, return_index=True)
        merged = np.maximum.reduceat(drops_arr, first)
        return unique, np.maximum.accumulate(merged)

    def drop_at(self, removed: float) -> float:
        """Interpolated drop when ``removed`` clusters go (module contract)."""
        counts, drops = self.curve()
        if removed <= counts[-1] or len(counts) < 2:
            return float(np.interp(removed, counts, drops))
        slope = (drops[-1] - drops[-2]) / max(counts[-1] - counts[-2], 1e-12)
        return float(drops[-1] + max(slope, 0.0) * (removed - counts[-1]))

    @property
    def worst(self) -> float:
        """Largest measured drop."""
        return max((p.drop for p in self.points), default=0.0)


@dataclass
class SensitivityTable:
    """Result of :func:`onnxprune.sensitivity.measure_sensitivity`."""

    metric: str
    criterion: str
    ratios: list[float]
    samples: int
    total_macs: float
    groups: list[GroupSensitivity]
    recovered: bool = False
    seconds: float = 0.0
    runs: int = 0
    suffix_runs: int = 0  # runs of the changed part only (see sensitivity.suffix)

    def group(self, index: int) -> GroupSensitivity | None:
        """The entry of analysis group ``index`` (None when it was not measured)."""
        return next((g for g in self.groups if g.index == index), None)

    def ranked(self) -> list[GroupSensitivity]:
        """Groups most sensitive first (by mean measured drop, then group index)."""
        return sorted(self.groups, key=lambda g: (-self._score(g), g.index))

    def _score(self, group: GroupSensitivity) -> float:
        return float(np.mean([p.drop for p in group.points])) if group.points else 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SensitivityTable:
        groups = [
            GroupSensitivity(
                **{k: v for k, v in g.items() if k != "points"},
                points=[SensitivityPoint(**p) for p in g["points"]],
            )
            for g in data["groups"]
        ]
        return cls(**{**data, "groups": groups})

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load_json(cls, path: str | Path) -> SensitivityTable:
        return cls.from_dict(json.loads(Path(path).read_text()))
