"""Rules for ops that join or cut tensors: Concat, Split, Slice, Gather."""

from __future__ import annotations

import numpy as np

from onnxprune.analysis.context import ROLE_OUT, AnalysisContext
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import FIXED, axis_labels, pad_rank, varying_axes, vector_along
from onnxprune.analysis.registry import register
from onnxprune.analysis.rules._common import constant_ints, normalize_axis
from onnxprune.analysis.rules.elementwise import unlabelled_operand
from onnxprune.analysis.rules.layout import kept_along


@register("Concat")
def concat(node: NodeView, ctx: AnalysisContext) -> None:
    """Concat(axis): along a channel axis labels are concatenated (offset index map; inputs
    without labels contribute FIXED positions); along another axis the inputs' channels are
    united position by position like an elementwise op."""
    names = [n for n in node.inputs if n]
    if all(ctx.labels_of(n) is None for n in names):
        return
    rank = ctx.rank(node.outputs[0])
    if rank is None:
        ctx.block_inputs(node, "Concat of unknown rank")
        return
    axis = normalize_axis(int(node.attrs.get("axis", 0)), rank)
    padded = {n: pad_rank(ctx.labels_of(n), rank) for n in names if ctx.labels_of(n) is not None}
    along = any(labels.shape[axis] > 1 for labels in padded.values())
    across = any(a != axis for labels in padded.values() for a in varying_axes(labels))
    if along and across:
        ctx.block_inputs(node, "Concat inputs carry channels on two axes")
        return
    if along:
        parts = []
        for name in names:
            shape = ctx.static_shape(name)
            if shape is None:
                ctx.block_inputs(node, "Concat input of unknown shape")
                return
            labels = padded.get(name)
            if labels is None:
                parts.append(np.full(shape[axis], FIXED, dtype=np.int64))
            else:
                parts.append(vector_along(labels, axis, shape[axis]))
        ctx.set_labels(node.outputs[0], axis_labels(rank, axis, np.concatenate(parts)))
        return
    arrays = list(padded.values())
    combined = np.broadcast_to(arrays[0], np.broadcast_shapes(*(a.shape for a in arrays)))
    for other in arrays[1:]:
        ctx.union(combined, other, f"Concat '{node.name}' joins channels with fixed ones")
        combined = np.maximum(combined, other)
    for name in names:
        if name not in padded:
            unlabelled_operand(node, ctx, name, combined, varying_axes(combined), rank)
    ctx.set_labels(node.outputs[0], combined)


def _split_sizes(node: NodeView, ctx: AnalysisContext, axis: int) -> list[int] | None:
    sizes = []
    for output in node.outputs:
        shape = ctx.static_shape(output)
        if shape is None:
            return None
        sizes.append(shape[axis])
    return sizes


@register("Split")
def split(node: NodeView, ctx: AnalysisContext) -> None:
    """Split(axis): along a channel axis each output takes its sub-range of labels, and the
    split sizes become the kept counts (written explicitly); every piece keeps >= 1 channel."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    axis = normalize_axis(int(node.attrs.get("axis", 0)), labels.ndim)
    if labels.shape[axis] == 1:
        for output in node.outputs:
            ctx.set_labels(output, labels)
        return
    sizes = _split_sizes(node, ctx, axis)
    if sizes is None or sum(sizes) != labels.shape[axis]:
        ctx.block(labels, f"Split '{node.name}' has unknown sizes")
        return
    pieces = np.split(labels, np.cumsum(sizes)[:-1], axis=axis)
    for output, piece in zip(node.outputs, pieces, strict=True):
        ctx.set_labels(output, piece)
        ctx.require_one_kept(piece)
    use_input = ctx.view.opset >= 13
    counts = [kept_along(piece, axis) for piece in pieces]

    def set_sizes(editor, keep, counts=counts, name=node.name) -> None:
        new_sizes = np.array([count(keep) for count in counts], dtype=np.int64)
        editor.remove_attr(name, "num_outputs")
        if use_input:
            editor.replace_constant_input(name, 1, new_sizes)
        else:
            editor.set_attr(name, "split", [int(s) for s in new_sizes])

    ctx.add_fixup(node, set_sizes)


@register("Slice", since=10)
def slice_(node: NodeView, ctx: AnalysisContext) -> None:
    """Slice with constant starts/ends/axes/steps: a channel axis keeps its sub-range of labels
    (step 1 only) and the bounds become positions among the kept indices of that axis."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    starts, ends = constant_ints(ctx, node.input(1)), constant_ints(ctx, node.input(2))
    axes = constant_ints(ctx, node.input(3)) if node.input(3) else None
    steps = constant_ints(ctx, node.input(4)) if node.input(4) else None
    dynamic = (node.input(3) and axes is None) or (node.input(4) and steps is None)
    if starts is None or ends is None or dynamic:
        ctx.block(labels, f"Slice '{node.name}' bounds computed at run time")
        return

    def write(editor, name: str, starts: list[int], ends: list[int]) -> None:
        editor.replace_constant_input(name, 1, np.array(starts, dtype=np.int64))
        editor.replace_constant_input(name, 2, np.array(ends, dtype=np.int64))

    _slice_labels(node, ctx, labels, (starts, ends, axes, steps), write)


@register("Slice", until=9)
def slice_attributes(node: NodeView, ctx: AnalysisContext) -> None:
    """Slice-1 (before opset 10): the same as :func:`slice_` with starts, ends and axes as
    attributes (no steps), written back as attributes."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    starts = [int(v) for v in node.attrs.get("starts", [])]
    ends = [int(v) for v in node.attrs.get("ends", [])]
    axes = node.attrs.get("axes")
    axes = [int(v) for v in axes] if axes is not None else None

    def write(editor, name: str, starts: list[int], ends: list[int]) -> None:
        editor.set_attr(name, "starts", [int(v) for v in starts])
        editor.set_attr(name, "ends", [int(v) for v in ends])

    _slice_labels(node, ctx, labels, (starts, ends, axes, None), write)


def _slice_labels(node: NodeView, ctx: AnalysisContext, labels, bounds, write) -> None:
    """Labels of a Slice with known ``bounds`` (starts, ends, axes or None, steps or None);
    ``write(editor, node name, starts, ends)`` stores the pruned bounds in the node's form."""
    starts, ends, axes, steps = bounds
    shape = ctx.static_shape(node.input(0))
    if shape is None:
        ctx.block(labels, f"Slice '{node.name}' bounds computed at run time")
        return
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    out = labels
    edits = []
    for index, (start, end, axis, step) in enumerate(zip(starts, ends, axes, steps, strict=True)):
        axis = normalize_axis(axis, labels.ndim)
        if labels.shape[axis] == 1:
            continue
        if step != 1:
            ctx.block(labels, f"Slice '{node.name}' steps through a channel axis")
            return
        dim = shape[axis]
        begin = min(max(start + dim if start < 0 else start, 0), dim)
        stop = min(max(end + dim if end < 0 else end, 0), dim)
        before = kept_along(np.take(out, np.arange(0, begin), axis=axis), axis)
        inside_labels = np.take(out, np.arange(begin, stop), axis=axis)
        ctx.require_one_kept(inside_labels)
        edits.append((index, before, kept_along(inside_labels, axis), begin))
        out = inside_labels

    if edits:

        def set_bounds(editor, keep, edits=edits, name=node.name, starts=starts, ends=ends) -> None:
            new_starts, new_ends = list(starts), list(ends)
            for index, before, inside, begin in edits:
                new_starts[index] = before(keep) if begin else 0
                new_ends[index] = new_starts[index] + inside(keep)
            write(editor, name, new_starts, new_ends)

        ctx.add_fixup(node, set_bounds)
    ctx.set_labels(node.outputs[0], out)


@register("Gather")
def gather(node: NodeView, ctx: AnalysisContext) -> None:
    """Gather(axis) along a non-channel axis: labels keep their axes (the gathered axis is
    replaced by the indices' axes). Along a channel axis see :func:`_gather_whole_parts`;
    any other gather along a channel axis blocks it."""
    labels = ctx.labels_of(node.input(0))
    if ctx.labels_of(node.input(1)) is not None:
        ctx.block_inputs(node, "channels used as gather indices")
        return
    if labels is None:
        _embedding_lookup(node, ctx)
        return
    axis = normalize_axis(int(node.attrs.get("axis", 0)), labels.ndim)
    if labels.shape[axis] > 1:
        if not _gather_whole_parts(node, ctx, labels, axis):
            ctx.block(labels, f"Gather '{node.name}' selects along a channel axis")
        return
    index_rank = ctx.rank(node.input(1))
    if index_rank is None:
        ctx.block(labels, f"Gather '{node.name}' indices of unknown rank")
        return
    shape = labels.shape[:axis] + (1,) * index_rank + labels.shape[axis + 1 :]
    ctx.set_labels(node.outputs[0], labels.reshape(shape))


def _gather_whole_parts(
    node: NodeView, ctx: AnalysisContext, labels: np.ndarray, axis: int
) -> bool:
    """Gather(x[P, ..., C], i, axis) with constant indices picks whole *parts* of a packed
    tensor: PyTorch's ``nn.MultiheadAttention`` computes q, k and v with one in-projection of
    3·E outputs, reshapes them to [..., 3, E] and picks part p with ``Gather(axis, p)``.

    Labels move like the data: ``out = labels.take(indices, axis)``. That index map stays valid
    only while the parts axis never shrinks, so channel c of every part is united with channel c
    of part 0 (the slabs along ``axis`` are pruned together): every part keeps the same
    positions of the other channel axis, and the parts axis keeps all P entries. Applies when
    the labels also vary along another axis (a part holds channels); returns False otherwise.
    """
    indices = ctx.constant(node.input(1))
    if indices is None or not np.issubdtype(indices.dtype, np.integer):
        return False
    if not any(a != axis for a in varying_axes(labels)):
        return False
    parts = labels.shape[axis]
    picked = np.asarray(indices, dtype=np.int64)
    if ((picked < -parts) | (picked >= parts)).any():
        return False
    first = labels.take([0], axis=axis)
    for part in range(1, parts):
        ctx.union(first, labels.take([part], axis=axis), f"Gather '{node.name}' packed parts")
    ctx.set_labels(
        node.outputs[0], np.take(labels, np.where(picked < 0, picked + parts, picked), axis=axis)
    )
    return True


def _embedding_lookup(node: NodeView, ctx: AnalysisContext) -> None:
    """Gather(table[V, H], ids, axis=0) with a constant float table and run-time ids (token,
    position and type embeddings): a *source* like a dense layer. Each of the H columns is a
    new atom written by table[:, h] (its rows are looked up, so slicing columns removes
    exactly those output channels); the output [*ids.shape, H] carries them on its last axis.
    """
    table = ctx.weight_shape(node.input(0))
    if table is None or len(table) != 2 or int(node.attrs.get("axis", 0)) not in (0, -2):
        return
    if ctx.weight_shape(node.input(1)) is not None or table[1] < 2:
        return
    if not np.issubdtype(ctx.view.constant_dtype(node.input(0)), np.floating):
        return
    out_rank = ctx.rank(node.outputs[0])
    if out_rank is None:
        return
    atoms = ctx.new_atoms(node, int(table[1]))
    ctx.request_slice(node.input(0), 1, atoms, node, ROLE_OUT)
    ctx.set_labels(node.outputs[0], axis_labels(out_rank, out_rank - 1, atoms))
