"""Pointwise activations: ∂a = g · f'(a), with f' written in ONNX ops.

Kinks follow PyTorch's backward (the usual source of these graphs): Relu passes where a > 0,
Clip strictly inside (min, max) (ReLU6 is hardtanh), HardSigmoid strictly inside its linear
part, HardSwish's slope is a/3 + 1/2 on [−3, 3].
"""

from __future__ import annotations

import math

from onnxprune.autodiff.builder import GradientBuilder, string_attr
from onnxprune.autodiff.registry import register_vjp


def _masked(b: GradientBuilder, condition: str, value: str, like: str) -> str:
    """``value`` where ``condition`` holds, 0 elsewhere, as ``value · Cast(condition)``:
    ONNX Runtime's CPU ``Where`` with a broadcast scalar is 1.5x slower than Cast + Mul on
    activation-sized tensors (a step of EfficientNet-Lite2's backward graph has 43 of them)."""
    return b.mul(value, b.node("Cast", [condition], to=b.elem_type(like)))


@register_vjp("Relu", since=6)
def relu(node, b: GradientBuilder, grads, needed):
    """z = max(a, 0): ∂a = g · [a > 0]."""
    a = node.inputs[0]
    return [_masked(b, b.node("Greater", [a, b.scalar(0.0, a)]), grads[0], a)]


@register_vjp("LeakyRelu", since=6)
def leaky_relu(node, b: GradientBuilder, grads, needed):
    """z = a if a > 0 else α·a: ∂a = g · (a > 0 ? 1 : α)."""
    a, g = node.inputs[0], grads[0]
    alpha = float(node.attrs.get("alpha", 0.01))
    scaled = b.mul(g, b.scalar(alpha, a))
    return [b.node("Where", [b.node("Greater", [a, b.scalar(0.0, a)]), g, scaled])]


def _clip_bounds(node, b: GradientBuilder) -> tuple[str | None, str | None]:
    a = node.inputs[0]
    if b.opset < 11:
        low = node.attrs.get("min")
        high = node.attrs.get("max")
        return (
            None if low is None else b.scalar(float(low), a),
            None if high is None else b.scalar(float(high), a),
        )
    return node.input(1) or None, node.input(2) or None


@register_vjp("Clip", since=6, inputs=(0,))
def clip(node, b: GradientBuilder, grads, needed):
    """z = min(max(a, lo), hi): ∂a = g · [lo < a < hi] (bounds are not differentiated)."""
    a, g = node.inputs[0], grads[0]
    low, high = _clip_bounds(node, b)
    mask = None
    if low is not None:
        mask = b.node("Greater", [a, low])
    if high is not None:
        below = b.node("Less", [a, high])
        mask = below if mask is None else b.node("And", [mask, below])
    out = g if mask is None else _masked(b, mask, g, a)
    return [out] + [None] * (len(node.inputs) - 1)


@register_vjp("Sigmoid", since=6)
def sigmoid(node, b: GradientBuilder, grads, needed):
    """z = 1/(1+e⁻ᵃ): ∂a = g · z · (1 − z)."""
    z = node.outputs[0]
    return [b.mul(grads[0], b.mul(z, b.node("Sub", [b.scalar(1.0, z), z])))]


@register_vjp("Tanh", since=6)
def tanh(node, b: GradientBuilder, grads, needed):
    """z = tanh a: ∂a = g · (1 − z²)."""
    z = node.outputs[0]
    return [b.mul(grads[0], b.node("Sub", [b.scalar(1.0, z), b.mul(z, z)]))]


@register_vjp("HardSigmoid", since=6)
def hard_sigmoid(node, b: GradientBuilder, grads, needed):
    """z = clip(α·a + β, 0, 1): ∂a = g · α · [0 < α·a + β < 1]."""
    a, g = node.inputs[0], grads[0]
    alpha = float(node.attrs.get("alpha", 0.2))
    beta = float(node.attrs.get("beta", 0.5))
    inner = b.node("Add", [b.mul(a, b.scalar(alpha, a)), b.scalar(beta, a)])
    inside = b.node(
        "And",
        [
            b.node("Greater", [inner, b.scalar(0.0, a)]),
            b.node("Less", [inner, b.scalar(1.0, a)]),
        ],
    )
    return [_masked(b, inside, b.mul(g, b.scalar(alpha, a)), a)]


@register_vjp("HardSwish", since=14)
def hard_swish(node, b: GradientBuilder, grads, needed):
    """z = a · clip(a/6 + 1/2, 0, 1): ∂a = g · (0 if a < −3, a/3 + 1/2 if a ≤ 3, 1 otherwise)."""
    a, g = node.inputs[0], grads[0]
    slope = b.node("Add", [b.node("Div", [a, b.scalar(3.0, a)]), b.scalar(0.5, a)])
    upper = b.node("Where", [b.node("Greater", [a, b.scalar(3.0, a)]), b.scalar(1.0, a), slope])
    derivative = _masked(b, b.node("Not", [b.node("Less", [a, b.scalar(-3.0, a)])]), upper, a)
    return [b.mul(g, derivative)]


@register_vjp("Erf", since=9)
def erf(node, b: GradientBuilder, grads, needed):
    """z = erf a: ∂a = g · 2/√π · e^(−a²)."""
    a = node.inputs[0]
    bell = b.node("Exp", [b.node("Neg", [b.mul(a, a)])])
    return [b.mul(grads[0], b.mul(bell, b.scalar(2.0 / math.sqrt(math.pi), a)))]


@register_vjp("Gelu", since=20)
def gelu(node, b: GradientBuilder, grads, needed):
    """Exact: z = a·Φ(a), ∂a = g · (Φ(a) + a·φ(a)), Φ(a) = (1 + erf(a/√2))/2,
    φ(a) = e^(−a²/2)/√(2π). ``approximate="tanh"``: z = a/2 · (1 + t), t = tanh(u),
    u = √(2/π)(a + 0.044715a³); ∂a = g · ((1 + t)/2 + a/2 · (1 − t²) · √(2/π)(1 + 3·0.044715a²))."""
    a, g = node.inputs[0], grads[0]
    half = b.scalar(0.5, a)
    one = b.scalar(1.0, a)
    square = b.mul(a, a)
    if string_attr(node, "approximate", "none") == "tanh":
        k = math.sqrt(2.0 / math.pi)
        cubic = b.mul(b.mul(square, a), b.scalar(0.044715, a))
        t = b.node("Tanh", [b.mul(b.node("Add", [a, cubic]), b.scalar(k, a))])
        first = b.mul(half, b.node("Add", [one, t]))
        du = b.mul(b.scalar(k, a), b.node("Add", [one, b.mul(square, b.scalar(3 * 0.044715, a))]))
        second = b.mul(b.mul(b.mul(half, a), b.node("Sub", [one, b.mul(t, t)])), du)
        return [b.mul(g, b.node("Add", [first, second]))]
    cdf = b.mul(
        half, b.node("Add", [one, b.node("Erf", [b.mul(a, b.scalar(1 / math.sqrt(2), a))])])
    )
    pdf = b.mul(
        b.node("Exp", [b.mul(square, b.scalar(-0.5, a))]),
        b.scalar(1 / math.sqrt(2 * math.pi), a),
    )
    return [b.mul(g, b.node("Add", [cdf, b.mul(a, pdf)]))]
