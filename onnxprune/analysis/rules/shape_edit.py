"""Shape constants that must follow the channel count (Reshape targets, Expand and Resize sizes).

A shape input is editable when it is a constant, or a Concat (axis 0) of 1-D pieces in which
every entry to change lies in a constant piece — the TorchScript pattern
``Concat(Unsqueeze(Gather(Shape(x), 0)), [h], [d])`` keeps a dynamic batch next to constant
channel sizes. Entries equal to -1 or 0 (infer / copy) need no change.
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
        pieces.append(ShapePiece(producer.name, index, start, None))
        start += shape[0]
    return pieces


def set_shape_entries(
    ctx: AnalysisContext,
    node: NodeView,
    input_index: int,
    positions: list[int],
    vector: np.ndarray | None = None,
    *,
    counts: dict[int, CountFn] | None = None,
    keep_minus_one: bool = True,
) -> bool:
    """Register a fixup setting shape entries at ``positions`` to the kept channel counts.

    Each position's new value is ``counts[position](keep)`` or, by default, the number of kept
    entries of ``vector``. Returns False when an entry to change is computed at run time.
    """
    pieces = shape_pieces(ctx, node, input_index)
    if pieces is None:
        return False
    counts = dict(counts or {})
    for position in positions:
        counts.setdefault(position, lambda keep, v=vector: int(keep(v).sum()))
    edits: dict[int, list[tuple[int, CountFn]]] = {}
    for position, count in counts.items():
        piece_index = _piece_at(pieces, position)
        if piece_index is None:
            return False
        piece = pieces[piece_index]
        if piece.values is None:
            return False
        original = piece.values[position - piece.start]
        if keep_minus_one and original in (-1, 0):
            continue
        edits.setdefault(piece_index, []).append((position - piece.start, count))
    if not edits:
        return True

    def apply(editor, keep: KeepFn) -> None:
        for piece_index, entries in edits.items():
            piece = pieces[piece_index]
            values = np.array(piece.values, dtype=np.int64)
            for offset, count in entries:
                values[offset] = count(keep)
            editor.replace_constant_input(piece.owner, piece.input_index, values)

    ctx.add_fixup(node, apply)
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
    """When ``name`` is ``Expand(constant, shape)``, return the constant and the Expand node."""
    producer = ctx.view.producer.get(name)
    if producer is None or producer.op_type != "Expand":
        return None
    source = producer.input(0)
    if ctx.weight_shape(source) is None:
        return None
    return source, producer
