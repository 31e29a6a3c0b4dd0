"""A thin editing layer over onnx-graphsurgeon used by plan fixups and slicing."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import onnx_graphsurgeon as gs


class GraphEditor:
    """Look up nodes and constants by name and replace them without touching shared tensors."""

    def __init__(self, graph: gs.Graph) -> None:
        self.graph = graph
        self.nodes = {node.name: node for node in graph.nodes}
        self.tensors = graph.tensors()
        self._counter = itertools.count()

    def node(self, name: str) -> gs.Node:
        return self.nodes[name]

    def constant_value(self, name: str) -> np.ndarray:
        tensor = self.tensors[name]
        if not isinstance(tensor, gs.Constant):
            raise ValueError(f"'{name}' is not a constant")
        return np.asarray(tensor.values)

    def set_constant_value(self, name: str, value: np.ndarray) -> None:
        """Replace a constant's value in place (every user sees the new value)."""
        self.tensors[name].values = np.ascontiguousarray(value)

    def set_attr(self, node_name: str, key: str, value: Any) -> None:
        self.nodes[node_name].attrs[key] = value

    def remove_attr(self, node_name: str, key: str) -> None:
        self.nodes[node_name].attrs.pop(key, None)

    def replace_constant_input(self, node_name: str, index: int, value: np.ndarray) -> None:
        """Give input ``index`` of the node a fresh constant (appending it when missing)."""
        node = self.nodes[node_name]
        constant = gs.Constant(
            f"{node_name}_pruned_{index}_{next(self._counter)}", np.asarray(value)
        )
        while len(node.inputs) < index:
            node.inputs.append(gs.Variable.empty())
        if index == len(node.inputs):
            node.inputs.append(constant)
        else:
            node.inputs[index] = constant

    def private_producer(self, node_name: str, index: int) -> str:
        """Name of a node that produces input ``index`` of ``node_name`` for it alone.

        The producer itself when this node is the only reader of that tensor; otherwise a copy
        of the producer (same op, attributes and inputs) whose new output feeds only this
        input, so editing the copy's constant inputs leaves the other readers untouched
        (one Concat-built Reshape target shared by the q, k and v views of several layers).
        """
        node = self.nodes[node_name]
        tensor = node.inputs[index]
        if not tensor.inputs:
            raise ValueError(f"input {index} of '{node_name}' has no producer")
        producer = tensor.inputs[0]
        readers = [n for n in tensor.outputs if n is not node]
        if not readers and tensor not in self.graph.outputs:
            return producer.name
        suffix = next(self._counter)
        output = gs.Variable(f"{tensor.name}__for_{node_name}_{suffix}", tensor.dtype, tensor.shape)
        copy = gs.Node(
            op=producer.op,
            name=f"{producer.name}__for_{node_name}_{suffix}",
            attrs=dict(producer.attrs),
            inputs=list(producer.inputs),
            outputs=[output],
            domain=producer.domain,
        )
        self.graph.nodes.append(copy)
        self.nodes[copy.name] = copy
        node.inputs[index] = output
        return copy.name
