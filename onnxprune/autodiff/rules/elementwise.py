"""Binary elementwise ops with numpy broadcasting, and simple unary maps.

For z = f(a, b) broadcast to the output shape, ∂L/∂a = unbroadcast(g · ∂f/∂a): the product is
summed over the axes along which a was broadcast and reshaped to a's shape
(:meth:`GradientBuilder.unbroadcast`).
"""

from __future__ import annotations

from onnxprune.autodiff.builder import GradientBuilder
from onnxprune.autodiff.registry import register_vjp


def _out_dims(node, b: GradientBuilder):
    return b.dims(node.outputs[0])


@register_vjp("Add", since=7)
def add(node, b: GradientBuilder, grads, needed):
    """z = a + b: ∂a = unbroadcast(g), ∂b = unbroadcast(g)."""
    g, dims = grads[0], _out_dims(node, b)
    return [
        b.unbroadcast(g, dims, x) if need else None
        for x, need in zip(node.inputs, needed, strict=False)
    ]


@register_vjp("Sub", since=7)
def sub(node, b: GradientBuilder, grads, needed):
    """z = a − b: ∂a = unbroadcast(g), ∂b = −unbroadcast(g)."""
    g, dims = grads[0], _out_dims(node, b)
    out = [None, None]
    if needed[0]:
        out[0] = b.unbroadcast(g, dims, node.inputs[0])
    if needed[1]:
        out[1] = b.unbroadcast(b.node("Neg", [g]), dims, node.inputs[1])
    return out


@register_vjp("Mul", since=7)
def mul(node, b: GradientBuilder, grads, needed):
    """z = a · b: ∂a = unbroadcast(g · b), ∂b = unbroadcast(g · a)."""
    g, dims = grads[0], _out_dims(node, b)
    first, second = node.inputs[0], node.inputs[1]
    out = [None, None]
    if needed[0]:
        out[0] = b.unbroadcast(b.mul(g, second), dims, first)
    if needed[1]:
        out[1] = b.unbroadcast(b.mul(g, first), dims, second)
    return out


@register_vjp("Div", since=7)
def div(node, b: GradientBuilder, grads, needed):
    """z = a / b: ∂a = unbroadcast(g / b), ∂b = unbroadcast(−g · z / b)."""
    g, dims = grads[0], _out_dims(node, b)
    first, second = node.inputs[0], node.inputs[1]
    out = [None, None]
    scaled = b.node("Div", [g, second])
    if needed[0]:
        out[0] = b.unbroadcast(scaled, dims, first)
    if needed[1]:
        product = b.node("Neg", [b.mul(scaled, node.outputs[0])])
        out[1] = b.unbroadcast(product, dims, second)
    return out


@register_vjp("Sum", since=8)
def sum_(node, b: GradientBuilder, grads, needed):
    """z = Σ_i a_i (broadcast): ∂a_i = unbroadcast(g)."""
    g, dims = grads[0], _out_dims(node, b)
    return [
        b.unbroadcast(g, dims, x) if need else None
        for x, need in zip(node.inputs, needed, strict=False)
    ]


@register_vjp("Pow", since=7, inputs=(0,))
def pow_(node, b: GradientBuilder, grads, needed):
    """z = a^p (p not differentiated): ∂a = unbroadcast(g · p · a^(p−1))."""
    g, dims = grads[0], _out_dims(node, b)
    base, exponent = node.inputs[0], node.inputs[1]
    one = b.scalar(1.0, exponent)
    lowered = b.node("Pow", [base, b.node("Sub", [exponent, one])])
    if b.elem_type(exponent) != b.elem_type(base):
        exponent = b.node("Cast", [exponent], to=b.elem_type(base))
    derivative = b.mul(lowered, exponent)
    return [b.unbroadcast(b.mul(g, derivative), dims, base), None]


@register_vjp("Neg", since=6)
def neg(node, b: GradientBuilder, grads, needed):
    """z = −a: ∂a = −g."""
    return [b.node("Neg", [grads[0]])]


@register_vjp("Identity", "Dropout", since=1, inputs=(0,))
def identity(node, b: GradientBuilder, grads, needed):
    """z = a (Dropout in inference): ∂a = g."""
    return [grads[0]] + [None] * (len(node.inputs) - 1)


@register_vjp("Exp", since=6)
def exp(node, b: GradientBuilder, grads, needed):
    """z = eᵃ: ∂a = g · z."""
    return [b.mul(grads[0], node.outputs[0])]


@register_vjp("Log", since=6)
def log(node, b: GradientBuilder, grads, needed):
    """z = ln a: ∂a = g / a."""
    return [b.node("Div", [grads[0], node.inputs[0]])]


@register_vjp("Sqrt", since=6)
def sqrt(node, b: GradientBuilder, grads, needed):
    """z = √a: ∂a = g / (2z)."""
    z = node.outputs[0]
    return [b.node("Div", [grads[0], b.mul(z, b.scalar(2.0, z))])]


@register_vjp("Reciprocal", since=6)
def reciprocal(node, b: GradientBuilder, grads, needed):
    """z = 1/a: ∂a = −g · z²."""
    z = node.outputs[0]
    return [b.node("Neg", [b.mul(grads[0], b.mul(z, z))])]


@register_vjp("Abs", since=6)
def abs_(node, b: GradientBuilder, grads, needed):
    """z = |a|: ∂a = g · sign(a) (0 at a = 0)."""
    return [b.mul(grads[0], b.node("Sign", [node.inputs[0]]))]


@register_vjp("Expand", since=8, inputs=(0,))
def expand(node, b: GradientBuilder, grads, needed):
    """Y = Expand(X, shape), X broadcast numpy-style to ``shape`` (a class token repeated over
    the batch): ∂X = unbroadcast(g), the sum over the axes X was broadcast along."""
    return [b.unbroadcast(grads[0], _out_dims(node, b), node.inputs[0]), None]


@register_vjp("Where", since=9, inputs=(1, 2))
def where(node, b: GradientBuilder, grads, needed):
    """z = c ? x : y (broadcast; the condition c is not differentiable):
    ∂x = unbroadcast(c ? g : 0), ∂y = unbroadcast(c ? 0 : g)."""
    g, dims = grads[0], _out_dims(node, b)
    condition, first, second = node.inputs
    zero = b.scalar(0.0, node.outputs[0])
    out = [None, None, None]
    if needed[1]:
        out[1] = b.unbroadcast(b.node("Where", [condition, g, zero]), dims, first)
    if needed[2]:
        out[2] = b.unbroadcast(b.node("Where", [condition, zero, g]), dims, second)
    return out
