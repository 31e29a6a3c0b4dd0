"""Normalizations.

LayerNormalization over the axes A = [axis, rank): μ = mean_A(x), σ⁻¹ = (var_A(x) + ε)^(−1/2),
x̂ = (x − μ)σ⁻¹, y = x̂·γ + β. With ĝ = g·γ:
∂x = σ⁻¹ · (ĝ − mean_A(ĝ) − x̂ · mean_A(ĝ·x̂)), ∂γ = unbroadcast(g·x̂), ∂β = unbroadcast(g).

LRN over the channel axis 1 with window W(c) = [c − lo, c + hi], lo = ⌊(size−1)/2⌋,
hi = ⌈(size−1)/2⌉ (clipped to the channels): s_c = bias + α/size · Σ_{i∈W(c)} x_i²,
y_c = x_c · s_c^(−β). Since j ∈ W(c) ⟺ c ∈ [j − hi, j + lo]:
∂x_j = g_j s_j^(−β) − (2αβ/size) · x_j · Σ_{c∈[j−hi, j+lo]} g_c x_c s_c^(−β−1).
Both window sums are a zero Pad of the channel axis and ``size`` shifted Slices added up.

LpNormalization along one axis a (no ε, as the spec): p = 2: n = √Σ_a x², y = x/n,
∂x = (g − y·Σ_a(g·y))/n; p = 1: n = Σ_a |x|, y = x/n, ∂x = g/n − sign(x)·Σ_a(g·x)/n².

MeanVarianceNormalization over axes A (opset ≥ 9; the spec's function body and ONNX
Runtime): c = x − mean_A(x), σ = √(mean_A(x²) − mean_A(x)²), s = σ + 1e-9, y = c/s;
∂x = (g − mean_A(g))/s − c·mean_A(g·c)/(σ·s²).

RMSNormalization over A = [axis, rank): r = √(mean_A(x²) + ε), y = x/r·γ; with ĝ = g·γ:
∂x = ĝ/r − x·mean_A(ĝ·x)/r³, ∂γ = unbroadcast(g·x/r).

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


def _channel_window_sum(
    b: GradientBuilder, v: str, rank: int, channels: int, before: int, after: int
) -> str:
    """Σ_{i=c−before}^{c+after} v_i along axis 1 of a rank-``rank`` tensor (zeros outside
    the channels)."""
    pads = [0] * (2 * rank)
    pads[1], pads[rank + 1] = before, after
    padded = b.node("Pad", [v, b.ints(pads)])
    shifted = [b.slice(padded, [k], [k + channels], [1]) for k in range(before + after + 1)]
    return shifted[0] if len(shifted) == 1 else b.node("Sum", shifted)


@register_vjp("LRN", since=1)
def local_response_normalization(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    x, g = node.inputs[0], grads[0]
    size = int(node.attrs["size"])
    alpha = float(node.attrs.get("alpha", 1e-4))
    beta = float(node.attrs.get("beta", 0.75))
    bias = float(node.attrs.get("bias", 1.0))
    (channels,) = b.static_dims(x, [1], f"LRN '{node.name}'")
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    rank = b.rank(x)
    squares = _channel_window_sum(b, b.mul(x, x), rank, channels, lo, hi)
    s = b.node("Add", [b.mul(squares, b.scalar(alpha / size, x)), b.scalar(bias, x)])
    s_beta = b.node("Pow", [s, b.scalar(-beta, x)])
    weighted = b.mul(b.mul(g, x), b.node("Div", [s_beta, s]))
    spread = _channel_window_sum(b, weighted, rank, channels, hi, lo)
    correction = b.mul(b.mul(x, spread), b.scalar(2 * alpha * beta / size, x))
    return [b.node("Sub", [b.mul(g, s_beta), correction])]


@register_vjp("LpNormalization", since=1, inputs=(0,))
def lp_normalization(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    x, g = node.inputs[0], grads[0]
    axis = int(node.attrs.get("axis", -1)) % b.rank(x)
    p = int(node.attrs.get("p", 2))
    if p not in (1, 2):
        raise InputError(f"gradient of LpNormalization '{node.name}': p = {p} (1 or 2 only)")
    result: list[str | None] = [None] * len(node.inputs)
    if not needed[0]:
        return result
    if p == 2:
        norm = b.node("Sqrt", [b.reduce_sum(b.mul(x, x), [axis])])
        y = b.node("Div", [x, norm])
        along = b.reduce_sum(b.mul(g, y), [axis])
        result[0] = b.node("Div", [b.node("Sub", [g, b.mul(y, along)]), norm])
    else:
        norm = b.reduce_sum(b.node("Abs", [x]), [axis])
        along = b.reduce_sum(b.mul(g, x), [axis])
        correction = b.node("Div", [b.mul(b.node("Sign", [x]), along), b.mul(norm, norm)])
        result[0] = b.node("Sub", [b.node("Div", [g, norm]), correction])
    return result


@register_vjp("MeanVarianceNormalization", since=9, inputs=(0,))
def mean_variance_normalization(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    x, g = node.inputs[0], grads[0]
    rank = b.rank(x)
    axes = [int(a) % rank for a in node.attrs.get("axes", [0, 2, 3])]
    result: list[str | None] = [None] * len(node.inputs)
    if not needed[0]:
        return result
    mean = b.reduce("ReduceMean", x, axes, keepdims=True)
    centred = b.node("Sub", [x, mean])
    variance = b.node(
        "Sub", [b.reduce("ReduceMean", b.mul(x, x), axes, keepdims=True), b.mul(mean, mean)]
    )
    deviation = b.node("Sqrt", [variance])
    shifted = b.node("Add", [deviation, b.scalar(1e-9, x)])
    first = b.node("Div", [b.node("Sub", [g, b.reduce("ReduceMean", g, axes, keepdims=True)]),
                           shifted])  # fmt: skip
    spread = b.reduce("ReduceMean", b.mul(g, centred), axes, keepdims=True)
    second = b.node("Div", [b.mul(centred, spread), b.mul(deviation, b.mul(shifted, shifted))])
    result[0] = b.node("Sub", [first, second])
    return result


@register_vjp("RMSNormalization", since=23, inputs=(0, 1))
def rms_normalization(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    x, scale, g = node.inputs[0], node.inputs[1], grads[0]
    rank = b.rank(x)
    axes = list(range(int(node.attrs.get("axis", -1)) % rank, rank))
    epsilon = float(node.attrs.get("epsilon", 1e-5))
    mean_square = b.reduce("ReduceMean", b.mul(x, x), axes, keepdims=True)
    root = b.node("Sqrt", [b.node("Add", [mean_square, b.scalar(epsilon, x)])])
    normalized = b.node("Div", [x, root])
    result: list[str | None] = [None] * len(node.inputs)
    if needed[0]:
        scaled = b.mul(g, scale)
        along = b.reduce("ReduceMean", b.mul(scaled, x), axes, keepdims=True)
        cube = b.mul(root, b.mul(root, root))
        result[0] = b.node(
            "Sub", [b.node("Div", [scaled, root]), b.node("Div", [b.mul(x, along), cube])]
        )
    if needed[1]:
        result[1] = b.unbroadcast(b.mul(g, normalized), b.dims(x), scale)
    return result
