"""The op that computes a graph output, seen through ops that only move values around.

A classifier's logits and an embedding model's features are both float (N, C) outputs; their
values alone do not say which one a model returns. The graph sometimes does: embedding heads
end in a normalization of the features — a BatchNormalization over (N, C) (ArcFace-style face
recognition, re-identification "BN necks"), or an L2 normalization (``LpNormalization``) —
which no classifier applies to its logits. :func:`output_producer` walks back from an output
through Reshape, Flatten, Squeeze, Unsqueeze, Identity and Transpose to the op that computed it.
"""

from __future__ import annotations

from onnx import ModelProto

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


def is_embedding_head(model: ModelProto, output: str) -> bool:
    """Whether ``output`` is computed by a feature normalization (``EMBEDDING_HEADS``)."""
    return output_producer(model, output) in EMBEDDING_HEADS
