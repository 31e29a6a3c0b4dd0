"""Pass: remove identity Transposes, merge consecutive ones, and push a Transpose through
elementwise ops to meet (and cancel) the next Transpose — tf2onnx's NHWC<->NCHW pairs.

Transpose(Transpose(x, p1), p2) = Transpose(x, q) with q[i] = p1[p2[i]]; q = identity drops
both. For an elementwise op U, U(Transpose(x, p)) = Transpose(U(x), p); for a binary op with a
constant c, Add(Transpose(x, p), c) = Transpose(Add(x, c'), p) with
c' = transpose(c padded to rank r, p⁻¹).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.passes._graph import NameGen, bypass, constant_array, output_names, private, producer
from onnxprune.passes._shapes import rank_of
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass

UNARY_ELEMENTWISE = {
    "Abs", "Cast", "Ceil", "Celu", "Clip", "Cos", "Elu", "Erf", "Exp", "Floor", "Gelu",
    "HardSigmoid", "HardSwish", "LeakyRelu", "Log", "Mish", "Neg", "Not", "Reciprocal", "Relu",
    "Round", "Selu", "Sigmoid", "Sign", "Sin", "Softplus", "Softsign", "Sqrt", "Tanh",
    "ThresholdedRelu",
}  # fmt: skip
BINARY_WITH_CONSTANT = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu"}
_MAX_ROUNDS = 64


def _perm(node: gs.Node) -> list[int] | None:
    if "perm" in node.attrs:
        return [int(axis) for axis in node.attrs["perm"]]
    rank = rank_of(node.inputs[0])
    return None if rank is None else list(reversed(range(rank)))


def _inverse(perm: list[int]) -> list[int]:
    inverse = [0] * len(perm)
    for index, axis in enumerate(perm):
        inverse[axis] = index
    return inverse


def _pushable(node: gs.Node, data: gs.Tensor, rank: int) -> bool:
    """True when ``node`` is elementwise in ``data`` with only scalar/constant other inputs."""
    if len(node.outputs) != 1:
        return False
    if node.inputs[0] is data and node.op in UNARY_ELEMENTWISE:
        others = [t for t in node.inputs[1:] if not t.is_empty()]
        return all(constant_array(t) is not None and constant_array(t).size == 1 for t in others)
    if node.op in BINARY_WITH_CONSTANT and len(node.inputs) == 2:
        others = [t for t in node.inputs if t is not data]
        if len(others) != 1:
            return False
        values = constant_array(others[0])
        if values is None or values.ndim > rank:
            return False
        return node.op != "PRelu" or node.inputs[0] is data
    return False


def _reaches_transpose(tensor: gs.Tensor, rank: int, graph_outputs: set[str]) -> bool:
    """True when a private elementwise chain from ``tensor`` ends in a Transpose."""
    current = tensor
    while private(current, graph_outputs):
        node = current.outputs[0]
        if node.op == "Transpose":
            return True
        if not _pushable(node, current, rank):
            return False
        current = node.outputs[0]
    return False


def _push_through(transpose: gs.Node, perm: list[int], names: NameGen) -> None:
    """Move ``transpose`` after its sole elementwise consumer."""
    moved = transpose.outputs[0]
    node = moved.outputs[0]
    source = transpose.inputs[0]
    inverse = _inverse(perm)
    for index, tensor in enumerate(node.inputs):
        if tensor is moved:
            node.inputs[index] = source
        elif node.op in BINARY_WITH_CONSTANT and not tensor.is_empty():
            values = constant_array(tensor)
            padded = values.reshape((1,) * (len(perm) - values.ndim) + values.shape)
            node.inputs[index] = gs.Constant(
                names(f"{tensor.name}_untransposed"),
                np.ascontiguousarray(padded.transpose(inverse)),
            )
    result = node.outputs[0]
    shape = None
    if result.shape is not None and len(result.shape) == len(perm):
        shape = [result.shape[axis] for axis in inverse]
    inner = gs.Variable(names(f"{result.name}_pre_transpose"), dtype=result.dtype, shape=shape)
    node.outputs[0] = inner
    transpose.inputs[0] = inner
    transpose.outputs[0] = result


def _simplify(transpose: gs.Node, graph: gs.Graph, names: NameGen, graph_outputs: set[str]) -> bool:
    perm = _perm(transpose)
    if perm is None:
        return False
    source = transpose.inputs[0]
    if perm == list(range(len(perm))):
        return bypass(transpose, source, transpose.outputs[0], graph)
    before = producer(source, "Transpose")
    if before is not None and before.inputs:
        first = _perm(before)
        if first is not None and len(first) == len(perm):
            transpose.inputs[0] = before.inputs[0]
            transpose.attrs["perm"] = [first[axis] for axis in perm]
            return True
    output = transpose.outputs[0]
    if (
        private(output, graph_outputs)
        and output.outputs[0].op != "Transpose"
        and _reaches_transpose(output, len(perm), graph_outputs)
    ):
        _push_through(transpose, perm, names)
        return True
    return False


@register_pass("cancel_transposes")
def cancel_transposes(graph: gs.Graph, ctx: PassContext) -> bool:
    """Cancel inverse Transpose pairs, drop identity Transposes, merge consecutive ones.

    Contract: exact (data movement only); a Transpose moves through a private elementwise
    chain only when a Transpose waits at its end, so the node count never grows.
    """
    graph_outputs = output_names(graph)
    names = NameGen(graph)
    before = sum(node.op == "Transpose" for node in graph.nodes)
    changed = False
    for _ in range(_MAX_ROUNDS):
        progress = False
        for node in list(graph.nodes):
            if node.op == "Transpose" and node.inputs and node.outputs:
                progress |= _simplify(node, graph, names, graph_outputs)
        if not progress:
            break
        changed = True
        graph.cleanup(remove_unused_graph_inputs=False)
    if changed:
        graph.toposort()
        after = sum(node.op == "Transpose" for node in graph.nodes)
        ctx.note(f"Transpose nodes: {before} -> {after}")
    return changed
