"""Channel groups: the units allocation ranks and rewrite removes.

After all rules ran, atoms joined by unions form *clusters* (connected components): a cluster
is removed or kept as a whole. Clusters whose atoms come from the same set of source layers
form a *group* (the residual stream of a stage, one conv's filters, the heads of one attention
block); allocation decides how many clusters each group keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ChannelGroup:
    """One group of coupled channels.

    Attributes:
        index: position in ``ChannelAnalysis.groups``.
        sources: layers whose output channels define the group (Conv/Gemm/MatMul names).
        clusters: component ids, one per removable unit, in source-channel order.
        blocked: per cluster, whether it must stay; ``reasons`` says why.
        width: channels each cluster occupies in the source layer's output (1, or head_dim).
        stats_coupled: channels feed LayerNorm/GroupNorm statistics (not mask-equivalent).
        members: "node:constant[axis]" strings of everything sliced with the group.
        macs_per_cluster: estimated MACs removed with one cluster.
    """

    index: int
    sources: list[str]
    clusters: np.ndarray
    blocked: np.ndarray
    reasons: list[str] = field(default_factory=list)
    width: int = 1
    stats_coupled: bool = False
    members: list[str] = field(default_factory=list)
    macs_per_cluster: np.ndarray | None = None

    @property
    def name(self) -> str:
        first = self.sources[0] if self.sources else f"group{self.index}"
        return first if len(self.sources) == 1 else f"{first} (+{len(self.sources) - 1})"

    @property
    def size(self) -> int:
        return len(self.clusters)

    @property
    def prunable(self) -> bool:
        """At least two clusters, one of them free (a group never drops below one cluster)."""
        return self.size > 1 and not bool(self.blocked.all())

    @property
    def free(self) -> int:
        return int((~self.blocked).sum())

    def removed_channels(self, removed_clusters) -> list[int]:
        """Output channels of the source layers (their original numbering) that the removal of
        ``removed_clusters`` takes away: cluster j occupies channels [j·width, (j+1)·width)."""
        removed = (
            removed_clusters
            if isinstance(removed_clusters, set | frozenset)
            else {int(c) for c in removed_clusters}
        )
        return [
            position * self.width + offset
            for position, cluster in enumerate(self.clusters)
            if int(cluster) in removed
            for offset in range(self.width)
        ]

    @property
    def macs(self) -> float:
        return 0.0 if self.macs_per_cluster is None else float(self.macs_per_cluster.sum())
