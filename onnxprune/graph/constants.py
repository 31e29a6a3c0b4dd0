"""Constants of a graph by name: initializers and main-graph ``Constant`` nodes alike."""

from __future__ import annotations

from collections.abc import Callable

from onnx import ModelProto, TensorProto

from onnxprune.io.normalize import constant_tensor


def constant_lookup(model: ModelProto) -> Callable[[str], TensorProto | None]:
    """``name -> TensorProto | None`` over initializers and main-graph ``Constant`` nodes
    (:func:`onnxprune.io.normalize.constant_tensor`), each converted only when asked for."""
    initializers = {init.name: init for init in model.graph.initializer}
    nodes = {
        node.output[0]: node
        for node in model.graph.node
        if node.op_type == "Constant" and len(node.output) == 1
    }

    def lookup(name: str) -> TensorProto | None:
        if name in initializers:
            return initializers[name]
        return constant_tensor(nodes[name]) if name in nodes else None

    return lookup
