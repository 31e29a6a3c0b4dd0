"""Pass: rewrite ONNX ``Attention`` (opset 23+) as MatMul / Softmax / MatMul.

PyTorch's dynamo exporter writes ``scaled_dot_product_attention`` as one ``Attention`` node
from opset 23 on (and other tools may); the channel analysis, the MAC counter, the recovery
targets and the gradient rules all read the decomposed form older opsets export, and none
reads ``Attention``, so every head behind one was blocked. This pass writes each Attention
the way its specification defines it (ONNX operator ``Attention``, versions 23 and 24):

    s = (√c·Q)·(√c·K)ᵀ                    c = ``scale``, default 1/√d (d: Q's head size)
    s = h·tanh(s / h)                     only when ``softcap`` h > 0
    s = s + bias                          bias = attn_mask if float, 0 / −∞ where a boolean
                                          mask is True / False, plus −∞ above the diagonal
                                          (key j > query i) when ``is_causal``
    P = softmax(s) over the keys          in ``softmax_precision`` when that is set
    P = 0 where P is NaN                  only with a mask or ``is_causal``: a query row
                                          whose every key is masked gives a zero output row,
                                          as the specification says (softmax alone: NaN)
    Y = P·V

per batch row and head. 3-D operands ``[B, S, H·d]`` are split into heads first
(Reshape [0, 0, H, -1], Transpose [0, 2, 1, 3]) and Y is merged back the same way. With
grouped-query attention (Hq = g·Hkv query heads) Q is laid out [B, Hkv, g, S, d] and K, V get
a size-1 axis there, so MatMul broadcasts each key/value head over its g query heads; Y is
reshaped back to [B, Hq, S, dv].

Contract: the output Y keeps its name and equals the Attention's for every input (products
regrouped: float results agree to rounding; checked against ONNX Runtime's own kernel).
Left as they are, with a note naming the reason (the analysis then blocks their heads; the
MAC counters still count them, :func:`onnxprune.graph.attention.attention_macs`): a KV cache
(``past_key``/``past_value``/``nonpad_kv_seqlen`` inputs or ``present_*`` outputs read),
``qk_matmul_output`` read, operands of unknown rank, a default scale with an unknown head
size, a boolean/float mask whose key axis is shorter than the keys (the specification pads
it), grouped heads with unknown head counts or sizes or a mask that varies per query head,
3-D widths the head counts do not divide and a scale of 0 or below (invalid: ONNX Runtime
refuses both).
"""

from __future__ import annotations

import math

import numpy as np
import onnx_graphsurgeon as gs
from onnx import ModelProto, helper

from onnxprune.graph.attention import MASK, NONPAD_KV_SEQLEN, PAST_KEY, PAST_VALUE, K, Q, V
from onnxprune.passes._emit import NodeEmitter, finish_lowering, write_to
from onnxprune.passes._graph import output_names
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass

_FLOAT_TYPES = (np.float16, np.float32, np.float64)


def _present(node: gs.Node, index: int) -> gs.Tensor | None:
    """The node's input ``index`` when it is given (not absent, not an empty name)."""
    if index >= len(node.inputs):
        return None
    tensor = node.inputs[index]
    return None if tensor is None or not tensor.name else tensor


def _shape(tensor: gs.Tensor) -> list | None:
    if isinstance(tensor, gs.Constant):
        return list(np.asarray(tensor.values).shape)
    return None if tensor.shape is None else list(tensor.shape)


def _static(dim) -> int | None:
    return int(dim) if isinstance(dim, (int, np.integer)) and dim > 0 else None


class _Layout:
    """What the lowering needs to know of one node: rank, head counts, head size, scale."""

    def __init__(self, node: gs.Node) -> None:
        self.node = node
        self.q_shape = _shape(node.inputs[Q])
        self.k_shape = _shape(node.inputs[K])
        self.v_shape = _shape(node.inputs[V])
        self.rank = None if self.q_shape is None else len(self.q_shape)
        attrs = node.attrs
        if self.rank == 4:
            self.q_heads = _static(self.q_shape[1])
            self.kv_heads = _static(self.k_shape[1]) if self.k_shape else None
            self.head_size = _static(self.q_shape[3])
            self.v_head_size = _static(self.v_shape[3]) if self.v_shape else None
            self.same_heads = self.k_shape is not None and self.q_shape[1] == self.k_shape[1]
            self.divides = True
        else:
            self.q_heads = int(attrs.get("q_num_heads", 0) or 0) or None
            self.kv_heads = int(attrs.get("kv_num_heads", 0) or 0) or None
            width = _static(self.q_shape[-1]) if self.q_shape else None
            v_width = _static(self.v_shape[-1]) if self.v_shape else None
            k_width = _static(self.k_shape[-1]) if self.k_shape else None
            self.divides = all(
                not size or (heads and size % heads == 0)
                for size, heads in ((width, self.q_heads), (k_width, self.kv_heads),
                                    (v_width, self.kv_heads))
            )  # fmt: skip
            self.head_size = width // self.q_heads if width and self.q_heads else None
            self.v_head_size = v_width // self.kv_heads if v_width and self.kv_heads else None
            self.same_heads = self.q_heads is not None and self.q_heads == self.kv_heads
        scale = attrs.get("scale")
        if scale is None and self.head_size:
            scale = 1.0 / math.sqrt(self.head_size)
        self.scale = None if scale is None else float(scale)


def lowerable(node: gs.Node, graph_outputs: set[str]) -> _Layout | str:
    """The layout of an Attention this pass rewrites, or why it is left as it is."""
    if any(_present(node, i) is not None for i in (PAST_KEY, PAST_VALUE, NONPAD_KV_SEQLEN)):
        return "a key/value cache input"
    for index, output in enumerate(node.outputs[1:], start=1):
        if output.name and (output.outputs or output.name in graph_outputs):
            return (
                "its key/value cache or qk_matmul_output is read"
                if index < 3
                else ("its qk_matmul_output is read")
            )
    if len(node.inputs) < 3 or any(_present(node, i) is None for i in (Q, K, V)):
        return "fewer than three operands"
    dtype = node.outputs[0].dtype
    if dtype is None or np.dtype(dtype).type not in _FLOAT_TYPES:
        return "a non-float output"
    layout = _Layout(node)
    ranks = {len(s) if s is not None else None for s in (layout.q_shape, layout.k_shape,
                                                          layout.v_shape)}  # fmt: skip
    if ranks not in ({3}, {4}):
        return "operands of unknown or mixed rank"
    if layout.rank == 3 and not (layout.q_heads and layout.kv_heads):
        return "3-D operands without q_num_heads and kv_num_heads"
    if layout.rank == 3 and not layout.divides:
        return "3-D widths that the head counts do not divide"
    if layout.scale is None:
        return "the default scale of an unknown head size"
    if not layout.scale > 0:
        return f"a scale of {layout.scale} (it must be positive)"
    mask = _present(node, MASK)
    if mask is not None:
        reason = _mask_reason(mask, layout)
        if reason:
            return reason
    if not layout.same_heads:
        if not (layout.q_heads and layout.kv_heads and layout.head_size and layout.v_head_size):
            return "grouped heads with unknown head counts or sizes"
        if layout.q_heads % layout.kv_heads:
            return f"{layout.q_heads} query heads for {layout.kv_heads} key/value heads"
        if mask is not None and not _mask_shared_by_heads(mask):
            return "grouped heads with a mask that varies per query head"
    return layout


def _mask_reason(mask: gs.Tensor, layout: _Layout) -> str | None:
    shape = _shape(mask)
    keys = None
    if layout.k_shape is not None:
        keys = _static(layout.k_shape[2] if layout.rank == 4 else layout.k_shape[1])
    if shape is None or not shape:
        return "a mask of unknown rank"
    if len(shape) > 4:
        return "a mask of rank above 4"
    last = _static(shape[-1])
    if keys is not None and last is not None and last not in (1, keys):
        return "a mask shorter than the keys (padded by the operator)"
    dtype = None if mask.dtype is None else np.dtype(mask.dtype)
    if dtype is not None and dtype != np.bool_ and dtype.type not in _FLOAT_TYPES:
        return "a mask that is neither boolean nor float"
    return None


def _mask_shared_by_heads(mask: gs.Tensor) -> bool:
    """True when the mask broadcasts over the head axis (rank ≤ 2, or a size-1 head axis)."""
    shape = _shape(mask)
    if shape is None:
        return False
    if len(shape) <= 2:
        return True
    return shape[-3] == 1


class _Lowering:
    """Emits the decomposed form of one Attention node (module docstring)."""

    def __init__(self, node: gs.Node, layout: _Layout, opset: int) -> None:
        self.node = node
        self.layout = layout
        self.emit = NodeEmitter(node, opset, "attention")
        self.dtype = np.dtype(node.outputs[0].dtype)

    def scalar(self, value: float, dtype=None) -> gs.Constant:
        return self.emit.constant(np.asarray(value, dtype=dtype or self.dtype))

    def heads(self, tensor: gs.Tensor, count: int) -> gs.Tensor:
        """[B, L, H·d] → [B, H, L, d] (4-D operands pass unchanged)."""
        if self.layout.rank == 4:
            return tensor
        split = self.emit.reshape(tensor, [0, 0, count, -1])
        return self.emit.transpose(split, [0, 2, 1, 3])

    def scaled(self, tensor: gs.Tensor) -> gs.Tensor:
        return self.emit.node("Mul", [tensor, self.scalar(math.sqrt(self.layout.scale))])

    def build(self) -> gs.Tensor:
        layout, emit, node = self.layout, self.emit, self.node
        q = self.scaled(self.heads(node.inputs[Q], layout.q_heads or 0))
        k = self.scaled(self.heads(node.inputs[K], layout.kv_heads or 0))
        v = self.heads(node.inputs[V], layout.kv_heads or 0)
        grouped = not layout.same_heads
        if grouped:
            groups = layout.q_heads // layout.kv_heads
            q = emit.reshape(q, [0, layout.kv_heads, groups, -1, layout.head_size])
            k = emit.unsqueeze(k, [2])
            v = emit.unsqueeze(v, [2])
        rank = 5 if grouped else 4
        keys_last = [*range(rank - 2), rank - 1, rank - 2]
        scores = emit.matmul(q, emit.transpose(k, keys_last))
        softcap = float(node.attrs.get("softcap", 0.0) or 0.0)
        if softcap > 0:
            cap = self.scalar(softcap)
            scores = emit.node("Mul", [emit.node("Tanh", [emit.node("Div", [scores, cap])]), cap])
        bias = self.bias(grouped)
        if bias is not None:
            scores = emit.add(scores, bias)
        probabilities = self.softmax(scores)
        if bias is not None:
            is_nan = emit.node("IsNaN", [probabilities], dtype=np.bool_)
            probabilities = emit.node("Where", [is_nan, self.scalar(0.0), probabilities])
        y = emit.matmul(probabilities, v)
        if grouped:
            y = emit.reshape(y, [0, layout.q_heads, -1, layout.v_head_size])
        if layout.rank == 3:
            y = emit.reshape(emit.transpose(y, [0, 2, 1, 3]), [0, 0, -1])
        return y

    def softmax(self, scores: gs.Tensor) -> gs.Tensor:
        precision = self.node.attrs.get("softmax_precision")
        target = None
        if precision:
            target = helper.tensor_dtype_to_np_dtype(int(precision))
            if np.dtype(target) == self.dtype:
                target = None
        if target is None:
            return self.emit.node("Softmax", [scores], axis=-1)
        cast = self.emit.node("Cast", [scores], dtype=target, to=int(precision))
        result = self.emit.node("Softmax", [cast], dtype=target, axis=-1)
        to = helper.np_dtype_to_tensor_dtype(self.dtype)
        return self.emit.node("Cast", [result], to=int(to))

    def bias(self, grouped: bool) -> gs.Tensor | None:
        """The additive bias of the mask and the causal rule (None: neither)."""
        emit, terms = self.emit, []
        mask = _present(self.node, MASK)
        if mask is not None:
            rank = len(_shape(mask) or [])  # of the input: a new Where output has no shape yet
            if mask.dtype is not None and np.dtype(mask.dtype) == np.bool_:
                mask = emit.node("Where", [mask, self.scalar(0.0), self.scalar(-np.inf)])
            if grouped and rank >= 3:  # its head axis (size 1) becomes the (kv, group) pair
                mask = emit.unsqueeze(mask, [rank - 3])
            terms.append(mask)
        if int(self.node.attrs.get("is_causal", 0) or 0):
            terms.append(self.causal())
        if not terms:
            return None
        return terms[0] if len(terms) == 1 else emit.add(terms[0], terms[1])

    def causal(self) -> gs.Tensor:
        """[S, T] bias: 0 where key j ≤ query i, −∞ above (no cache: offset 0); a constant
        when both lengths are static, else built from the run-time lengths."""
        emit, layout = self.emit, self.layout
        q_len = layout.q_shape[1 if layout.rank == 3 else 2]
        k_len = layout.k_shape[1 if layout.rank == 3 else 2]
        if _static(q_len) and _static(k_len):
            allowed = np.tril(np.ones((int(q_len), int(k_len)), dtype=bool))
            return emit.constant(np.where(allowed, 0.0, -np.inf).astype(self.dtype))
        axis = 1 if layout.rank == 3 else 2  # the sequence axis of the operands as given
        lengths = []
        for operand in (self.node.inputs[Q], self.node.inputs[K]):
            length = emit.node("Shape", [operand], dtype=np.int64, start=axis, end=axis + 1)
            lengths.append(emit.squeeze(length, [0]))
        rows, cols = (
            emit.node("Range", [self.scalar(0, np.int64), n, self.scalar(1, np.int64)],
                      dtype=np.int64)
            for n in lengths
        )  # fmt: skip
        allowed = emit.node(
            "LessOrEqual", [emit.unsqueeze(cols, [0]), emit.unsqueeze(rows, [1])], dtype=np.bool_
        )
        return emit.node("Where", [allowed, self.scalar(0.0), self.scalar(-np.inf)])


@register_pass("lower_attention")
def lower_attention(graph: gs.Graph, ctx: PassContext) -> bool:
    """Replace every lowerable Attention (module docstring) by its MatMul/Softmax form."""
    lowered, kept = 0, []
    outputs = output_names(graph)
    for node in [n for n in graph.nodes if n.op == "Attention" and not n.domain]:
        layout = lowerable(node, outputs)
        if isinstance(layout, str):
            kept.append(f"'{node.name}' ({layout})")
            continue
        lowering = _Lowering(node, layout, ctx.opset)
        result = lowering.build()
        write_to(lowering.emit, result, node.outputs[0])
        graph.nodes.extend(lowering.emit.built())
        node.inputs.clear()
        node.outputs.clear()
        lowered += 1
    return finish_lowering(
        graph, ctx, "lower_attention", "Attention", lowered, kept, "MatMul/Softmax/MatMul"
    )


def holds_attention(model: ModelProto) -> bool:
    """Whether the main graph has an ONNX (default-domain) ``Attention`` node."""
    return any(
        node.op_type == "Attention" and node.domain in ("", "ai.onnx") for node in model.graph.node
    )


def attention_lowered(model: ModelProto) -> tuple[ModelProto, int]:
    """``model`` with its Attention nodes written out by this pass alone (no other pass), and
    how many were; ``model`` itself when it has none.

    The model as *measured*: ONNX Runtime 1.31's Attention kernel refuses PyTorch's padding
    mask ``[B, 1, 1, T]`` at any sequence length above 1, so an opset-23 text encoder could
    not even be evaluated, although its lowered form (numerically the same, checked against
    the kernel and the specification) runs — and is what onnxprune writes anyway. ``optimize``
    and the validation runners evaluate, time and compare this form of the user's model."""
    if not holds_attention(model):
        return model, 0
    from onnxprune.passes.pipeline import preprocess

    lowered = preprocess(model, passes=("lower_attention",)).model
    left = sum(node.op_type == "Attention" for node in lowered.graph.node)
    before = sum(node.op_type == "Attention" for node in model.graph.node)
    return lowered, before - left
