"""Pass: Constant nodes holding a tensor become initializers (gs.Constant)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs
from onnx_graphsurgeon.ir.tensor import LazyValues

from onnxprune.passes._graph import detach, output_names
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass

_NUMERIC_ATTRIBUTES = {
    "value_float": np.float32,
    "value_floats": np.float32,
    "value_int": np.int64,
    "value_ints": np.int64,
}


def _constant_values(node: gs.Node) -> np.ndarray | LazyValues | None:
    """The value a Constant node produces, or None for sparse/string/reference values."""
    if len(node.attrs) != 1:
        return None
    ((name, value),) = node.attrs.items()
    if name == "value" and isinstance(value, gs.Constant):
        if isinstance(value._values, LazyValues):
            return value._values  # already a private copy (see passes/pipeline.py)
        return np.asarray(value.values)
    if name in _NUMERIC_ATTRIBUTES and not isinstance(value, gs.Node.AttributeRef):
        return np.asarray(value, dtype=_NUMERIC_ATTRIBUTES[name])
    return None


@register_pass("constants_to_initializers")
def constants_to_initializers(graph: gs.Graph, ctx: PassContext) -> bool:
    """Every Constant node with a tensor/number value (not a graph output) becomes an initializer.

    Contract: the output tensor keeps its name and value; the node is dropped. Idempotent.
    """
    graph_outputs = output_names(graph)
    changed = False
    for node in graph.nodes:
        if node.op != "Constant" or len(node.outputs) != 1:
            continue
        tensor = node.outputs[0]
        if tensor.name in graph_outputs:
            continue
        values = _constant_values(node)
        if values is None:
            continue
        detach(node)
        tensor.to_constant(values)
        changed = True
    return changed
