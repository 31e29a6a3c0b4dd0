"""Shape constants that must follow the channel count (Reshape targets, Expand and Resize sizes).

A shape input is editable when it is a constant, or a Concat (axis 0) of 1-D pieces in which
every entry to change lies in a constant piece — the TorchScript pattern
``Concat(Unsqueeze(Gather(Shape(x), 0)), [h], [d])`` keeps a dynamic batch next to constant
channel sizes. Entries equal to -1 or 0 (infer / copy) need no change.

A run-time piece that *copies* dimensions of a tensor — ``Shape(x)`` (with start/end),
``Slice(Shape(x), s, e)``, ``Gather(Shape(x), i)`` or ``Unsqueeze(Gather(Shape(x), i), 0)``,
as the dynamo exporter writes for decomposed attention — needs no edit either when ``x``
carries the same channels along the copied axis as the entry's axis: its value follows the
pruning at run time. "The same channels" is checked per index of the axis (the set of labels
in each slab), so the kept counts agree for every removal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from onnxprune.analysis.context import AnalysisContext, KeepFn
from onnxprune.analysis.graph_view import NodeView

CountFn = Callable[[KeepFn], int]


@dataclass
class ShapePiece:
    owner: str  # node whose input holds this piece
    input_index: int
    start: int  # first entry of the full shape vector covered by this piece
    values: list[int] | None  # None: computed at run time
    copies: list[tuple[str, int]] | None = None  # run time: (tensor, axis) read per entry
    length: int = 0  # entries covered (run-time pieces; constant pieces: len(values))


def shape_pieces(ctx: AnalysisContext, node: NodeView, input_index: int) -> list[ShapePiece] | None:
    """Decompose input ``input_index`` of ``node`` into pieces, or None when not analysable."""
    name = node.input(input_index)
    value = ctx.constant(name)
    if value is not None:
        return [ShapePiece(node.name, input_index, 0, [int(v) for v in value.reshape(-1)])]
    producer = ctx.view.producer.get(name)
    if producer is None or producer.op_type != "Concat" or int(producer.attrs.get("axis", 0)) != 0:
        return None
    pieces: list[ShapePiece] = []
    start = 0
    for index, piece_name in enumerate(producer.inputs):
        piece_value = ctx.constant(piece_name)
        if piece_value is not None:
            values = [int(v) for v in piece_value.reshape(-1)]
            pieces.append(ShapePiece(producer.name, index, start, values))
            start += len(values)
            continue
        shape = ctx.static_shape(piece_name)
        if shape is None or len(shape) != 1:
            return None
        copies = copied_dims(ctx, piece_name)
        pieces.append(ShapePiece(producer.name, index, start, None, copies, shape[0]))
        start += shape[0]
    return pieces


def _scalar(ctx: AnalysisContext, name: str) -> int | None:
    value = ctx.constant(name)
    return None if value is None or value.size != 1 else int(value.reshape(-1)[0])


def _shape_of(ctx: AnalysisContext, name: str) -> tuple[str, list[int]] | None:
    """``(x, axes)`` when ``name`` is ``Shape(x)`` (start/end attributes applied)."""
    node = ctx.view.producer.get(name)
    rank = None if node is None or node.op_type != "Shape" else ctx.rank(node.input(0))
    if rank is None:
        return None
    start = int(node.attrs.get("start", 0))
    end = int(node.attrs.get("end", rank))
    start, end = (v + rank if v < 0 else v for v in (start, end))
    return node.input(0), list(range(max(0, start), min(end, rank)))


_MAX_COPY_DEPTH = 8  # Gather/Slice compositions followed


def copied_dims(ctx: AnalysisContext, name: str, depth: int = 0) -> list[tuple[str, int]] | None:
    """Per entry of the 1-D tensor ``name``, the ``(tensor, axis)`` whose run-time size it
    copies, or None when ``name`` is not such a copy (see the module docstring). Gather and
    Slice compose: ONNX Runtime's transpose optimizer writes ``Shape(Transpose(x))`` as
    ``Gather(Shape(x), perm)``, which a Slice then cuts."""
    direct = _shape_of(ctx, name)
    if direct is not None:
        return [(direct[0], axis) for axis in direct[1]]
    node = ctx.view.producer.get(name)
    if node is None or depth >= _MAX_COPY_DEPTH:
        return None
    if node.op_type == "Unsqueeze":
        axes = ctx.constant(node.input(1)) if node.input(1) else node.attrs.get("axes")
        if axes is None or list(np.asarray(axes).reshape(-1)) != [0]:
            return None
        inner = ctx.view.producer.get(node.input(0))
        if inner is None or inner.op_type != "Gather":
            return None
        node = inner
    if node.op_type == "Gather" and int(node.attrs.get("axis", 0)) == 0:
        source = copied_dims(ctx, node.input(0), depth + 1)
        indices = ctx.constant(node.input(1))
        if source is None or indices is None:
            return None
        picked = [int(i) for i in indices.reshape(-1)]
        if any(not -len(source) <= i < len(source) for i in picked):
            return None
        return [source[i] for i in picked]
    if node.op_type == "Slice":
        source = copied_dims(ctx, node.input(0), depth + 1)
        start, end = _scalar(ctx, node.input(1)), _scalar(ctx, node.input(2))
        axis = _scalar(ctx, node.input(3)) if node.input(3) else 0
        step = _scalar(ctx, node.input(4)) if node.input(4) else 1
        if source is None or start is None or end is None or axis not in (0, -1) or step != 1:
            return None
        return source[slice(start, end)]
    return None


def _slabs(labels: np.ndarray, axis: int) -> list[frozenset]:
    """The set of labels in each index of ``axis`` (size-1 axes: one slab)."""
    return [
        frozenset(np.unique(labels.take([i], axis=axis)).tolist())
        for i in range(labels.shape[axis])
    ]


def follows_channels(
    ctx: AnalysisContext, copy: tuple[str, int], labels: np.ndarray, axis: int
) -> bool:
    """True when the size of ``copy`` = (tensor, axis) is the kept count of ``labels`` along
    ``axis`` for every removal: the same label set in every slab of both axes."""
    tensor, source_axis = copy
    source = ctx.labels_of(tensor)
    if source is None or source.ndim <= source_axis or labels.ndim <= axis:
        return False
    if source.shape[source_axis] != labels.shape[axis] or labels.shape[axis] == 1:
        return False
    return _slabs(source, source_axis) == _slabs(labels, axis)


def set_shape_entries(
    ctx: AnalysisContext,
    node: NodeView,
    input_index: int,
    positions: list[int],
    vector: np.ndarray | None = None,
    *,
    counts: dict[int, CountFn] | None = None,
    keep_minus_one: bool = True,
    labels: np.ndarray | None = None,
    infer_one: bool = False,
) -> bool:
    """Register a fixup setting shape entries at ``positions`` to the kept channel counts.

    Each position's new value is ``counts[position](keep)`` or, by default, the number of kept
    entries of ``vector``. Returns False when an entry to change is computed at run time,
    unless it copies the run-time size of a tensor whose channels along that axis are the
    ones of ``labels`` (the output labels, axis = position) — see :func:`follows_channels` —
    or, with ``infer_one`` (a Reshape target), it is the one such entry and can become -1
    (see :func:`_inferable`).
    """
    pieces = shape_pieces(ctx, node, input_index)
    if pieces is None:
        return False
    counts = dict(counts or {})
    for position in positions:
        counts.setdefault(position, lambda keep, v=vector: int(keep(v).sum()))
    edits: dict[int, list[tuple[int, CountFn]]] = {}
    inferred: int | None = None
    for position, count in counts.items():
        piece_index = _piece_at(pieces, position)
        if piece_index is None:
            return False
        piece = pieces[piece_index]
        if piece.values is None:
            copies = piece.copies
            offset = position - piece.start
            if (
                labels is not None
                and copies is not None
                and offset < len(copies)
                and follows_channels(ctx, copies[offset], labels, position)
            ):
                continue
            if infer_one and inferred is None and _inferable(pieces, piece_index):
                inferred = piece_index
                continue
            return False
        original = piece.values[position - piece.start]
        if keep_minus_one and original in (-1, 0):
            continue
        edits.setdefault(piece_index, []).append((position - piece.start, count))
    if inferred is not None:
        edits[inferred] = [(0, lambda keep: -1)]
    if not edits:
        return True

    def apply(editor, keep: KeepFn) -> None:
        owner = None
        for piece_index, entries in edits.items():
            piece = pieces[piece_index]
            values = np.array(piece.values if piece.values is not None else [0], dtype=np.int64)
            for offset, count in entries:
                values[offset] = count(keep)
            if piece.owner != node.name and owner is None:  # a Concat other nodes may read
                owner = editor.private_producer(node.name, input_index)
            editor.replace_constant_input(
                node.name if piece.owner == node.name else owner, piece.input_index, values
            )

    ctx.add_fixup(node, apply)
    return True


def _inferable(pieces: list[ShapePiece], piece_index: int) -> bool:
    """A Reshape target entry computed at run time (``Mul(Gather(Shape(x), 1), heads)``, the
    batch × heads entry of ``nn.MultiheadAttention``) may be replaced by -1 — "infer from the
    element count" — when it is a single entry, no constant piece holds -1 or 0, and every
    other run-time piece copies tensor sizes (never -1). The other entries then fix the
    element count, so -1 resolves to the kept value at run time for every non-empty input
    (an empty tensor leaves -1 undefined; the caller also requires ``allowzero`` 0 or a
    target without 0)."""
    if pieces[piece_index].length != 1:
        return False
    for index, other in enumerate(pieces):
        if index == piece_index:
            continue
        if other.values is None and other.copies is None:
            return False
        if other.values is not None and ({-1, 0} & set(other.values)):
            return False
    return True


def _piece_at(pieces: list[ShapePiece], position: int) -> int | None:
    for index, piece in enumerate(pieces):
        length = len(piece.values) if piece.values is not None else None
        if position >= piece.start and (length is None or position < piece.start + length):
            if length is None and index + 1 < len(pieces) and position >= pieces[index + 1].start:
                continue
            return index
    return None


def constant_shape_source(ctx: AnalysisContext, name: str) -> tuple[str, NodeView] | None:
    """When ``name`` is ``Expand(constant, shape)`` or ``Tile(constant, repeats)`` (DETR's
    query embeddings repeated over the batch), return the constant and that node."""
    producer = ctx.view.producer.get(name)
    if producer is None or producer.op_type not in ("Expand", "Tile"):
        return None
    source = producer.input(0)
    if ctx.weight_shape(source) is None:
        return None
    return source, producer
