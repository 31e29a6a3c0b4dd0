"""Pass: expand ONNX Runtime's fused CPU ops back into standard ONNX ops.

A model saved after ONNX Runtime's graph optimizations (``optimized_model_filepath`` at the
``extended`` level, or by tools built on it) holds ``com.microsoft`` nodes that no channel
rule, MAC counter or gradient rule reads, so nothing in it could be pruned. Each expansion
below is registered by (domain, op type) in ``EXPANSIONS``; it writes the same function in
standard ops, so the rest of onnxprune sees an ordinary export. ONNX Runtime fuses the written
model again when it loads it. A node whose attributes fall outside what its expansion states
(an unknown activation, batch transposes) is left as it is: the analysis then blocks it with
its reason (fail closed).

Activations (``activation`` attribute) and their parameters:

    Relu, Sigmoid, Tanh                  none
    LeakyRelu                            α                  (FusedConv: activation_params[0];
    HardSigmoid                          α, β                FusedGemm: activation_alpha/beta)
    Clip                                 min, max           (FusedConv only)

Transformer fusions of ONNX Runtime's transformer optimizer (and HF Optimum's O1–O3):
``SkipLayerNormalization``, ``Gelu``, ``BiasGelu``, ``FastGelu`` and ``QuickGelu`` (each
function's docstring states its formula). ``Attention``, ``MultiHeadAttention`` and
``EmbedLayerNormalization`` are not expanded: they stay blocked.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_graphsurgeon as gs
from onnx import ModelProto

from onnxprune.passes._graph import NameGen
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass

MICROSOFT = "com.microsoft"
Expansion = Callable[[gs.Node, gs.Graph, PassContext, NameGen], bool]
EXPANSIONS: dict[tuple[str, str], Expansion] = {}

_CONV_ATTRIBUTES = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
_GEMM_ATTRIBUTES = ("alpha", "beta", "transA", "transB")
_PLAIN = ("Relu", "Sigmoid", "Tanh")
# default parameters of the activations, as ONNX defines them
_DEFAULTS = {"LeakyRelu": (0.01,), "HardSigmoid": (0.2, 0.5)}


def register_expansion(domain: str, op_type: str) -> Callable[[Expansion], Expansion]:
    """Decorator registering the expansion of ``domain``::``op_type`` nodes."""

    def decorate(fn: Expansion) -> Expansion:
        EXPANSIONS[(domain, op_type)] = fn
        return fn

    return decorate


def _rewire(tensors, new) -> None:
    """Replace the contents of a node's synchronized input/output list (no slice assignment)."""
    new = list(new)
    tensors.clear()
    tensors.extend(new)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float_dtype(tensor: gs.Tensor):
    """The tensor's float dtype for new constants (float32 when unknown or not float)."""
    dtype = getattr(tensor, "dtype", None)
    try:
        return np.dtype(dtype) if np.issubdtype(np.dtype(dtype), np.floating) else np.float32
    except TypeError:
        return np.float32


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
        gs.Constant(names(f"{y.name}_clip_{label}"), np.array(value, dtype=_float_dtype(y)))
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
        _rewire(node.inputs, inputs)
        return True
    kind, params = activation
    linear = gs.Variable(names(f"{y.name}_linear"), dtype=y.dtype, shape=y.shape)
    act = _activation_node(kind, params, linear, y, ctx, names)
    if act is None:
        return False
    node.op, node.domain, node.attrs = op, "", attrs
    _rewire(node.inputs, inputs)
    _rewire(node.outputs, [linear])
    graph.nodes.append(act)
    return True


@register_expansion(MICROSOFT, "FusedConv")
def fused_conv(node: gs.Node, graph: gs.Graph, ctx: PassContext, names: NameGen) -> bool:
    """FusedConv(X, W, B?, Z?) = act(Conv(X, W, B) + Z): a Conv with the node's Conv
    attributes, an Add of the optional sum input Z, then the activation (module docstring)."""
    if len(node.inputs) < 2 or len(node.outputs) != 1:
        return False
    kind = _text(node.attrs.get("activation", ""))
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
    _rewire(node.inputs, inputs)
    _rewire(node.outputs, [conv])
    graph.nodes.append(add)
    if activation is None:
        _rewire(add.outputs, [y])
    else:
        graph.nodes.append(_activation_node(kind, params, total, y, ctx, names))
    return True


@register_expansion(MICROSOFT, "FusedGemm")
def fused_gemm(node: gs.Node, graph: gs.Graph, ctx: PassContext, names: NameGen) -> bool:
    """FusedGemm(A, B, C?) = act(Gemm(A, B, C; α, β, transA, transB)) with LeakyRelu's α or
    HardSigmoid's α, β read from ``activation_alpha`` / ``activation_beta``."""
    if len(node.inputs) < 2 or len(node.outputs) != 1:
        return False
    kind = _text(node.attrs.get("activation", ""))
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
    _rewire(node.inputs, operands)
    if alpha != 1.0:
        product = gs.Variable(names(f"{y.name}_product"), dtype=y.dtype, shape=y.shape)
        _rewire(node.outputs, [product])
        scale = gs.Constant(names(f"{y.name}_alpha"), np.array(alpha, dtype=_float_dtype(y)))
        graph.nodes.append(gs.Node("Mul", names(f"{y.name}_scale"), inputs=[product, scale],
                                   outputs=[y]))  # fmt: skip
    return True


class _Emitter:
    """Appends standard nodes computing into fresh tensors named after ``base``."""

    def __init__(self, graph: gs.Graph, names: NameGen, base: gs.Tensor, opset: int) -> None:
        self.graph, self.names, self.base, self.opset = graph, names, base, opset

    def op(self, op: str, *inputs: gs.Tensor, out: gs.Tensor | None = None, **attrs) -> gs.Tensor:
        if out is None:
            out = gs.Variable(self.names(f"{self.base.name}_{op.lower()}"), dtype=self.base.dtype)
        node = gs.Node(op, self.names(f"{out.name}_node"), attrs=attrs, inputs=list(inputs),
                       outputs=[out])  # fmt: skip
        self.graph.nodes.append(node)
        return out

    def scalar(self, value: float) -> gs.Constant:
        value = np.array(value, dtype=_float_dtype(self.base))
        return gs.Constant(self.names(f"{self.base.name}_c"), value)

    def mean_last(self, x: gs.Tensor) -> gs.Tensor:
        """ReduceMean over the last axis, keepdims (axes as attribute before opset 18)."""
        if self.opset >= 18:
            axes = gs.Constant(self.names(f"{self.base.name}_axes"), np.array([-1], np.int64))
            return self.op("ReduceMean", x, axes, keepdims=1)
        return self.op("ReduceMean", x, axes=[-1], keepdims=1)


def _take_over(node: gs.Node) -> gs.Tensor:
    """Detach ``node`` and return its (only used) first output, to be produced anew."""
    y = node.outputs[0]
    node.inputs.clear()
    node.outputs.clear()
    return y


def _usable(node: gs.Node, count: int, used_outputs: int = 1) -> bool:
    """``node`` has ``count`` present inputs at least, and no output after the first
    ``used_outputs`` is read by anyone."""
    if len(node.inputs) < count or any(t.is_empty() for t in node.inputs[:count]):
        return False
    return all(t.is_empty() or not t.outputs for t in node.outputs[used_outputs:])


def _gelu(emit: _Emitter, x: gs.Tensor, y: gs.Tensor, approximate: str) -> None:
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
        if not _usable(node, required):
            return False
        x = node.inputs[0]
        bias = node.inputs[1] if len(node.inputs) > 1 and not node.inputs[1].is_empty() else None
        if with_bias is False and bias is not None:
            return False
        y = _take_over(node)
        emit = _Emitter(graph, names, y, ctx.opset)
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
    if not _usable(node, 1):
        return False
    alpha = float(node.attrs.get("alpha", 1.702))
    x = node.inputs[0]
    y = _take_over(node)
    emit = _Emitter(graph, names, y, ctx.opset)
    emit.op("Mul", x, emit.op("Sigmoid", emit.op("Mul", x, emit.scalar(alpha))), out=y)
    return True


@register_expansion(MICROSOFT, "SkipLayerNormalization")
def skip_layer_normalization(
    node: gs.Node, graph: gs.Graph, ctx: PassContext, names: NameGen
) -> bool:
    """SkipLayerNormalization(X, skip, γ, β?, bias?; ε) = LayerNorm(s; γ, β, ε) over the last
    axis, s = X + skip (+ bias); output 3, when read, is s. LayerNormalization from opset 17,
    else (s − E[s]) / √(E[(s − E[s])²] + ε) · γ + β in elementwise ops (the ``fuse_layernorm``
    pass reads that form). Outputs 1 and 2 (mean, inverse std) must be unread."""
    if not _usable(node, 3) or any(
        len(node.outputs) > k and not node.outputs[k].is_empty() and node.outputs[k].outputs
        for k in (1, 2)
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
    emit = _Emitter(graph, names, y, ctx.opset)
    total = emit.op("Add", x, skip, out=None if bias is not None else total_out)
    if bias is not None:
        total = emit.op("Add", total, bias, out=total_out)
    if ctx.opset >= 17:
        inputs = [total, gamma] + ([beta] if beta is not None else [])
        emit.op("LayerNormalization", *inputs, out=y, axis=-1, epsilon=epsilon)
        return True
    centered = emit.op("Sub", total, emit.mean_last(total))
    variance = emit.mean_last(emit.op("Mul", centered, centered))
    spread = emit.op("Sqrt", emit.op("Add", variance, emit.scalar(epsilon)))
    scaled = emit.op(
        "Mul", emit.op("Div", centered, spread), gamma, out=None if beta is not None else y
    )
    if beta is not None:
        emit.op("Add", scaled, beta, out=y)
    return True


@register_pass("expand_runtime_fusions")
def expand_runtime_fusions(graph: gs.Graph, ctx: PassContext) -> bool:
    """Replace every node with a registered expansion (module docstring) by standard ops.

    Contract: the same function up to float rounding; output names unchanged; nodes outside
    an expansion's stated attributes stay (and are reported).
    """
    names = NameGen(graph)
    expanded: dict[str, int] = {}
    left: dict[str, int] = {}
    for node in list(graph.nodes):
        expansion = EXPANSIONS.get((node.domain or "", node.op))
        if expansion is None:
            continue
        op = node.op
        if expansion(node, graph, ctx, names):
            expanded[op] = expanded.get(op, 0) + 1
        else:
            left[op] = left.get(op, 0) + 1
    if expanded:
        listed = ", ".join(f"{count} {op}" for op, count in sorted(expanded.items()))
        ctx.note(f"expanded ONNX Runtime fused ops into standard ops: {listed}")
        graph.toposort()
    if left:
        listed = ", ".join(f"{count} {op}" for op, count in sorted(left.items()))
        ctx.note(f"left ONNX Runtime fused ops with unsupported attributes as they are: {listed}")
    return bool(expanded)


def has_runtime_fusions(model: ModelProto) -> bool:
    """Whether the main graph holds a node with a registered expansion."""
    return any((node.domain, node.op_type) in EXPANSIONS for node in model.graph.node)


def expanded_model(model: ModelProto) -> ModelProto:
    """``model`` with its registered fused ops expanded (this pass alone, through
    :func:`~onnxprune.passes.preprocess`: interface and node names kept); ``model`` itself when
    it holds none."""
    if not has_runtime_fusions(model):
        return model
    from onnxprune.passes.pipeline import preprocess

    return preprocess(model, passes=("expand_runtime_fusions",)).model
