"""Pass: a Reshape target that re-reads its own input's leading dims becomes a constant with 0s."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.passes._graph import constant_array, producer, slice_arguments
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass


def _same_dims(source: gs.Tensor, data: gs.Tensor, indices: list[int]) -> bool:
    """Whether dims ``indices`` of ``source`` equal those of ``data`` for every input: the same
    tensor, or both dims inferred with the same symbol or the same number (ONNX shape
    inference gives one symbol to dims it proved equal, e.g. the batch dim through a
    MatMul)."""
    if source is data:
        return True
    shapes = source.shape, data.shape
    if any(shape is None for shape in shapes):
        return False
    for index in indices:
        if index >= len(shapes[0]) or index >= len(shapes[1]):
            return False
        first, second = shapes[0][index], shapes[1][index]
        if isinstance(first, str) and isinstance(second, str):
            if not first or first != second:
                return False
        elif not (isinstance(first, int) and isinstance(second, int) and first == second >= 0):
            return False
    return True


def _copied_dims(piece: gs.Tensor, data: gs.Tensor) -> list[int] | None:
    """Indices of ``data``'s dims that ``piece`` reads as ``Shape(data)[i]`` (in order), or None;
    ``Shape(other)[i]`` counts when dim i of ``other`` is provably dim i of ``data``
    (:func:`_same_dims`).

    Recognised: ``Slice(Shape(data), starts, ends[, axes=0][, steps=1])`` (bounds as inputs, or
    as attributes in opsets before 10) and
    ``Unsqueeze(Gather(Shape(data), i), 0)``; only non-negative, in-range indices.
    """
    node = producer(piece)
    if node is None:
        return None
    rank = len(data.shape) if data.shape is not None else None
    if node.op == "Slice":
        shape_of = producer(node.inputs[0], "Shape")
        if shape_of is None or shape_of.attrs:
            return None
        arguments = slice_arguments(node)
        if arguments is None:
            return None
        starts, ends, axes, steps = arguments
        if (
            len(starts) != 1
            or len(ends) != 1
            or axes not in (None, [0])
            or steps not in (None, [1])
        ):
            return None
        start, end = starts[0], ends[0]
        if rank is None or start < 0 or end < start:
            return None
        copied = list(range(start, min(end, rank)))
        return copied if _same_dims(shape_of.inputs[0], data, copied) else None
    if node.op == "Unsqueeze":
        axes = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
        axes = axes if axes is not None else node.attrs.get("axes")
        gather = producer(node.inputs[0], "Gather")
        if axes is None or list(np.asarray(axes).reshape(-1)) != [0] or gather is None:
            return None
        shape_of = producer(gather.inputs[0], "Shape")
        index = constant_array(gather.inputs[1])
        if shape_of is None or shape_of.attrs:
            return None
        if index is None or index.size != 1 or int(index.reshape(-1)[0]) < 0:
            return None
        copied = [int(index.reshape(-1)[0])]
        return copied if _same_dims(shape_of.inputs[0], data, copied) else None
    return None


def _constant_target(node: gs.Node) -> np.ndarray | None:
    """The equivalent constant target of a Reshape whose run-time pieces copy input dims."""
    if node.attrs.get("allowzero", 0) != 0:
        return None
    whole = producer(node.inputs[1], "Shape")
    if whole is not None:
        return _whole_shape_target(whole, node.inputs[0])
    concat = producer(node.inputs[1], "Concat")
    if concat is None or concat.attrs.get("axis", 0) != 0:
        return None
    values: list[int] = []
    for piece in concat.inputs:
        constant = constant_array(piece)
        if constant is not None:
            values.extend(int(v) for v in constant.reshape(-1))
            continue
        copied = _copied_dims(piece, node.inputs[0])
        if copied is None:
            return None
        for index in copied:
            if index != len(values):  # Reshape's 0 copies the dim at the same position only
                return None
            values.append(0)
    return np.array(values, dtype=np.int64)


def _whole_shape_target(shape_of: gs.Node, data: gs.Tensor) -> np.ndarray | None:
    """The constant equal to a target ``Shape(t)`` taken whole: per dim of ``t``, 0 where it
    is provably dim i of ``data`` (:func:`_same_dims`), the number where inference proved one,
    and -1 for at most one dim that is neither (Reshape infers it from the element count,
    which the other entries fix); None otherwise. ONNX Runtime's transformer optimizer writes
    the merge-heads Reshape of attention as ``Reshape(x, Shape(t))``, t the block's input."""
    source = shape_of.inputs[0]
    if source.shape is None:
        return None
    rank = len(source.shape)
    start, end = int(shape_of.attrs.get("start", 0)), int(shape_of.attrs.get("end", rank))
    if (start % rank if rank else 0) != 0 or (end if end >= 0 else end + rank) < rank:
        return None  # a part of the shape: not this form
    values: list[int] = []
    for index, dim in enumerate(source.shape):
        if data.shape is not None and index < len(data.shape) and _same_dims(source, data, [index]):
            values.append(0)
        elif isinstance(dim, int) and dim >= 0:
            values.append(dim)
        else:
            values.append(-1)
    return np.array(values, dtype=np.int64) if values.count(-1) <= 1 else None


@register_pass("reshape_copy_dims")
def reshape_copy_dims(graph: gs.Graph, ctx: PassContext) -> bool:
    """Reshape(x, Concat(Slice(Shape(x), 0, k), c)) -> Reshape(x, [0]*k + c) (allowzero=0).

    Contract: with allowzero=0 a 0 in the target copies the input dim at the same position, which
    is exactly what ``Shape(x)[i]`` at position i supplies, so outputs are unchanged for every
    input shape; the target no longer reads the channel count at run time (TorchScript's
    ``flatten(2)`` of a conv output), so the channel analysis need not block it. The piece may
    read another tensor's shape when shape inference proved that dim equal to x's (the same
    symbol: TorchScript attention reads ``B, N, C = x.shape`` of the LayerNorm output and
    reshapes the qkv projection with it); without that the Reshape's output shape stays unknown
    and so does every shape after it (a ViT at opset 13 lost its later attention heads). A
    target that is a whole ``Shape(t)`` becomes 0s, the dims inference proved numbers and at
    most one -1 (:func:`_whole_shape_target`).
    """
    changed = False
    for node in graph.nodes:
        if node.op != "Reshape" or len(node.inputs) < 2 or isinstance(node.inputs[1], gs.Constant):
            continue
        target = _constant_target(node)
        if target is None:
            continue
        node.inputs[1] = gs.Constant(f"{node.name}_target_copy_dims", target)
        changed = True
    if changed:
        graph.cleanup(remove_unused_graph_inputs=False)
    return changed
