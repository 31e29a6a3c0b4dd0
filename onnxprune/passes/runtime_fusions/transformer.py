"""Fusions of ONNX Runtime's transformer optimizer (and HF Optimum O1–O4): the Gelu family,
SkipLayerNormalization, Attention and EmbedLayerNormalization. Each function's docstring states
its formula; ONNX Runtime's own kernels are the tests' reference.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.passes._graph import NameGen
from onnxprune.passes.context import PassContext
from onnxprune.passes.runtime_fusions.registry import (
    EXPANSIONS,
    MICROSOFT,
    Emitter,
    is_read,
    register_expansion,
    take_over,
    usable,
)


def _gelu(emit: Emitter, x: gs.Tensor, y: gs.Tensor, approximate: str) -> None:
    """y = Gelu(x): ONNX Gelu from opset 20, else its formula in elementwise ops
    (erf: ½x(1 + erf(x/√2)); tanh: ½x(1 + tanh(√(2/π)(x + 0.044715x³))))."""
    if emit.opset >= 20:
        emit.op("Gelu", x, out=y, approximate=approximate)
        return
    if approximate == "tanh":
        cube = emit.op("Mul", emit.op("Mul", x, x), x)
        inner = emit.op("Add", x, emit.op("Mul", cube, emit.scalar(0.044715)))
        core = emit.op("Tanh", emit.op("Mul", inner, emit.scalar(float(np.sqrt(2 / np.pi)))))
    else:
        core = emit.op("Erf", emit.op("Mul", x, emit.scalar(float(1 / np.sqrt(2)))))
    half = emit.op("Mul", x, emit.scalar(0.5))
    emit.op("Mul", half, emit.op("Add", core, emit.scalar(1.0)), out=y)


def _gelu_expansion(approximate: str, with_bias: bool | None):
    """Expansion of Gelu-like fused ops: y = Gelu(X (+ bias))."""

    def expand(node: gs.Node, graph: gs.Graph, ctx: PassContext, names: NameGen) -> bool:
        required = 2 if with_bias else 1
        if not usable(node, graph, required):
            return False
        x = node.inputs[0]
        bias = node.inputs[1] if len(node.inputs) > 1 and not node.inputs[1].is_empty() else None
        if with_bias is False and bias is not None:
            return False
        y = take_over(node)
        emit = Emitter(graph, names, y, ctx.opset, like=[x, bias] if bias is not None else [x])
        _gelu(emit, x if bias is None else emit.op("Add", x, bias), y, approximate)
        return True

    return expand


register_expansion(MICROSOFT, "Gelu")(_gelu_expansion("none", with_bias=False))
register_expansion(MICROSOFT, "BiasGelu")(_gelu_expansion("none", with_bias=True))
register_expansion(MICROSOFT, "FastGelu")(_gelu_expansion("tanh", with_bias=None))
EXPANSIONS[(MICROSOFT, "Gelu")].__doc__ = "Gelu(X) = ½X(1 + erf(X/√2))."
EXPANSIONS[(MICROSOFT, "BiasGelu")].__doc__ = "BiasGelu(X, b) = Gelu(X + b) (erf form)."
EXPANSIONS[(MICROSOFT, "FastGelu")].__doc__ = "FastGelu(X, b?) = Gelu_tanh(X + b)."


@register_expansion(MICROSOFT, "QuickGelu")
def quick_gelu(node: gs.Node, graph: gs.Graph, ctx: PassContext, names: NameGen) -> bool:
    """QuickGelu(X; α = 1.702) = X · sigmoid(α·X)."""
    if not usable(node, graph, 1):
        return False
    alpha = float(node.attrs.get("alpha", 1.702))
    x = node.inputs[0]
    y = take_over(node)
    emit = Emitter(graph, names, y, ctx.opset, like=[x])
    emit.op("Mul", x, emit.op("Sigmoid", emit.op("Mul", x, emit.scalar(alpha))), out=y)
    return True


@register_expansion(MICROSOFT, "SkipLayerNormalization")
def skip_layer_normalization(
    node: gs.Node, graph: gs.Graph, ctx: PassContext, names: NameGen
) -> bool:
    """SkipLayerNormalization(X, skip, γ, β?, bias?; ε) = LayerNorm(s; γ, β, ε) over the last
    axis (:func:`layer_norm`), s = X + skip (+ bias); output 3, when read, is s. Outputs 1 and 2
    (mean, inverse std) must be unread."""
    if not usable(node, graph, 3, used_outputs=4) or any(
        len(node.outputs) > k and is_read(node.outputs[k], graph) for k in (1, 2)
    ):
        return False
    x, skip, gamma = node.inputs[0], node.inputs[1], node.inputs[2]
    present = [t if not t.is_empty() else None for t in node.inputs[3:5]]
    beta, bias = [*present, None, None][:2]
    epsilon = float(node.attrs.get("epsilon", 1e-12))
    total_out = (
        node.outputs[3] if len(node.outputs) > 3 and not node.outputs[3].is_empty() else None
    )
    y = node.outputs[0]
    node.inputs.clear()
    node.outputs.clear()
    emit = Emitter(graph, names, y, ctx.opset, like=[x, gamma])
    total = emit.op("Add", x, skip, out=None if bias is not None else total_out)
    if bias is not None:
        total = emit.op("Add", total, bias, out=total_out)
    layer_norm(emit, total, gamma, beta, epsilon, y)
    return True


def layer_norm(emit: Emitter, x: gs.Tensor, gamma, beta, epsilon: float, y: gs.Tensor) -> None:
    """y = LayerNorm(x; γ, β, ε) over the last axis: LayerNormalization from opset 17, else
    (x − E[x]) / √(E[(x − E[x])²] + ε) · γ + β in elementwise ops (the form the
    ``fuse_layernorm`` pass reads)."""
    if emit.opset >= 17:
        inputs = [x, gamma] + ([beta] if beta is not None else [])
        emit.op("LayerNormalization", *inputs, out=y, axis=-1, epsilon=epsilon)
        return
    centered = emit.op("Sub", x, emit.mean_last(x))
    variance = emit.mean_last(emit.op("Mul", centered, centered))
    spread = emit.op("Sqrt", emit.op("Add", variance, emit.scalar(epsilon)))
    scaled = emit.op(
        "Mul", emit.op("Div", centered, spread), gamma, out=None if beta is not None else y
    )
    if beta is not None:
        emit.op("Add", scaled, beta, out=y)
