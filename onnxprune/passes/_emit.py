"""Building replacement nodes for a lowering pass: numpy for constants, graph nodes otherwise.

A lowering pass (``lower_einsum``, ``lower_attention``) replaces one node by several; the
:class:`NodeEmitter` names every new node and tensor after the replaced node
(``<name>/lowered_<i>_<op>``), folds operations on constants in numpy, and skips identity
steps (a transpose that keeps the order, an empty axes list).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx_graphsurgeon as gs


class NodeEmitter:
    """Accumulates the nodes that replace ``replaced``; :meth:`built` returns them in order."""

    def __init__(self, replaced: gs.Node, opset: int, fallback_name: str) -> None:
        self.replaced = replaced
        self.opset = opset
        self.prefix = replaced.name or fallback_name
        self.dtype = replaced.outputs[0].dtype
        self.nodes: list[gs.Node | None] = []

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}/lowered_{len(self.nodes)}_{suffix}"

    def node(self, op: str, inputs: list[gs.Tensor], dtype=None, **attrs) -> gs.Tensor:
        """One new node of ``op`` with one output (of the replaced output's dtype by default)."""
        name = self._name(op)
        output = gs.Variable(f"{name}:0", dtype=self.dtype if dtype is None else dtype)
        self.nodes.append(gs.Node(op, name, attrs, inputs, [output]))
        return output

    def axes_op(self, op: str, tensor: gs.Tensor, axes: Sequence[int], **attrs) -> gs.Tensor:
        """``op`` with its axes as an input (opset >= 13) or an attribute (before)."""
        axes = [int(axis) for axis in axes]
        if self.opset >= 13:
            values = gs.Constant(self._name("axes"), np.asarray(axes, dtype=np.int64))
            return self.node(op, [tensor, values], **attrs)
        return self.node(op, [tensor], axes=axes, **attrs)

    def constant(self, values: np.ndarray) -> gs.Constant:
        """A new constant (an operand transformed in numpy, or a value the lowering needs)."""
        name = self._name("weight")
        self.nodes.append(None)  # keeps names unique; dropped in :meth:`built`
        return gs.Constant(name, np.ascontiguousarray(values))

    def transpose(self, tensor: gs.Tensor, perm: Sequence[int]) -> gs.Tensor:
        if list(perm) == sorted(perm):
            return tensor
        if isinstance(tensor, gs.Constant):
            return self.constant(np.transpose(np.asarray(tensor.values), perm))
        return self.node("Transpose", [tensor], perm=[int(p) for p in perm])

    def reshape(self, tensor: gs.Tensor, shape: Sequence[int]) -> gs.Tensor:
        """Reshape to ``shape`` (0 copies the input's dim at that index, -1 is inferred)."""
        target = gs.Constant(self._name("shape"), np.asarray(list(shape), dtype=np.int64))
        return self.node("Reshape", [tensor, target])

    def unsqueeze(self, tensor: gs.Tensor, axes: Sequence[int]) -> gs.Tensor:
        if not axes:
            return tensor
        if isinstance(tensor, gs.Constant):
            return self.constant(np.expand_dims(np.asarray(tensor.values), tuple(axes)))
        return self.axes_op("Unsqueeze", tensor, axes)

    def squeeze(self, tensor: gs.Tensor, axes: Sequence[int]) -> gs.Tensor:
        return self.axes_op("Squeeze", tensor, axes) if axes else tensor

    def matmul(self, a: gs.Tensor, b: gs.Tensor) -> gs.Tensor:
        return self.node("MatMul", [a, b])

    def add(self, a: gs.Tensor, b: gs.Tensor) -> gs.Tensor:
        return self.node("Add", [a, b])

    def built(self) -> list[gs.Node]:
        return [node for node in self.nodes if node is not None]


def write_to(emit: NodeEmitter, result: gs.Tensor, output: gs.Tensor) -> None:
    """Make the node that computes ``result`` write ``output`` (the replaced node's tensor,
    which keeps its name), or copy ``result`` into it by an Identity when no new node computes
    it (the lowering was an operand itself, or a constant)."""
    producers = [node for node in emit.built() if result in node.outputs]
    if producers:
        producer = producers[0]
        producer.outputs[producer.outputs.index(result)] = output
    else:
        emit.nodes.append(
            gs.Node("Identity", f"{emit.prefix}/lowered_identity", {}, [result], [output])
        )


def finish_lowering(
    graph: gs.Graph, ctx, pass_name: str, op_type: str, lowered: int, kept: list[str], form: str
) -> bool:
    """Note the nodes left as they were (with reasons) and, when any was lowered, drop what the
    replaced nodes left behind, restore topological order and note the count; True when the
    graph changed."""
    if kept:
        ctx.note(f"{op_type} left as it is: {'; '.join(kept)}")
    if not lowered:
        return False
    graph.cleanup(remove_unused_graph_inputs=False)
    graph.toposort()
    ctx.note(f"{pass_name} wrote {lowered} {op_type} node(s) as {form}")
    return True
