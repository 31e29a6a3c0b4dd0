"""Multiply-accumulate (MAC) counts of Conv, ConvTranspose, Gemm and MatMul nodes.

Only these four op types are counted (the ones pruning shrinks and that dominate CNN/transformer
compute), ONNX Runtime's fused ops as the standard ops they expand to
(:func:`_expanded_fusions`), and their quantized forms with the same formula: ``ConvInteger`` and
``QLinearConv`` as Conv, ``MatMulInteger`` and ``QLinearMatMul`` as MatMul (operands at the
inputs :data:`OPERANDS` names), and ``Einsum`` by its equation
(:func:`onnxprune.graph.einsum.einsum_macs`), ``Attention`` by its two products
(:func:`onnxprune.graph.attention.attention_macs`), ``RNN``/``GRU``/``LSTM`` by their input and
recurrent products (:func:`onnxprune.graph.recurrent.recurrent_macs`); element-wise ops, pools, norms and nodes inside If/Loop/Scan
subgraphs count 0.
Shapes come from ONNX shape inference with data propagation at fixed input shapes; dynamic
dimensions not given in ``input_shapes`` (the batch included) are taken as 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import prod

from onnx import ModelProto, NodeProto, helper

from onnxprune.graph.attention import attention_macs
from onnxprune.graph.einsum import equation_macs
from onnxprune.graph.recurrent import RECURRENT_OPS, recurrent_macs
from onnxprune.graph.shapes import Shape
from onnxprune.stats.inference import infer_static_shapes
from onnxprune.stats.naming import node_names

#: op type -> (the float op whose formula it follows, input index of operand A, of operand B)
OPERANDS = {
    "Conv": ("Conv", 0, 1),
    "ConvTranspose": ("ConvTranspose", 0, 1),
    "Gemm": ("Gemm", 0, 1),
    "MatMul": ("MatMul", 0, 1),
    "ConvInteger": ("Conv", 0, 1),
    "QLinearConv": ("Conv", 0, 3),
    "MatMulInteger": ("MatMul", 0, 1),
    "QLinearMatMul": ("MatMul", 0, 3),
}
MAC_OPS = (*OPERANDS, "Einsum", "Attention", *RECURRENT_OPS)


@dataclass
class NodeMacs:
    """MACs of one counted node; ``macs`` is None when its shapes could not be resolved."""

    name: str
    op_type: str
    macs: int | None
    output_shape: list[int | None] | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MacReport:
    """Total MACs and the per-node breakdown.

    ``per_node`` maps node name -> MACs (unresolved nodes count 0) for every Conv,
    ConvTranspose, Gemm and MatMul of the main graph; ``nodes`` holds op type and output shape
    too, in graph order. Names follow :func:`onnxprune.stats.naming.node_names` (unnamed nodes
    are ``<OpType>_<index>``). ``unresolved`` lists nodes whose shapes stayed unknown,
    ``input_shapes`` the concrete input shapes counted at, ``notes`` assumptions made.
    """

    total: int
    per_node: dict[str, int]
    nodes: list[NodeMacs]
    input_shapes: dict[str, list[int]]
    unresolved: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _static(shape: Shape | None) -> list[int] | None:
    """The shape as ints, or None when unknown or any dimension is symbolic/non-positive."""
    if shape is None or any(d is None or d <= 0 for d in shape):
        return None
    return [int(d) for d in shape]


def conv_macs(output: list[int], weight: list[int]) -> int:
    """Conv: output elements × (Cin / group) × kernel area = prod(Y) × prod(W[1:]),
    with W of shape (Cout, Cin/group, k1, k2, ...)."""
    return prod(output) * prod(weight[1:])


def conv_transpose_macs(data: list[int], weight: list[int]) -> int:
    """ConvTranspose: input elements × (Cout / group) × kernel area = prod(X) × prod(W[1:]),
    with W of shape (Cin, Cout/group, k1, k2, ...): every input element is scattered through
    Cout/group kernels."""
    return prod(data) * prod(weight[1:])


def gemm_macs(a: list[int], b: list[int], trans_a: int = 0, trans_b: int = 0) -> int:
    """Gemm: M × N × K with A (M, K) or (K, M) under transA and B (K, N) or (N, K) under
    transB."""
    m, k = (a[1], a[0]) if trans_a else (a[0], a[1])
    n = b[0] if trans_b else b[1]
    return m * n * k


def matmul_macs(a: list[int], b: list[int]) -> int:
    """MatMul (numpy semantics): prod(broadcast batch) × M × N × K.

    A 1-D A is (1, K) and a 1-D B is (K, 1); batch dims of A[:-2] and B[:-2] broadcast.
    Both inputs may be activations (attention scores, context).
    """
    a2 = [1, *a] if len(a) == 1 else list(a)
    b2 = [*b, 1] if len(b) == 1 else list(b)
    m, k = a2[-2], a2[-1]
    n = b2[-1]
    batch_a, batch_b = a2[:-2], b2[:-2]
    rank = max(len(batch_a), len(batch_b))
    batch_a = [1] * (rank - len(batch_a)) + batch_a
    batch_b = [1] * (rank - len(batch_b)) + batch_b
    batch = [max(x, y) for x, y in zip(batch_a, batch_b, strict=True)]
    return prod(batch) * m * n * k


def node_macs(node: NodeProto, shapes: dict[str, Shape]) -> int | None:
    """MACs of ``node`` from static ``shapes``; None when a needed shape is unknown."""
    if node.op_type == "Einsum":
        return _einsum_node_macs(node, shapes)
    if node.op_type == "Attention" and not node.domain:
        operands = [_static(shapes.get(name)) if name else None for name in node.input]
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return attention_macs(operands, attributes)
    if node.op_type in RECURRENT_OPS:
        x, w, r = (_static(shapes.get(name)) for name in node.input[:3])
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return recurrent_macs(x, w, r, attributes)
    formula, a, b = OPERANDS.get(node.op_type, (node.op_type, 0, 1))
    if len(node.input) <= b:
        return None
    first = _static(shapes.get(node.input[a]))
    second = _static(shapes.get(node.input[b]))
    if first is None or second is None:
        return None
    if formula == "Conv":
        output = _static(shapes.get(node.output[0]))
        return None if output is None else conv_macs(output, second)
    if formula == "ConvTranspose":
        return conv_transpose_macs(first, second)
    if formula == "Gemm":
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return gemm_macs(first, second, attributes.get("transA", 0), attributes.get("transB", 0))
    if formula == "MatMul":
        return matmul_macs(first, second)
    return None


def _einsum_node_macs(node: NodeProto, shapes: dict[str, Shape]) -> int | None:
    """An Einsum's MACs from its equation and static operand shapes (None: unknown)."""
    operands = [_static(shapes.get(name)) for name in node.input]
    if any(shape is None for shape in operands):
        return None
    equation = next((a for a in node.attribute if a.name == "equation"), None)
    if equation is None:
        return None
    return equation_macs(helper.get_attribute_value(equation), operands)


def count_macs(model: ModelProto, input_shapes: dict[str, list[int]] | None = None) -> MacReport:
    """Count the MACs of ``model``'s main graph at ``input_shapes`` (batch defaults to 1).

    ``input_shapes`` maps input name -> full shape for dynamic inputs; names that are not model
    inputs raise InputError. Shapes come from ``fix_input_shapes`` + ``infer_shapes`` (data
    propagation); see the module docstring for what is counted.
    """
    expanded = _expanded_fusions(model)
    if expanded is not None:
        model = expanded
    report = _count(model, input_shapes)
    if expanded is not None:
        report.notes.insert(0, "MACs counted on the standard ops of ONNX Runtime's fused ops")
    if report.unresolved:
        folded = _count_folded(model, input_shapes)
        if folded is not None and len(folded.unresolved) < len(report.unresolved):
            return folded
    return report


def _expanded_fusions(model: ModelProto) -> ModelProto | None:
    """``model`` with ONNX Runtime's fused ops (``FusedConv``, ``FusedGemm``, ...) expanded
    into the standard ops they compute (:mod:`onnxprune.passes.expand_runtime_fusions`; node
    names are kept), or None when it holds none. ONNX shape inference knows no
    ``com.microsoft`` op, so every shape after the first fused node would stay unknown."""
    from onnxprune.passes.expand_runtime_fusions import expanded_model, has_runtime_fusions

    if not has_runtime_fusions(model):
        return None
    try:
        return expanded_model(model)
    except Exception:  # counting must not fail where plain inference succeeded
        return None


def _count_folded(model: ModelProto, input_shapes) -> MacReport | None:
    """Count again after constant folding, which resolves shapes ONNX inference cannot
    propagate (TorchScript's ``chunk``: Slice bounds computed as ``Shape[1] / 2 * k``).

    Folding keeps node names and never changes what a Conv/Gemm/MatMul computes.
    """
    from onnxprune.passes import preprocess

    try:
        folded = preprocess(
            model,
            input_shapes=input_shapes,
            passes=("constants_to_initializers", "fold_constants"),
        ).model
    except Exception:  # counting must not fail where plain inference succeeded
        return None
    report = _count(folded, input_shapes)
    report.notes.insert(
        0, "MACs counted after constant folding (shape inference alone was incomplete)"
    )
    return report


def _count(model: ModelProto, input_shapes) -> MacReport:
    inferred = infer_static_shapes(model, input_shapes)
    names = node_names(model.graph)
    nodes: list[NodeMacs] = []
    unresolved: list[str] = []
    for name, node in zip(names, model.graph.node, strict=True):
        if node.op_type not in MAC_OPS or node.domain not in ("", "ai.onnx"):
            continue
        macs = node_macs(node, inferred.shapes)
        if macs is None:
            unresolved.append(name)
        shape = inferred.shapes.get(node.output[0]) if node.output else None
        nodes.append(NodeMacs(name, node.op_type, macs, None if shape is None else list(shape)))
    per_node = {entry.name: entry.macs or 0 for entry in nodes}
    notes = list(inferred.notes)
    if unresolved:
        notes.append(f"{len(unresolved)} node(s) with unknown shapes counted as 0 MACs")
    return MacReport(
        total=sum(per_node.values()),
        per_node=per_node,
        nodes=nodes,
        input_shapes=inferred.input_shapes,
        unresolved=unresolved,
        notes=notes,
    )
