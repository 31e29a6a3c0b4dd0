"""Run only the part of a pruned model that pruning changed.

Pruning one group leaves every node upstream of its layers untouched, so their outputs equal
the original model's. :func:`changed_nodes` diffs the pruned model against the analysed one
(same node names: op, attributes, inputs, initializers compared by value); the *suffix* is
every node downstream of a changed node; its *boundary* is the set of tensors the suffix reads
but does not produce (graph inputs or outputs of unchanged nodes). With the boundary values
of the original model cached from the reference run, :func:`suffix_model` builds a model of
the suffix alone that takes the boundary tensors as inputs and gives the same outputs as the
whole pruned model. Whenever this does not apply (nodes added or removed, subgraphs, a graph
output outside the suffix, a boundary not cached) the callers run the whole model.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx
from onnx import ModelProto, helper

from onnxprune.analysis import ChannelAnalysis


def group_nodes(analysis: ChannelAnalysis) -> dict[int, set[str]]:
    """Group index -> names of the nodes whose constants or gated inputs the group slices."""
    cluster_group = np.full(analysis.n_clusters, -1, dtype=np.int64)
    for group in analysis.groups:
        cluster_group[group.clusters] = group.index
    nodes: dict[int, set[str]] = {g.index: set() for g in analysis.groups}
    for item in [*analysis.slices, *analysis.mask_edges]:
        labels = np.asarray(item.labels).reshape(-1)
        labels = labels[labels >= 0]
        for index in np.unique(cluster_group[analysis.component_of[labels]]):
            if index >= 0:
                nodes[int(index)].add(item.node)
    return nodes


def downstream(model: ModelProto, changed: Iterable[str]) -> list[onnx.NodeProto]:
    """Nodes of ``changed`` and every node reading (transitively) one of their outputs, in
    graph order (the graph is topologically sorted)."""
    changed = set(changed)
    dirty: set[str] = set()
    suffix = []
    for node in model.graph.node:
        if node.name in changed or any(i in dirty for i in node.input if i):
            suffix.append(node)
            dirty.update(o for o in node.output if o)
    return suffix


def boundary(model: ModelProto, suffix: list[onnx.NodeProto]) -> list[str]:
    """Tensors the suffix reads but neither produces nor holds as initializers, in order."""
    produced = {o for node in suffix for o in node.output}
    constants = {t.name for t in model.graph.initializer}
    names: list[str] = []
    for node in suffix:
        for name in node.input:
            if name and name not in produced and name not in constants and name not in names:
                names.append(name)
    return names


def _has_subgraph(node: onnx.NodeProto) -> bool:
    return any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute
    )


def _tensor_equal(a: onnx.TensorProto, b: onnx.TensorProto) -> bool:
    if list(a.dims) != list(b.dims) or a.data_type != b.data_type:
        return False
    if a.raw_data and b.raw_data:
        return a.raw_data == b.raw_data
    return bool(np.array_equal(onnx.numpy_helper.to_array(a), onnx.numpy_helper.to_array(b)))


def _same_input(new_name: str, old_name: str, new: dict, old: dict) -> bool:
    """Same tensor name, or two initializers (possibly renamed by a fixup) of equal value."""
    if new_name in new or old_name in old:
        return new_name in new and old_name in old and _tensor_equal(new[new_name], old[old_name])
    return new_name == old_name


def changed_nodes(original: ModelProto, pruned: ModelProto) -> set[str] | None:
    """Names of the nodes of ``pruned`` that differ from ``original`` (op, outputs, attributes,
    inputs; an initializer input counts by value, not name); None when the node sets differ."""
    before = {n.name: n for n in original.graph.node}
    if len(before) != len(original.graph.node) or {n.name for n in pruned.graph.node} != set(
        before
    ):
        return None
    old_constants = {t.name: t for t in original.graph.initializer}
    new_constants = {t.name: t for t in pruned.graph.initializer}
    changed: set[str] = set()
    for node in pruned.graph.node:
        old = before[node.name]
        same = (
            node.op_type == old.op_type
            and node.domain == old.domain
            and len(node.input) == len(old.input)
            and list(node.output) == list(old.output)
            and list(node.attribute) == list(old.attribute)
        )
        if same:
            same = all(
                _same_input(a, b, new_constants, old_constants)
                for a, b in zip(node.input, old.input, strict=True)
            )
        if not same:
            changed.add(node.name)
    return changed


def with_outputs(model: ModelProto, names: list[str]) -> ModelProto | None:
    """A copy of ``model`` that also outputs ``names`` (typed from its value_info or shape
    inference); None when a type cannot be found."""
    if not names:
        return model
    infos = {v.name: v for v in model.graph.value_info}
    if any(name not in infos for name in names):
        inferred = onnx.shape_inference.infer_shapes(model)
        infos.update({v.name: v for v in inferred.graph.value_info})
    extended = ModelProto()
    extended.CopyFrom(model)
    present = {o.name for o in extended.graph.output}
    for name in names:
        if name in present:
            continue
        info = infos.get(name)
        if info is None or not info.type.tensor_type.elem_type:
            return None
        extended.graph.output.append(
            helper.make_tensor_value_info(name, info.type.tensor_type.elem_type, None)
        )
    return extended


def suffix_model(pruned: ModelProto, changed: set[str], cached: dict[str, np.ndarray]):
    """(suffix model, its input names) or None when the whole model must run (module doc)."""
    suffix = downstream(pruned, changed)
    if not suffix or any(_has_subgraph(node) for node in suffix):
        return None
    produced = {o for node in suffix for o in node.output}
    if any(o.name not in produced for o in pruned.graph.output):
        return None
    names = boundary(pruned, suffix)
    if any(name not in cached for name in names):
        return None
    used = {name for node in suffix for name in node.input}
    inputs = [
        helper.make_tensor_value_info(
            name,
            helper.np_dtype_to_tensor_dtype(cached[name].dtype),
            ["samples", *cached[name].shape[1:]],
        )
        for name in names
    ]
    graph = helper.make_graph(
        list(suffix),
        pruned.graph.name,
        inputs,
        list(pruned.graph.output),
        [t for t in pruned.graph.initializer if t.name in used],
    )
    model = helper.make_model(graph, opset_imports=list(pruned.opset_import))
    model.ir_version = pruned.ir_version
    return model, names


def _per_sample_bytes(info: onnx.ValueInfoProto) -> int | None:
    """Bytes per sample of a tensor whose first dimension is symbolic and the rest static."""
    tensor_type = info.type.tensor_type
    if not tensor_type.elem_type or not tensor_type.HasField("shape"):
        return None
    dims = list(tensor_type.shape.dim)
    if (
        not dims
        or dims[0].HasField("dim_value")
        or not all(d.HasField("dim_value") for d in dims[1:])
    ):
        return None
    itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).itemsize
    return int(np.prod([d.dim_value for d in dims[1:]], dtype=np.int64)) * itemsize


def select_boundaries(
    analysis: ChannelAnalysis, group_indices: Iterable[int], budget_bytes: float, samples: int
) -> list[str]:
    """Boundary tensors worth caching from the reference run, within ``budget_bytes``.

    A group's points run as a suffix only when *every* boundary tensor of its suffix is cached
    (graph inputs need none; each needs a symbolic sample axis). Groups are taken whole, in
    decreasing order of MACs skipped per byte still to cache — the MACs upstream of the
    suffix, which the suffix run does not repeat, over the bytes of its boundary tensors not
    chosen yet for ``samples`` samples — while they fit. Deep groups (small tensors, most of
    the network upstream) come first; a group near the input saves little and costs much.
    (Before, tensors were taken one by one in group order: the first groups' large boundaries
    filled the budget; on the zoo ResNet-50 at 224 with 32 samples 32 of 148 points ran as
    suffixes and the table took 180 s, now 104 and 100 s: ``tools/bench_sensitivity_time.py``.)
    """
    model = analysis.model
    infos = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    skip = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
    nodes = group_nodes(analysis)
    node_macs = _node_macs(model)
    total = sum(node_macs.values())
    candidates: list[tuple[float, dict[str, int]]] = []
    for index in group_indices:
        suffix = downstream(model, nodes.get(index, ()))
        names = [name for name in boundary(model, suffix) if name not in skip]
        sizes = {name: _per_sample_bytes(infos[name]) if name in infos else None for name in names}
        if any(size is None for size in sizes.values()):
            continue  # a boundary that cannot be cached: this group always runs whole
        saved = total - sum(node_macs.get(node.name, 0) for node in suffix)
        candidates.append((float(saved), sizes))
    chosen: dict[str, None] = {}
    used = 0.0

    def still_to_cache(sizes: dict[str, int]) -> float:
        return float(sum(size * samples for name, size in sizes.items() if name not in chosen))

    while candidates:
        best = max(candidates, key=lambda item: item[0] / max(still_to_cache(item[1]), 1.0))
        candidates.remove(best)
        extra = still_to_cache(best[1])
        if used + extra <= budget_bytes:
            chosen.update(dict.fromkeys(best[1]))
            used += extra
    return list(chosen)


def _node_macs(model: ModelProto) -> dict[str, int]:
    """MACs per node name (Conv/Gemm/MatMul; {} when they cannot be counted)."""
    from onnxprune.stats import count_macs

    try:
        return dict(count_macs(model).per_node)
    except Exception:  # counting is best effort here: the selection only orders groups
        return {}
