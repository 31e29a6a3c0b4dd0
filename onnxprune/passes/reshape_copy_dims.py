"""Pass: a Reshape target that re-reads its own input's leading dims becomes a constant with 0s."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.passes._graph import constant_array, producer
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass


def _copied_dims(piece: gs.Tensor, data: gs.Tensor) -> list[int] | None:
    """Indices of ``data``'s dims that ``piece`` reads as ``Shape(data)[i]`` (in order), or None.

    Recognised: ``Slice(Shape(data), starts, ends[, axes=0][, steps=1])`` and
    ``Unsqueeze(Gather(Shape(data), i), 0)``; only non-negative, in-range indices.
    """
    node = producer(piece)
    if node is None:
        return None
    rank = len(data.shape) if data.shape is not None else None
    if node.op == "Slice":
        shape_of = producer(node.inputs[0], "Shape")
        if shape_of is None or shape_of.inputs[0] is not data or shape_of.attrs:
            return None
        bounds = [constant_array(t) for t in node.inputs[1:]]
        if any(b is None or b.size != 1 for b in bounds):
            return None
        start, end, *rest = (int(b.reshape(-1)[0]) for b in bounds)
        if (rest and rest[0] != 0) or (len(rest) > 1 and rest[1] != 1):
            return None
        if rank is None or start < 0 or end < start:
            return None
        return list(range(start, min(end, rank)))
    if node.op == "Unsqueeze":
        axes = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
        axes = axes if axes is not None else node.attrs.get("axes")
        gather = producer(node.inputs[0], "Gather")
        if axes is None or list(np.asarray(axes).reshape(-1)) != [0] or gather is None:
            return None
        shape_of = producer(gather.inputs[0], "Shape")
        index = constant_array(gather.inputs[1])
        if shape_of is None or shape_of.inputs[0] is not data or shape_of.attrs:
            return None
        if index is None or index.size != 1 or int(index.reshape(-1)[0]) < 0:
            return None
        return [int(index.reshape(-1)[0])]
    return None


def _constant_target(node: gs.Node) -> np.ndarray | None:
    """The equivalent constant target of a Reshape whose run-time pieces copy input dims."""
    if node.attrs.get("allowzero", 0) != 0:
        return None
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


@register_pass("reshape_copy_dims")
def reshape_copy_dims(graph: gs.Graph, ctx: PassContext) -> bool:
    """Reshape(x, Concat(Slice(Shape(x), 0, k), c)) -> Reshape(x, [0]*k + c) (allowzero=0).

    Contract: with allowzero=0 a 0 in the target copies the input dim at the same position, which
    is exactly what ``Shape(x)[i]`` at position i supplies, so outputs are unchanged for every
    input shape; the target no longer reads the channel count at run time (TorchScript's
    ``flatten(2)`` of a conv output), so the channel analysis need not block it.
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
