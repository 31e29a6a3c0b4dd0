"""The op that computes a graph output, seen through ops that only move values around.

A classifier's logits and an embedding model's features are both float (N, C) outputs; their
values alone do not say which one a model returns. The graph sometimes does: embedding heads
end in a normalization of the features — a BatchNormalization over (N, C) (ArcFace-style face
recognition, re-identification "BN necks"), or an L2 normalization (``LpNormalization``) —
which no classifier applies to its logits. :func:`output_producer` walks back from an output
through Reshape, Flatten, Squeeze, Unsqueeze, Identity and Transpose to the op that computed it.
"""

from __future__ import annotations

from collections.abc import Callable

from onnx import ModelProto, TensorProto

from onnxprune.graph.constants import constant_lookup

#: ops that change where values sit, not what they are
PASS_THROUGH = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose"})
#: producers that mark an output as normalized features rather than scores
EMBEDDING_HEADS = frozenset({"BatchNormalization", "LpNormalization"})


def output_producer(model: ModelProto, output: str) -> str | None:
    """Op type of the node computing graph output ``output`` (through ``PASS_THROUGH`` ops);
    None for a graph input, an initializer or an unknown name."""
    producers = {name: node for node in model.graph.node for name in node.output}
    name, seen = output, set()
    while name in producers and name not in seen:
        seen.add(name)
        node = producers[name]
        if node.op_type not in PASS_THROUGH or not node.input:
            return node.op_type
        name = node.input[0]
    return None


#: ops that move values without touching the last axis (Transpose only when its perm keeps
#: the last axis last: checked in :func:`linear_head_width`)
_LAST_AXIS_KEPT = frozenset({"Reshape", "Squeeze", "Unsqueeze", "Identity", "Transpose"})


def _layer_width(node, constant_of: Callable[[str], TensorProto | None]) -> int | None:
    """Output features of a MatMul / Gemm whose weight B is a constant, else None."""
    proto = constant_of(node.input[1]) if len(node.input) > 1 else None
    if proto is None:
        return None
    weight = tuple(proto.dims)
    if node.op_type == "MatMul" and len(weight) >= 2:
        return int(weight[-1])
    if node.op_type == "Gemm" and len(weight) == 2:
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return int(weight[0] if trans_b else weight[1])
    return None


def linear_head_width(model: ModelProto, output: str) -> int | None:
    """Output features F of the linear layer that computes graph output ``output`` along its
    last axis — a MatMul or Gemm with a constant weight, optionally plus a constant bias
    (Add), reached back from the output through Reshape, Squeeze, Unsqueeze, Identity and
    Transposes whose perm keeps the last axis last — or None. The caller checks that the
    output's last axis has F entries (a Reshape may have folded it): then every position of
    the output holds one score vector of a classifier head, e.g. a CTC recognizer's
    [T, N, classes] logits or a token classifier's [N, T, labels]."""
    producers = {name: node for node in model.graph.node for name in node.output}
    constant_of = constant_lookup(model)
    name, seen = output, set()
    while name in producers and name not in seen:
        seen.add(name)
        node = producers[name]
        if node.op_type == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if not perm or perm[-1] != len(perm) - 1:
                return None
        if node.op_type in _LAST_AXIS_KEPT and node.input:
            name = node.input[0]
            continue
        if node.op_type == "Add" and len(node.input) == 2:
            biases = [i for i in node.input if constant_of(i) is not None]
            others = [i for i in node.input if constant_of(i) is None]
            if len(biases) != 1 or len(others) != 1 or others[0] not in producers:
                return None
            node = producers[others[0]]
        if node.op_type in ("MatMul", "Gemm"):
            return _layer_width(node, constant_of)
        return None
    return None


def is_embedding_head(model: ModelProto, output: str) -> bool:
    """Whether ``output`` is computed by a feature normalization (``EMBEDDING_HEADS``)."""
    return output_producer(model, output) in EMBEDDING_HEADS
