"""Reductions and softmax.

* ReduceSum / ReduceMean over axes R: ∂X = expand(g (with R re-inserted) / n, shape(X)),
  n = ∏_{r∈R} X.shape[r] for the mean (1 for the sum).
* Softmax along one axis (opset ≥ 13): ∂X = z ⊙ (g − Σ_axis g ⊙ z). Before opset 13 softmax
  normalises over all axes from ``axis`` on: the same formula on the input flattened to 2-D.
* LogSoftmax: ∂X = g − softmax(X) · Σ_axis g, softmax(X) = exp(z).
"""

from __future__ import annotations

from onnxprune.autodiff.builder import GradientBuilder
from onnxprune.autodiff.registry import register_vjp


def _reduce_axes(node, b: GradientBuilder, rank: int) -> list[int] | None:
    """Reduced axes (non-negative), or None for "all axes"."""
    axes_as_input = b.opset >= (13 if node.op_type == "ReduceSum" else 18)
    if axes_as_input:
        if not node.input(1):
            return None
        values = b.constant(node.input(1), f"{node.op_type} '{node.name}'")
        axes = [int(a) for a in values.reshape(-1)]
    else:
        axes = node.attrs.get("axes")
        if axes is None:
            return None
    if not axes:
        return None
    return sorted(int(a) % rank for a in axes)


def _reduce_backward(node, b: GradientBuilder, grads, mean: bool):
    x, g = node.inputs[0], grads[0]
    rank = b.rank(x)
    axes = _reduce_axes(node, b, rank)
    if axes is None:
        if int(node.attrs.get("noop_with_empty_axes", 0)):
            return [g] + [None] * (len(node.inputs) - 1)
        axes = list(range(rank))
    if not int(node.attrs.get("keepdims", 1)):
        g = b.unsqueeze(g, axes)
    if mean:
        dims = b.dims(x)
        if all(dims[a] is not None for a in axes):
            count = 1
            for a in axes:
                count *= int(dims[a])
            g = b.mul(g, b.scalar(1.0 / count, x))
        else:
            elem = b.elem_type(x)
            kept = b.node("Cast", [b.node("Size", [node.outputs[0]])], to=elem)
            whole = b.node("Cast", [b.node("Size", [x])], to=elem)
            g = b.mul(g, b.node("Div", [kept, whole]))
    return [b.node("Expand", [g, b.shape_of(x)])] + [None] * (len(node.inputs) - 1)


@register_vjp("ReduceSum", since=1, inputs=(0,))
def reduce_sum(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    return _reduce_backward(node, b, grads, mean=False)


@register_vjp("ReduceMean", since=1, inputs=(0,))
def reduce_mean(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    return _reduce_backward(node, b, grads, mean=True)


def _flattened(node, b: GradientBuilder, tensors: list[str]) -> tuple[list[str], int]:
    """Inputs reshaped for the pre-13 softmax semantics, and the axis to reduce."""
    rank = b.rank(node.inputs[0])
    axis = int(node.attrs.get("axis", -1 if b.opset >= 13 else 1)) % rank
    if b.opset >= 13:
        return tensors, axis
    return [b.node("Flatten", [t], axis=axis) for t in tensors], 1


@register_vjp("Softmax", since=1)
def softmax(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    (g, z), axis = _flattened(node, b, [grads[0], node.outputs[0]])
    inner = b.reduce_sum(b.mul(g, z), [axis], keepdims=True)
    grad = b.mul(z, b.node("Sub", [g, inner]))
    return [grad if b.opset >= 13 else b.reshape_like(grad, node.inputs[0])]


@register_vjp("LogSoftmax", since=1)
def log_softmax(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    (g, z), axis = _flattened(node, b, [grads[0], node.outputs[0]])
    total = b.reduce_sum(g, [axis], keepdims=True)
    grad = b.node("Sub", [g, b.mul(b.node("Exp", [z]), total)])
    return [grad if b.opset >= 13 else b.reshape_like(grad, node.inputs[0])]
