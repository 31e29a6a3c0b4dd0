"""Walk the graph with the op rules and turn what they recorded into groups.

Contract: ``analyze(model, input_shapes)`` never edits ``model``; it returns a
:class:`ChannelAnalysis` whose groups list every prunable unit and every blocked one with its
reason. Applying any subset of free clusters with :func:`onnxprune.rewrite.apply_removal`
gives a valid model equal (mask equivalence) to the original whose consumers of the removed
channels read zeros.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from onnx import ModelProto
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from onnxprune.analysis import rules  # noqa: F401 - registers the op rules
from onnxprune.analysis.context import ROLE_IN, ROLE_OUT, AnalysisContext, MaskEdge, SliceRequest
from onnxprune.analysis.graph_view import GraphView, ensure_node_names
from onnxprune.analysis.groups import ChannelGroup
from onnxprune.analysis.labels import cluster_varying_axes, varying_axes
from onnxprune.analysis.macs import node_macs
from onnxprune.analysis.measured import measure_missing_shapes
from onnxprune.analysis.registry import lookup
from onnxprune.analysis.rules.layout import kept_along
from onnxprune.analysis.rules.shape_taint import TAINT_RULES
from onnxprune.errors import InputError
from onnxprune.graph.shapes import fix_input_shapes, infer_shapes, without_large_initializers


@dataclass
class ChannelAnalysis:
    """Result of the dependency analysis of one model (see module docstring)."""

    model: ModelProto  # the analysed model, with unique node names
    component_of: np.ndarray  # atom -> cluster id
    groups: list[ChannelGroup]
    slices: list[SliceRequest]
    fixups: list
    mask_edges: list[MaskEdge]
    min_keep: list[np.ndarray]  # clusters: at least one of each list must stay
    atom_source: list[tuple[str, int]]
    node_macs: dict[str, int]
    total_macs: int
    notes: list[str] = field(default_factory=list)
    #: notes on layers the analysis leaves whole (quantized layers, control flow): why a
    #: model may have nothing to prune
    uncovered: list[str] = field(default_factory=list)
    shrinking: list[tuple[str, np.ndarray]] = field(default_factory=list)

    @property
    def n_clusters(self) -> int:
        return int(self.component_of.max()) + 1 if self.component_of.size else 0

    def keep_fn(self, removed_clusters):
        """A function mapping a label array to its keep mask for the given removed clusters."""
        keep_cluster = np.ones(self.n_clusters, dtype=bool)
        keep_cluster[np.asarray(list(removed_clusters), dtype=np.int64)] = False
        component_of = self.component_of

        def keep(labels: np.ndarray) -> np.ndarray:
            labels = np.asarray(labels)
            mask = np.ones(labels.shape, dtype=bool)
            atoms = labels >= 0
            mask[atoms] = keep_cluster[component_of[labels[atoms]]]
            return mask

        return keep

    def prunable_macs(self) -> int:
        """MACs of Conv/Gemm/MatMul layers that lose work when some free group shrinks:
        layers slicing a weight for a free cluster, and activation MatMuls (attention scores
        and context) whose operands carry one."""
        nodes = set()
        free_clusters = {
            int(c) for g in self.groups for c, b in zip(g.clusters, g.blocked, strict=True) if not b
        }
        for request in self.slices:
            if request.role in (ROLE_IN, ROLE_OUT):
                atoms = request.labels[request.labels >= 0]
                if any(int(self.component_of[a]) in free_clusters for a in np.unique(atoms)):
                    nodes.add(request.node)
        for node, atoms in self.shrinking:
            if any(int(self.component_of[a]) in free_clusters for a in atoms):
                nodes.add(node)
        return sum(self.node_macs.get(n, 0) for n in nodes)


def analyze(
    model: ModelProto,
    input_shapes: dict[str, list[int]] | None = None,
    *,
    measure_shapes: bool = True,
    feeds: Mapping[str, np.ndarray] | None = None,
    allow_norm_stats: bool = True,
    allow_output_change: bool = False,
    head_dim: bool = False,
) -> ChannelAnalysis:
    """Run every op rule over ``model`` (preprocessed: weights as initializers, BN fused).

    Shapes come from ONNX inference at ``input_shapes`` (other dynamic dims 1); where it
    leaves some unknown and ``measure_shapes`` is on, the model runs once in ONNX Runtime on
    ``feeds`` (at those shapes; default valid random inputs) and the measured shapes fill the
    gaps (:mod:`onnxprune.graph.measured_shapes`); ``notes`` says so.

    ``allow_norm_stats``: channels that feed LayerNorm/GroupNorm statistics (a transformer's
    residual stream) may be pruned — valid, not mask-equivalent (``stats_coupled``), to be
    repaired by recovery and judged by the guard; off, such clusters are blocked.
    ``allow_output_change``: channels that reach a graph output may be pruned, so the output's
    width changes (an embedding model's hidden size); off (default), they are blocked.
    """
    named = ModelProto()
    named.CopyFrom(model)
    ensure_node_names(named)
    static = infer_shapes(fix_input_shapes(without_large_initializers(named), input_shapes))
    view = GraphView(named, static)
    notes = measure_missing_shapes(named, view, input_shapes, feeds) if measure_shapes else []
    ctx = AnalysisContext(view, head_dim=head_dim)
    for node in view.nodes:
        if any(name in ctx.taints for name in node.inputs):
            taint_rule = TAINT_RULES.get(node.op_type)
            if taint_rule is None or not taint_rule(node, ctx):
                ctx.block_inputs(node, "shape computation reads the channel count")
            continue
        rule = lookup(node.op_type, node.domain, view.opset)
        if rule is None:
            if any(ctx.labels_of(n) is not None for n in {*node.inputs, *node.subgraph_inputs}):
                kind = (
                    "subgraph op"
                    if node.subgraph_inputs or node.op_type in ("If", "Loop", "Scan")
                    else "op"
                )
                ctx.block_inputs(
                    node,
                    f"no channel rule for {kind} {node.domain + '.' if node.domain else ''}{node.op_type}",
                )
            continue
        rule(node, ctx)
    if not allow_output_change:
        for output in view.graph_outputs:
            ctx.block(ctx.labels_of(output), f"reaches graph output '{output}'")
    else:
        changed = [name for name in view.graph_outputs if ctx.labels_of(name) is not None]
        for name in changed:
            _resize_output(ctx, view, name)
        if changed:
            notes.append(f"output width may change (allowed): {', '.join(changed)}")
    if not allow_norm_stats:
        for atoms, reason in ctx.stats_coupled:
            ctx.block(atoms, f"{reason} would change (not allowed: allow_norm_stats)")
    _check_shared_constants(ctx)
    uncovered = _control_flow_notes(named) + _quantized_notes(named) + _layout_notes(named)
    analysis = _finalize(named, view, ctx)
    analysis.notes.extend(notes + uncovered)
    analysis.uncovered.extend(uncovered)
    return analysis


#: what attention loses when it is pruned (``attention_unit`` of prune/optimize)
ATTENTION_UNITS = ("head", "head_dim")


def attention_head_dim(unit: str) -> bool:
    """``analyze``'s ``head_dim`` for an attention unit: ``head`` — whole heads go (each head's
    q, k, v and output rows together); ``head_dim`` — every head keeps the same positions of
    its head dimension (all heads stay, each narrower). InputError for another name."""
    if unit not in ATTENTION_UNITS:
        raise InputError(
            f"attention unit must be one of {', '.join(ATTENTION_UNITS)}, got '{unit}'"
        )
    return unit == "head_dim"


WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
QUANTIZED_OPS = (
    "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul", "DynamicQuantizeLinear",
    "QuantizeLinear", "DequantizeLinear",
)  # fmt: skip


def _quantized_notes(model: ModelProto) -> list[str]:
    """A note when the main graph holds quantized ops: their layers have no channel rule (or
    read weights through DequantizeLinear), so they stay whole; prune the float model, then
    quantize."""
    found = sorted({node.op_type for node in model.graph.node if node.op_type in QUANTIZED_OPS})
    if not found:
        return []
    return [
        f"quantized graph ({', '.join(found)}): its quantized layers are not pruned; prune the "
        "float model, then quantize it"
    ]


#: ONNX Runtime's blocked-channel layout (level ``all`` on x86 CPUs), machine-specific
NCHWC_DOMAIN = "com.microsoft.nchwc"


def _layout_notes(model: ModelProto) -> list[str]:
    """A note when the main graph holds ONNX Runtime's NCHWc ops: a model saved at
    optimization level ``all`` on an x86 CPU, whose Conv weights are stored in blocks of
    channels for that machine. Their layers are neither counted nor pruned; the note says
    which file to give instead."""
    count = sum(1 for node in model.graph.node if node.domain == NCHWC_DOMAIN)
    if not count:
        return []
    return [
        f"{count} node(s) in ONNX Runtime's machine-specific NCHWc layout ({NCHWC_DOMAIN}: a "
        "model saved at optimization level 'all'): their layers are neither counted nor "
        "pruned; give the original export, or one saved at level 'extended'"
    ]


def _control_flow_notes(model: ModelProto) -> list[str]:
    """A note when weight layers sit inside If/Loop/Scan bodies: the analysis reads the main
    graph only, so their channels stay whole (a model whose work is all inside control flow
    has nothing prunable, and the user should know why)."""
    counts: dict[str, int] = {}

    def visit(graph, owner: str | None) -> None:
        for node in graph.node:
            if owner is not None and node.op_type in WEIGHT_OPS:
                counts[owner] = counts.get(owner, 0) + 1
            for attribute in node.attribute:
                bodies = [attribute.g] if attribute.HasField("g") else list(attribute.graphs)
                for body in bodies:
                    visit(body, owner or node.op_type)

    visit(model.graph, None)
    if not counts:
        return []
    where = ", ".join(f"{count} under {op}" for op, count in sorted(counts.items()))
    return [
        f"{sum(counts.values())} Conv/Gemm/MatMul layer(s) inside control flow ({where}) are "
        "not analysed: their channels are never pruned"
    ]


def _resize_output(ctx: AnalysisContext, view: GraphView, name: str) -> None:
    """Fixup: the declared dims of graph output ``name`` along its channel axes become the
    kept counts (its producer node owns the fixup)."""
    labels = ctx.labels_of(name)
    producer = view.producer.get(name)
    if producer is None:
        return
    counters = {axis: kept_along(labels, axis) for axis in varying_axes(labels)}

    def resize(editor, keep) -> None:
        tensor = editor.tensors[name]
        if tensor.shape is None:
            return
        shape = list(tensor.shape)
        for axis, count in counters.items():
            if axis < len(shape) and isinstance(shape[axis], int):
                shape[axis] = count(keep)
        tensor.shape = shape

    ctx.add_fixup(producer, resize)


def _check_shared_constants(ctx: AnalysisContext) -> None:
    """A constant sliced for one node must be sliced the same way for every node using it."""
    by_constant: dict[str, dict[int, list[SliceRequest]]] = defaultdict(lambda: defaultdict(list))
    for request in ctx.slices:
        by_constant[request.constant][request.axis].append(request)
    for constant, per_axis in by_constant.items():
        users = {node.name for node in ctx.view.consumers.get(constant, [])}
        for _axis, requests in per_axis.items():
            requesting = {r.node for r in requests}
            lengths = {len(r.labels) for r in requests}
            if requesting != users or len(lengths) != 1:
                for request in requests:
                    ctx.block(
                        request.labels,
                        f"weight '{constant}' is shared by nodes with conflicting roles",
                    )
                continue
            for request in requests[1:]:
                ctx.union(requests[0].labels, request.labels, f"shared weight '{constant}'")


def _components(unions: list[tuple[np.ndarray, np.ndarray]], n_atoms: int) -> np.ndarray:
    """Cluster id of every atom: connected components of the union pairs."""
    if unions:
        rows = np.concatenate([a for a, _ in unions])
        cols = np.concatenate([b for _, b in unions])
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
    adjacency = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_atoms, n_atoms))
    _, component_of = connected_components(adjacency, directed=False)
    return component_of.astype(np.int64)


def _finalize(model: ModelProto, view: GraphView, ctx: AnalysisContext) -> ChannelAnalysis:
    n_atoms = len(ctx.atoms)
    component_of = _components(ctx.unions, n_atoms)
    for tie in ctx.slab_ties:  # in graph order: a tie upstream can make one downstream whole
        if len(cluster_varying_axes(tie.labels, component_of)) > 1:
            for axis in tie.tied_axes():
                ctx.tie_slabs(tie.labels, axis, tie.reason)
            component_of = _components(ctx.unions, n_atoms)
    for check in ctx.post_checks:
        for labels, reason in check(component_of):
            ctx.block(labels, reason)
    n_clusters = int(component_of.max()) + 1 if n_atoms else 0
    reasons: dict[int, list[str]] = defaultdict(list)
    for atoms, reason in ctx.blocks:
        for cluster in np.unique(component_of[atoms]):
            if reason not in reasons[int(cluster)]:
                reasons[int(cluster)].append(reason)
    stats = np.zeros(n_clusters, dtype=bool)
    for atoms, _ in ctx.stats_coupled:
        stats[component_of[atoms]] = True
    macs = {node.name: node_macs(node, view) for node in view.nodes}
    cluster_macs = _cluster_macs(ctx, component_of, n_clusters, view, macs)
    groups = _build_groups(ctx, component_of, n_clusters, reasons, stats, cluster_macs)
    min_keep = [np.unique(component_of[atoms]) for atoms in ctx.min_keep]
    return ChannelAnalysis(
        model=model,
        component_of=component_of,
        groups=groups,
        slices=ctx.slices,
        fixups=ctx.fixups,
        mask_edges=ctx.mask_edges,
        min_keep=min_keep,
        atom_source=list(zip(ctx.atoms.source_node, ctx.atoms.source_channel, strict=True)),
        node_macs=macs,
        total_macs=int(sum(macs.values())),
        shrinking=ctx.shrinking,
    )


def _cluster_macs(ctx, component_of, n_clusters, view, macs) -> np.ndarray:
    """MACs removed with each cluster: weight elements it slices × the layer's MACs per element."""
    removed = np.zeros(n_clusters, dtype=np.float64)
    for request in ctx.slices:
        if request.role not in (ROLE_IN, ROLE_OUT) or not macs.get(request.node):
            continue
        weight = view.constant(request.constant)
        per_position = weight.size / weight.shape[request.axis]
        labels = request.labels
        valid = labels >= 0
        np.add.at(
            removed, component_of[labels[valid]], per_position * macs[request.node] / weight.size
        )
    return removed


def _build_groups(
    ctx, component_of, n_clusters, reasons, stats, cluster_macs
) -> list[ChannelGroup]:
    source_names, source_index = np.unique(
        np.array(ctx.atoms.source_node, dtype=object), return_inverse=True
    )
    cluster_sources: dict[int, set[str]] = defaultdict(set)
    pairs = (
        np.unique(np.stack([component_of, source_index.reshape(-1)], axis=1), axis=0)
        if len(component_of)
        else np.zeros((0, 2), dtype=np.int64)
    )
    for cluster, source in pairs:
        cluster_sources[int(cluster)].add(str(source_names[source]))
    first_atom = np.full(n_clusters, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_atom, component_of, np.arange(len(component_of), dtype=np.int64))
    by_key: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for cluster in range(n_clusters):
        by_key[tuple(sorted(cluster_sources[cluster]))].append(cluster)
    members: dict[tuple[str, ...], set[str]] = defaultdict(set)
    width: dict[int, int] = {}
    for request in ctx.slices:
        labels = request.labels[request.labels >= 0]
        if not labels.size:
            continue
        clusters = component_of[labels]
        key = tuple(sorted(cluster_sources[int(clusters[0])]))
        members[key].add(f"{request.node}:{request.constant}[{request.axis}]")
        if request.role == ROLE_OUT and request.node in key:
            counts = np.bincount(clusters, minlength=n_clusters)
            for cluster in np.unique(clusters):
                width.setdefault(int(cluster), int(counts[cluster]))
    groups = []
    for key, clusters in sorted(by_key.items(), key=lambda item: first_atom[item[1][0]]):
        ordered = np.array(sorted(clusters, key=lambda c: first_atom[c]), dtype=np.int64)
        blocked = np.array([bool(reasons.get(int(c))) for c in ordered])
        group_reasons = sorted({r for c in ordered for r in reasons.get(int(c), [])})
        groups.append(
            ChannelGroup(
                index=len(groups),
                sources=list(key),
                clusters=ordered,
                blocked=blocked,
                reasons=group_reasons,
                width=width.get(int(ordered[0]), 1),
                stats_coupled=bool(stats[ordered].any()),
                members=sorted(members.get(key, set())),
                macs_per_cluster=cluster_macs[ordered],
            )
        )
    return groups
