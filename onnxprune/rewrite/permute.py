"""Reorder the channels of coupled groups without changing what the model computes.

Contract: ``permute_channels(analysis, sources)`` returns a copy of the analysed model in which,
for every cluster ``c`` in ``sources``, the channel positions that held cluster ``c`` now hold
what cluster ``sources[c]`` held. ``sources`` must be a bijection on each group it touches
(every cluster maps to a cluster of the same group, each target used once). Every constant the
analysis slices for those clusters — producer rows (``out``), consumer columns (``in``), per
channel parameters (``param``) — is gathered along its channel axis with the same map, so each
tensor between them carries the same values in a new order and the graph outputs are unchanged
(up to float rounding of reordered sums).

Per slice request with label vector ``L`` (clusters by position along the sliced axis), the
gather index is ``idx = arange(n)`` with ``idx[P(c)] = P(sources[c])``, where ``P(c)`` lists
the positions of cluster ``c`` in ``L`` in increasing order. This holds for any position map
between tensors that the labels describe (concatenation offsets, channel shuffles, C×H×W
flattening: each cluster's block moves whole).

A group can be reordered only when nothing position-dependent escapes the slices
(:func:`permutation_blockers`): no blocked cluster (graph outputs, unknown ops), one channel per
cluster, no Split/Slice piece (``min_keep``), no dynamic consumer (mask edges, shrinking
activation MatMuls), label vectors varying along one axis only, and the same number of
positions for every cluster of the group within one vector. Count-only fixups (depthwise
``group``, Reshape targets) need no change, since no count changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import numpy as np
import onnx_graphsurgeon as gs
from onnx import ModelProto

from onnxprune.analysis import ChannelAnalysis
from onnxprune.io.provenance import mark_made_by
from onnxprune.rewrite.apply import RewriteError, _copy_model_metadata
from onnxprune.rewrite.editor import GraphEditor


def _channel_vector(labels: np.ndarray) -> np.ndarray | None:
    """The labels as a 1-D vector along their one varying axis (None if several vary)."""
    varying = [axis for axis, size in enumerate(labels.shape) if size > 1]
    if len(varying) > 1:
        return None
    return labels.reshape(-1)


def _clusters_of(analysis: ChannelAnalysis, vector: np.ndarray) -> np.ndarray:
    clusters = np.full(vector.shape, -1, dtype=np.int64)
    atoms = vector >= 0
    clusters[atoms] = analysis.component_of[vector[atoms]]
    return clusters


def permutation_blockers(analysis: ChannelAnalysis) -> dict[int, str | None]:
    """Per group index: None when its channels may be reordered, else the reason why not."""
    group_of = np.full(analysis.n_clusters, -1, dtype=np.int64)
    reasons: dict[int, str | None] = {}
    for group in analysis.groups:
        group_of[group.clusters] = group.index
        if group.blocked.any():
            reasons[group.index] = "has blocked channels"
        elif group.width != 1:
            reasons[group.index] = "more than one channel per cluster"
        else:
            reasons[group.index] = None

    def block(clusters, reason: str) -> None:
        for g in np.unique(group_of[np.asarray(clusters, dtype=np.int64)]):
            if g >= 0 and reasons.get(int(g)) is None:
                reasons[int(g)] = reason

    for clusters in analysis.min_keep:
        block(clusters, "feeds a Split or Slice")
    for edge in analysis.mask_edges:
        labels = np.asarray(edge.labels)
        block(analysis.component_of[labels[labels >= 0]], "read by a dynamic consumer")
    for _, atoms in analysis.shrinking:
        atoms = np.asarray(atoms)
        block(analysis.component_of[atoms[atoms >= 0]], "read by a dynamic consumer")
    for request in analysis.slices:
        vector = _channel_vector(np.asarray(request.labels))
        if vector is None:
            labels = np.asarray(request.labels)
            block(analysis.component_of[labels[labels >= 0]], "channels spread over several axes")
            continue
        clusters = _clusters_of(analysis, vector)
        present = clusters[clusters >= 0]
        if not present.size:
            continue
        counts = np.bincount(present, minlength=analysis.n_clusters)
        for g in np.unique(group_of[present]):
            members = analysis.groups[int(g)].clusters
            seen = counts[members]
            if (seen > 0).any() and len(np.unique(seen)) > 1:
                block(members, "clusters appear unevenly in one tensor")
    return reasons


def _gather_index(clusters: np.ndarray, sources: Mapping[int, int]) -> np.ndarray | None:
    """``idx`` with ``idx[P(c)] = P(sources[c])`` (None when nothing moves in this vector)."""
    positions: dict[int, list[int]] = defaultdict(list)
    for position, cluster in enumerate(clusters.tolist()):
        if cluster >= 0:
            positions[cluster].append(position)
    index = np.arange(len(clusters))
    moved = False
    for target, source in sources.items():
        if target == source or target not in positions:
            continue
        if source not in positions or len(positions[source]) != len(positions[target]):
            raise RewriteError(f"cluster {source} cannot move to the place of cluster {target}")
        index[positions[target]] = positions[source]
        moved = True
    return index if moved else None


def permute_channels(analysis: ChannelAnalysis, sources: Mapping[int, int]) -> ModelProto:
    """A copy of the analysed model where cluster ``c``'s channels hold ``sources[c]``'s."""
    sources = {int(k): int(v) for k, v in sources.items() if int(k) != int(v)}
    if sorted(sources) != sorted(sources.values()):
        raise RewriteError("a channel permutation must map its clusters onto themselves")
    reasons = permutation_blockers(analysis)
    group_of = {int(c): g.index for g in analysis.groups for c in g.clusters}
    for target, source in sources.items():
        group = group_of.get(target)
        if group is None or group_of.get(source) != group:
            raise RewriteError(f"clusters {target} and {source} are not in one group")
        if reasons[group] is not None:
            raise RewriteError(f"group {group} cannot be reordered: {reasons[group]}")
    graph = gs.import_onnx(analysis.model)
    editor = GraphEditor(graph)
    indices: dict[tuple[str, int], np.ndarray] = {}
    for request in analysis.slices:
        vector = _channel_vector(np.asarray(request.labels))
        if vector is None:
            continue
        index = _gather_index(_clusters_of(analysis, vector), sources)
        if index is None:
            continue
        key = (request.constant, request.axis)
        previous = indices.get(key)
        if previous is not None and not np.array_equal(previous, index):
            raise RewriteError(f"inconsistent reorders of '{request.constant}' axis {request.axis}")
        indices[key] = index
    for (constant, axis), index in indices.items():
        editor.set_constant_value(
            constant, np.take(editor.constant_value(constant), index, axis=axis)
        )
    permuted = gs.export_onnx(graph, do_type_check=False)
    _copy_model_metadata(analysis.model, permuted)
    return mark_made_by(permuted, "rewrite")
