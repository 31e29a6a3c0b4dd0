"""Pass: decomposed layer normalization becomes one LayerNormalization node (opset 17).

Pattern (Paddle2ONNX, TorchScript of hand-written norms), over trailing axes A of x:
m = ReduceMean(x, A); d = x - m; v = ReduceMean(d², A) with d² = Pow(d, 2) or d·d;
n = d / Sqrt(v + ε) (or d · Reciprocal(Sqrt(v + ε))); y = n·γ + β (γ, β optional, constant).
This is LayerNormalization(x, γ, β; axis = -|A|, epsilon = ε) when γ and β broadcast over A
only. ReduceMean axes are read from the attribute (opset < 18) or the constant input.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.passes._graph import (
    NameGen,
    constant_array,
    detach,
    output_names,
    private,
    producer,
    scalar_value,
)
from onnxprune.passes._opset import raise_opset
from onnxprune.passes._shapes import rank_of
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass

LAYERNORM_OPSET = 17


def _reduce_axes(node: gs.Node, rank: int | None) -> tuple[int, ...] | None:
    """Normalized negative axes of a keepdims ReduceMean, or None."""
    if node.op != "ReduceMean" or int(node.attrs.get("keepdims", 1)) != 1:
        return None
    if "axes" in node.attrs:
        axes = list(node.attrs["axes"])
    elif len(node.inputs) > 1 and not node.inputs[1].is_empty():
        values = constant_array(node.inputs[1])
        if values is None:
            return None
        axes = [int(v) for v in values.reshape(-1)]
    else:
        return None
    if any(axis >= 0 for axis in axes):
        if rank is None:
            return None
        axes = [axis - rank if axis >= 0 else axis for axis in axes]
    return tuple(sorted(axes))


def _only_consumer(tensor: gs.Tensor, graph_outputs: set[str], op: str) -> gs.Node | None:
    if not private(tensor, graph_outputs):
        return None
    node = tensor.outputs[0]
    return node if node.op == op else None


def _other_input(node: gs.Node, tensor: gs.Tensor) -> gs.Tensor | None:
    if len(node.inputs) != 2:
        return None
    first, second = node.inputs
    if first is tensor and second is not tensor:
        return second
    if second is tensor and first is not tensor:
        return first
    return None


def _variance_branch(centered, axes, rank, graph_outputs):
    """From d's square consumer to Sqrt(v + ε): (square node, sqrt tensor, ε) or None."""
    square_nodes = {id(n): n for n in centered.outputs if n.op in ("Pow", "Mul")}
    for square in square_nodes.values():
        if square.op == "Pow":
            if square.inputs[0] is not centered or scalar_value(square.inputs[1]) != 2.0:
                continue
        elif not (
            len(square.inputs) == 2
            and square.inputs[0] is centered
            and square.inputs[1] is centered
        ):
            continue
        mean_sq = _only_consumer(square.outputs[0], graph_outputs, "ReduceMean")
        if mean_sq is None or _reduce_axes(mean_sq, rank) != axes:
            continue
        add = _only_consumer(mean_sq.outputs[0], graph_outputs, "Add")
        if add is None:
            continue
        epsilon_tensor = _other_input(add, mean_sq.outputs[0])
        epsilon = scalar_value(epsilon_tensor) if epsilon_tensor is not None else None
        if epsilon is None or epsilon < 0:
            continue
        sqrt = _only_consumer(add.outputs[0], graph_outputs, "Sqrt")
        if sqrt is None:
            continue
        return square, sqrt.outputs[0], epsilon
    return None


def _normalizer(centered, root, graph_outputs) -> gs.Tensor | None:
    """The tensor d / root (Div, or Mul by Reciprocal(root)) when d feeds it directly."""
    for node in centered.outputs:
        if node.op == "Div" and list(node.inputs) == [centered, root]:
            return node.outputs[0]
        if node.op == "Mul" and len(node.inputs) == 2:
            other = _other_input(node, centered)
            reciprocal = producer(other) if other is not None else None
            if (
                reciprocal is not None
                and reciprocal.op == "Reciprocal"
                and reciprocal.inputs[0] is root
                and private(root, graph_outputs)
                and private(other, graph_outputs)
            ):
                return node.outputs[0]
    return None


def _affine_tail(tensor, graph_outputs, op):
    """(constant, output) of a following Mul/Add by a constant, else (None, tensor)."""
    node = _only_consumer(tensor, graph_outputs, op)
    if node is None:
        return None, tensor
    other = _other_input(node, tensor)
    values = constant_array(other) if other is not None else None
    if values is None or not np.issubdtype(values.dtype, np.floating):
        return None, tensor
    return values, node.outputs[0]


def _fit(
    values: np.ndarray | None, normalized: tuple[int, ...], dtype, fill: float
) -> np.ndarray | None:
    """``values`` broadcast to the normalized shape (None if it also varies over other axes)."""
    if values is None:
        return np.full(normalized, fill, dtype=dtype)
    trimmed = values.reshape(
        values.shape[next((i for i, d in enumerate(values.shape) if d != 1), values.ndim) :]
    )
    if trimmed.ndim > len(normalized):
        return None
    try:
        return np.broadcast_to(trimmed, normalized).astype(dtype)
    except ValueError:
        return None


def _match(mean: gs.Node, graph_outputs: set[str]):
    x = mean.inputs[0]
    rank = rank_of(x)
    axes = _reduce_axes(mean, rank)
    if axes is None or axes != tuple(range(-len(axes), 0)):
        return None
    sub = _only_consumer(mean.outputs[0], graph_outputs, "Sub")
    if sub is None or list(sub.inputs) != [x, mean.outputs[0]]:
        return None
    centered = sub.outputs[0]
    if centered.name in graph_outputs or len({id(n) for n in centered.outputs}) != 2:
        return None
    variance = _variance_branch(centered, axes, rank, graph_outputs)
    if variance is None:
        return None
    _, root, epsilon = variance
    normalized_tensor = _normalizer(centered, root, graph_outputs)
    if normalized_tensor is None:
        return None
    gamma, scaled = _affine_tail(normalized_tensor, graph_outputs, "Mul")
    beta, end = _affine_tail(scaled, graph_outputs, "Add")
    if x.shape is None or x.dtype is None or not np.issubdtype(np.dtype(x.dtype), np.floating):
        return None
    normalized_shape = tuple(x.shape[len(x.shape) - len(axes) :])
    if not all(isinstance(dim, int) and dim > 0 for dim in normalized_shape):
        return None
    scale = _fit(gamma, normalized_shape, x.dtype, 1.0)
    bias = _fit(beta, normalized_shape, x.dtype, 0.0) if beta is not None else None
    if scale is None or (beta is not None and bias is None):
        return None
    return x, end, -len(axes), epsilon, scale, bias


@register_pass("fuse_layernorm")
def fuse_layernorm(graph: gs.Graph, ctx: PassContext) -> bool:
    """Replace decomposed layer norm (module docstring) by LayerNormalization; keeps the output name.

    Contract: same math (mean/variance over the trailing axes, biased variance, ε inside the
    root); needs opset 17 — the opset is raised only when this pass fires and it is safe.
    """
    graph_outputs = output_names(graph)
    names = NameGen(graph)
    fused = 0
    for mean in list(graph.nodes):
        if mean.op != "ReduceMean" or not mean.inputs or not mean.outputs:
            continue
        match = _match(mean, graph_outputs)
        if match is None:
            continue
        if not raise_opset(graph, ctx, LAYERNORM_OPSET):
            ctx.note(
                f"decomposed LayerNorm left as is: opset {ctx.opset} cannot be raised to "
                f"{LAYERNORM_OPSET} safely"
            )
            break
        x, end, axis, epsilon, scale, bias = match
        detach(producer(end))
        inputs = [x, gs.Constant(names(f"{end.name}_ln_scale"), scale)]
        if bias is not None:
            inputs.append(gs.Constant(names(f"{end.name}_ln_bias"), bias))
        graph.nodes.append(
            gs.Node(
                "LayerNormalization",
                names(f"{end.name}_layernorm"),
                attrs={"axis": axis, "epsilon": float(epsilon)},
                inputs=inputs,
                outputs=[end],
            )
        )
        fused += 1
    if fused:
        ctx.note(f"fused {fused} decomposed LayerNorm pattern(s) into LayerNormalization")
        graph.cleanup(remove_unused_graph_inputs=False).toposort()
    return fused > 0
