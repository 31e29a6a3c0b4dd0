"""Normalizations.

LayerNormalization over the axes A = [axis, rank): μ = mean_A(x), σ⁻¹ = (var_A(x) + ε)^(−1/2),
x̂ = (x − μ)σ⁻¹, y = x̂·γ + β. With ĝ = g·γ:
∂x = σ⁻¹ · (ĝ − mean_A(ĝ) − x̂ · mean_A(ĝ·x̂)), ∂γ = unbroadcast(g·x̂), ∂β = unbroadcast(g).

BatchNormalization (inference: running statistics μ, v are constants of the graph):
y = γ(x − μ)/√(v + ε) + β per channel (axis 1), so ∂x = g·γ/√(v + ε),
∂γ = Σ_{n, spatial} g·(x − μ)/√(v + ε), ∂β = Σ_{n, spatial} g.
"""

from __future__ import annotations

from onnxprune.autodiff.builder import GradientBuilder
from onnxprune.autodiff.registry import register_vjp
from onnxprune.errors import InputError


@register_vjp("LayerNormalization", since=17)
def layer_normalization(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    x, g = node.inputs[0], grads[0]
    rank = b.rank(x)
    axis = int(node.attrs.get("axis", -1)) % rank
    epsilon = float(node.attrs.get("epsilon", 1e-5))
    axes = list(range(axis, rank))
    mean = b.reduce("ReduceMean", x, axes, keepdims=True)
    centred = b.node("Sub", [x, mean])
    variance = b.reduce("ReduceMean", b.mul(centred, centred), axes, keepdims=True)
    inv_std = b.node(
        "Reciprocal", [b.node("Sqrt", [b.node("Add", [variance, b.scalar(epsilon, x)])])]
    )
    normalized = b.mul(centred, inv_std)
    out_dims = b.dims(x)
    result: list[str | None] = [None] * len(node.inputs)
    if needed[0]:
        scaled = b.mul(g, node.inputs[1])
        first = b.reduce("ReduceMean", scaled, axes, keepdims=True)
        second = b.mul(
            normalized, b.reduce("ReduceMean", b.mul(scaled, normalized), axes, keepdims=True)
        )
        result[0] = b.mul(inv_std, b.node("Sub", [b.node("Sub", [scaled, first]), second]))
    if len(node.inputs) > 1 and needed[1]:
        result[1] = b.unbroadcast(b.mul(g, normalized), out_dims, node.inputs[1])
    if len(node.inputs) > 2 and node.inputs[2] and needed[2]:
        result[2] = b.unbroadcast(g, out_dims, node.inputs[2])
    return result


@register_vjp("BatchNormalization", since=9, inputs=(0, 1, 2))
def batch_normalization(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    if int(node.attrs.get("training_mode", 0)):
        raise InputError(f"gradient of BatchNormalization '{node.name}': training mode")
    x, g = node.inputs[0], grads[0]
    gamma, _beta, mean, var = node.inputs[1:5]
    rank = b.rank(x)
    epsilon = float(node.attrs.get("epsilon", 1e-5))
    column = b.ints([-1] + [1] * (rank - 2))
    inv_std = b.node("Reciprocal", [b.node("Sqrt", [b.node("Add", [var, b.scalar(epsilon, x)])])])
    inv_std_b = b.node("Reshape", [inv_std, column])
    reduced = [0, *range(2, rank)]
    result: list[str | None] = [None] * len(node.inputs)
    if needed[0]:
        result[0] = b.mul(g, b.node("Reshape", [b.mul(gamma, inv_std), column]))
    if needed[1]:
        normalized = b.mul(b.node("Sub", [x, b.node("Reshape", [mean, column])]), inv_std_b)
        result[1] = b.reduce_sum(b.mul(g, normalized), reduced, keepdims=False)
    if needed[2]:
        result[2] = b.reduce_sum(g, reduced, keepdims=False)
    return result
