"""ONNX Runtime's fused CPU ops of the ``extended`` level: FusedConv, FusedGemm, FusedMatMul.

Activations (``activation`` attribute) and their parameters:

    Relu, Sigmoid, Tanh                  none
    LeakyRelu                            α                  (FusedConv: activation_params[0];
    HardSigmoid                          α, β                FusedGemm: activation_alpha/beta)
    Clip                                 min, max           (FusedConv only)
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.passes._graph import NameGen
from onnxprune.passes.context import PassContext
from onnxprune.passes.runtime_fusions.registry import (
    MICROSOFT,
    float_dtype,
    register_expansion,
    rewire,
    text,
)

_CONV_ATTRIBUTES = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
_GEMM_ATTRIBUTES = ("alpha", "beta", "transA", "transB")
_PLAIN = ("Relu", "Sigmoid", "Tanh")
# default parameters of the activations, as ONNX defines them
_DEFAULTS = {"LeakyRelu": (0.01,), "HardSigmoid": (0.2, 0.5)}


def _known_activation(kind: str, params: tuple[float, ...]) -> bool:
    """Whether :func:`_activation_node` can write ``kind`` with ``params``."""
    if kind in _PLAIN:
        return not params
    if kind in _DEFAULTS:
        return len(params) <= len(_DEFAULTS[kind])
    return kind == "Clip" and len(params) == 2


def _activation_node(
    kind: str, params: tuple[float, ...], x: gs.Tensor, y: gs.Tensor, ctx, names
) -> gs.Node | None:
    """``y = kind(x; params)`` in standard ops, or None when ``kind``/``params`` are unknown
    (:func:`_known_activation`; nothing is created then)."""
    if not _known_activation(kind, params):
        return None
    name = names(f"{y.name}_{kind.lower()}")
    if kind in _PLAIN:
        return gs.Node(kind, name, inputs=[x], outputs=[y])
    if kind in _DEFAULTS:
        values = params + _DEFAULTS[kind][len(params) :]
        attrs = (
            {"alpha": values[0]}
            if kind == "LeakyRelu"
            else dict(zip(("alpha", "beta"), values, strict=True))
        )
        return gs.Node(kind, name, attrs=attrs, inputs=[x], outputs=[y])
    low, high = float(params[0]), float(params[1])
    if ctx.opset < 11:
        return gs.Node(kind, name, attrs={"min": low, "max": high}, inputs=[x], outputs=[y])
    bounds = [
        gs.Constant(names(f"{y.name}_clip_{label}"), np.array(value, dtype=float_dtype(y)))
        for label, value in (("min", low), ("max", high))
    ]
    return gs.Node(kind, name, inputs=[x, *bounds], outputs=[y])


def _split(
    node: gs.Node, op: str, inputs, attrs: dict, activation, graph: gs.Graph, ctx, names
) -> bool:
    """Replace ``node`` by ``op(inputs; attrs)`` followed by ``activation`` = (kind, params)
    (None: no activation); False, graph untouched, when the activation is unknown."""
    y = node.outputs[0]
    if activation is None:
        node.op, node.domain, node.attrs = op, "", attrs
        rewire(node.inputs, inputs)
        return True
    kind, params = activation
    linear = gs.Variable(names(f"{y.name}_linear"), dtype=y.dtype, shape=y.shape)
    act = _activation_node(kind, params, linear, y, ctx, names)
    if act is None:
        return False
    node.op, node.domain, node.attrs = op, "", attrs
    rewire(node.inputs, inputs)
    rewire(node.outputs, [linear])
    graph.nodes.append(act)
    return True


@register_expansion(MICROSOFT, "FusedConv")
def fused_conv(node: gs.Node, graph: gs.Graph, ctx: PassContext, names: NameGen) -> bool:
    """FusedConv(X, W, B?, Z?) = act(Conv(X, W, B) + Z): a Conv with the node's Conv
    attributes, an Add of the optional sum input Z, then the activation (module docstring)."""
    if len(node.inputs) < 2 or len(node.outputs) != 1:
        return False
    kind = text(node.attrs.get("activation", ""))
    params = tuple(float(v) for v in node.attrs.get("activation_params", ()))
    activation = (kind, params) if kind else None
    attrs = {key: node.attrs[key] for key in _CONV_ATTRIBUTES if key in node.attrs}
    inputs = list(node.inputs[:3])
    if len(node.inputs) < 4 or node.inputs[3].is_empty():
        return _split(node, "Conv", inputs, attrs, activation, graph, ctx, names)
    if activation is not None and not _known_activation(kind, params):
        return False
    y, z = node.outputs[0], node.inputs[3]
    total = gs.Variable(names(f"{y.name}_sum"), dtype=y.dtype, shape=y.shape)
    conv = gs.Variable(names(f"{y.name}_conv"), dtype=y.dtype, shape=y.shape)
    add = gs.Node("Add", names(f"{y.name}_add"), inputs=[conv, z], outputs=[total])
    node.op, node.domain, node.attrs = "Conv", "", attrs
    rewire(node.inputs, inputs)
    rewire(node.outputs, [conv])
    graph.nodes.append(add)
    if activation is None:
        rewire(add.outputs, [y])
    else:
        graph.nodes.append(_activation_node(kind, params, total, y, ctx, names))
    return True


@register_expansion(MICROSOFT, "FusedGemm")
def fused_gemm(node: gs.Node, graph: gs.Graph, ctx: PassContext, names: NameGen) -> bool:
    """FusedGemm(A, B, C?) = act(Gemm(A, B, C; α, β, transA, transB)) with LeakyRelu's α or
    HardSigmoid's α, β read from ``activation_alpha`` / ``activation_beta``."""
    if len(node.inputs) < 2 or len(node.outputs) != 1:
        return False
    kind = text(node.attrs.get("activation", ""))
    if kind == "LeakyRelu":
        params: tuple[float, ...] = (float(node.attrs.get("activation_alpha", 0.01)),)
    elif kind == "HardSigmoid":
        params = (
            float(node.attrs.get("activation_alpha", 0.2)),
            float(node.attrs.get("activation_beta", 0.5)),
        )
    elif kind in _PLAIN or not kind:
        params = ()
    else:
        return False  # Clip's bounds are not stated for FusedGemm: left as it is
    attrs = {key: node.attrs[key] for key in _GEMM_ATTRIBUTES if key in node.attrs}
    activation = (kind, params) if kind else None
    return _split(node, "Gemm", list(node.inputs[:3]), attrs, activation, graph, ctx, names)


@register_expansion(MICROSOFT, "FusedMatMul")
def fused_matmul(node: gs.Node, graph: gs.Graph, ctx: PassContext, names: NameGen) -> bool:
    """FusedMatMul(A, B) = α · A' @ B', A' (B') with its last two axes swapped when transA
    (transB): Transpose nodes, a MatMul and, for α ≠ 1, a Mul by the constant α. Operands of
    unknown rank and ``transBatchA``/``transBatchB`` are left as they are."""
    if len(node.inputs) != 2 or len(node.outputs) != 1:
        return False
    if node.attrs.get("transBatchA", 0) or node.attrs.get("transBatchB", 0):
        return False
    operands = list(node.inputs)
    for index, flag in enumerate(("transA", "transB")):
        if not node.attrs.get(flag, 0):
            continue
        tensor = operands[index]
        rank = len(tensor.shape) if tensor.shape is not None else None
        if rank is None or rank < 2:
            return False
        perm = list(range(rank))
        perm[-2], perm[-1] = perm[-1], perm[-2]
        swapped = gs.Variable(names(f"{tensor.name}_swapped"), dtype=tensor.dtype)
        graph.nodes.append(
            gs.Node("Transpose", names(f"{node.name}_{flag}"), attrs={"perm": perm},
                    inputs=[tensor], outputs=[swapped])
        )  # fmt: skip
        operands[index] = swapped
    alpha = float(node.attrs.get("alpha", 1.0))
    y = node.outputs[0]
    node.op, node.domain, node.attrs = "MatMul", "", {}
    rewire(node.inputs, operands)
    if alpha != 1.0:
        product = gs.Variable(names(f"{y.name}_product"), dtype=y.dtype, shape=y.shape)
        rewire(node.outputs, [product])
        scale = gs.Constant(names(f"{y.name}_alpha"), np.array(alpha, dtype=float_dtype(y)))
        graph.nodes.append(gs.Node("Mul", names(f"{y.name}_scale"), inputs=[product, scale],
                                   outputs=[y]))  # fmt: skip
    return True
