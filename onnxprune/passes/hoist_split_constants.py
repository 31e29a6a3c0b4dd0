"""Pass: an element-wise op with a constant over axes a Reshape just split moves before the split.

A projection to heads is a dense layer whose units are then split: ``r = Reshape(x[..., P],
[..., n, d])`` with P = n·d. Attention code often adds a per-head constant afterwards —
``r + b[n, d]`` (XLNet's and Transformer-XL's relative-position biases, an einsum projection's
bias used twice) — and that constant spans two channel axes, which the channel analysis cannot
slice ("constant spans several channel axes"), so every head stayed. Row-major order keeps each
last-axis row of x as one contiguous block of r's split axes, so for a constant c that varies
only along those axes (size 1 or absent elsewhere)

    Op(Reshape(x), c) = Reshape(Op(x, c_flat)),   c_flat[j] = c[unravel(j)],  j < P

for Op in Add, Sub, Mul, Div (either operand order). The pass rewrites each such reader of r on
its own (one reader may move while another stays), so the constant becomes one value per unit
of the layer, which the analysis slices like a bias.

Contract: every rewritten reader's output keeps its name and values (the same element-wise
arithmetic on the same pairs of numbers); a Reshape with no reader left is removed by cleanup.
Shapes: x's last dim and r's split dims must be static; when a tensor made by an earlier pass
has no shape yet, shapes are inferred again once.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.passes._graph import output_names, readers
from onnxprune.passes._shapes import apply_value_infos, infer_value_infos
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass

ELEMENTWISE = ("Add", "Sub", "Mul", "Div")


def _constant_operand(node: gs.Node, tensor: gs.Tensor) -> gs.Constant | None:
    """The constant other operand of a binary element-wise ``node`` reading ``tensor``."""
    if node.op not in ELEMENTWISE or node.domain or len(node.inputs) != 2:
        return None
    if node.inputs[0] is tensor and isinstance(node.inputs[1], gs.Constant):
        return node.inputs[1]
    if node.inputs[1] is tensor and isinstance(node.inputs[0], gs.Constant):
        return node.inputs[0]
    return None


def _spans_several_axes(constant: gs.Constant) -> bool:
    return sum(int(d) > 1 for d in np.shape(constant.values)) > 1


def _candidates(graph: gs.Graph) -> list[tuple[gs.Node, gs.Node, gs.Constant]]:
    """(Reshape, reader, constant) triples whose constant spans several axes."""
    outputs = output_names(graph)
    found = []
    for reshape in graph.nodes:
        if reshape.op != "Reshape" or reshape.domain or reshape.outputs[0].name in outputs:
            continue
        for reader in readers(reshape.outputs[0]):
            constant = _constant_operand(reader, reshape.outputs[0])
            if constant is not None and _spans_several_axes(constant):
                found.append((reshape, reader, constant))
    return found


def _static_tail(shape, start: int) -> list[int] | None:
    tail = list(shape[start:])
    return tail if all(isinstance(d, int) and d > 0 for d in tail) else None


def flat_constant(constant: np.ndarray, x_shape, r_shape) -> np.ndarray | None:
    """c_flat (module docstring) when ``constant`` varies only along the axes of ``r_shape``
    that split x's last axis, else None."""
    if x_shape is None or r_shape is None or not x_shape or constant.ndim > len(r_shape):
        return None
    last = x_shape[-1]
    if not isinstance(last, int) or last <= 0:
        return None
    aligned = constant.reshape((1,) * (len(r_shape) - constant.ndim) + constant.shape)
    varying = [axis for axis, size in enumerate(aligned.shape) if size > 1]
    for start in range(min(varying, default=len(r_shape)), -1, -1):
        tail = _static_tail(r_shape, start)
        if tail is not None and int(np.prod(tail)) == last:
            block = aligned.reshape(aligned.shape[start:])
            if any(s not in (1, t) for s, t in zip(block.shape, tail, strict=True)):
                return None
            return np.ascontiguousarray(np.broadcast_to(block, tail).reshape(-1))
        if tail is None or int(np.prod(tail)) > last:
            return None
    return None


def _refresh_shapes(graph: gs.Graph) -> None:
    apply_value_infos(graph, infer_value_infos(gs.export_onnx(graph, do_type_check=False)))


@register_pass("hoist_split_constants")
def hoist_split_constants(graph: gs.Graph, ctx: PassContext) -> bool:
    """Move each element-wise op with a constant over split axes before the split."""
    candidates = _candidates(graph)
    if not candidates:
        return False
    if any(r.inputs[0].shape is None or r.outputs[0].shape is None for r, _, _ in candidates):
        _refresh_shapes(graph)
    moved = 0
    for reshape, reader, constant in candidates:
        x, r = reshape.inputs[0], reshape.outputs[0]
        flat = flat_constant(np.asarray(constant.values), x.shape, r.shape)
        if flat is None:
            continue
        flat_constant_tensor = gs.Constant(f"{constant.name}/flat_{moved}", flat)
        inputs = [x if tensor is r else flat_constant_tensor for tensor in reader.inputs]
        output = reader.outputs[0]
        before = gs.Variable(f"{output.name}/before_split", dtype=output.dtype)
        graph.nodes.append(
            gs.Node(reader.op, f"{reader.name}/before_split", dict(reader.attrs), inputs, [before])
        )
        reader.inputs.clear()
        reader.outputs.clear()
        split = gs.Node(
            "Reshape",
            f"{reader.name}/split",
            dict(reshape.attrs),
            [before, reshape.inputs[1]],
            [output],
        )
        graph.nodes.append(split)
        moved += 1
    if not moved:
        return False
    graph.cleanup(remove_unused_graph_inputs=False)
    graph.toposort()
    ctx.note(f"hoist_split_constants moved {moved} element-wise op(s) before a channel split")
    return True
