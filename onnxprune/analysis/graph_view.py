"""A read-only view of an ONNX graph for channel analysis.

Analysis reads the model many times (constants, shapes, consumers) and never edits it, so it
works on the protobuf directly: ``GraphView`` indexes nodes, initializers, producers and
consumers once and converts initializers to numpy lazily.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto, numpy_helper

from onnxprune.graph.shapes import Shape, value_shapes


@dataclass
class NodeView:
    """One node: name, op type, domain, input/output names ('' = absent) and decoded attributes."""

    index: int
    name: str
    op_type: str
    domain: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]
    subgraph_inputs: set[str] = field(default_factory=set)

    def input(self, position: int) -> str:
        """Name of input ``position`` or '' when the node has no such input."""
        return self.inputs[position] if position < len(self.inputs) else ""


def ensure_node_names(model: ModelProto) -> ModelProto:
    """Give every node a unique, stable name (``<op>_<index>`` when missing or duplicated)."""
    seen: set[str] = set()
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            base = f"{node.op_type}_{index}"
            name = base
            suffix = 0
            while name in seen:
                suffix += 1
                name = f"{base}_{suffix}"
            node.name = name
        seen.add(node.name)
    return model


def _outer_scope_names(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads but does not define (implicit inputs from the outer scope)."""
    defined = {value.name for value in graph.input} | {init.name for init in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        defined.update(node.output)
        used.update(name for name in node.input if name)
        for attribute in node.attribute:
            for sub in (
                [attribute.g]
                if attribute.type == onnx.AttributeProto.GRAPH
                else list(attribute.graphs)
            ):
                used.update(_outer_scope_names(sub))
    used.update(value.name for value in graph.output)
    return used - defined


class GraphView:
    """Indexed, read-only access to a model's main graph."""

    def __init__(self, model: ModelProto, static_model: ModelProto | None = None) -> None:
        graph = model.graph
        self.model = model
        self.opset = next(
            (imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), 0
        )
        self._initializers = {init.name: init for init in graph.initializer}
        self._arrays: dict[str, np.ndarray] = {}
        self.nodes: list[NodeView] = []
        self.producer: dict[str, NodeView] = {}
        self.consumers: dict[str, list[NodeView]] = defaultdict(list)
        for index, node in enumerate(graph.node):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            view = NodeView(
                index,
                node.name,
                node.op_type,
                node.domain,
                list(node.input),
                list(node.output),
                attrs,
            )
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    view.subgraph_inputs |= _outer_scope_names(attribute.g)
                elif attribute.type == onnx.AttributeProto.GRAPHS:
                    for sub in attribute.graphs:
                        view.subgraph_inputs |= _outer_scope_names(sub)
            self.nodes.append(view)
            for name in view.outputs:
                if name:
                    self.producer[name] = view
            for name in {*view.inputs, *view.subgraph_inputs}:
                if name:
                    self.consumers[name].append(view)
        self.graph_inputs = [v.name for v in graph.input if v.name not in self._initializers]
        self.graph_outputs = [v.name for v in graph.output]
        self.shapes: dict[str, Shape] = value_shapes(static_model or model)

    def is_constant(self, name: str) -> bool:
        """True when ``name`` is an initializer (after preprocessing all weights are)."""
        return name in self._initializers

    def constant(self, name: str) -> np.ndarray | None:
        """The initializer's value as numpy (cached), or None for non-constants."""
        if not name or name not in self._initializers:
            return None
        if name not in self._arrays:
            self._arrays[name] = numpy_helper.to_array(self._initializers[name])
        return self._arrays[name]

    def constant_shape(self, name: str) -> tuple[int, ...] | None:
        """Shape of an initializer without converting its data, or None for non-constants."""
        init = self._initializers.get(name) if name else None
        return None if init is None else tuple(int(d) for d in init.dims)

    def constant_dtype(self, name: str) -> np.dtype | None:
        """Numpy dtype of an initializer without converting its data, or None."""
        init = self._initializers.get(name) if name else None
        return (
            None if init is None else np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type))
        )

    def static_shape(self, name: str) -> tuple[int, ...] | None:
        """Fully known shape of a tensor (from inference at fixed input shapes), else None."""
        if name in self._initializers:
            return tuple(self._initializers[name].dims)
        shape = self.shapes.get(name)
        if shape is None or any(d is None for d in shape):
            return None
        return tuple(int(d) for d in shape)  # type: ignore[arg-type]

    def rank(self, name: str) -> int | None:
        """Rank of a tensor when known."""
        if name in self._initializers:
            return len(self._initializers[name].dims)
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)
