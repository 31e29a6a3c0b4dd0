"""Write refitted weights and bias shifts into a pruned model (a copy is edited in place).

New values get new initializer names (``<node>__recovered_w`` / ``_b``) so a constant shared
with another node never changes under it; initializers nobody reads any more are dropped.
A bias shift goes into the node's own bias (Conv B, Gemm C, created when absent); for MatMul
into the constant of a following ``Add`` when there is one, else into a new ``Add`` node.
"""

from __future__ import annotations

import numpy as np
from onnx import ModelProto, helper, numpy_helper

from onnxprune.errors import OnnxPruneError


class RecoveryError(OnnxPruneError):
    """The pruned model does not have the layout recovery expects (a bug)."""

    exit_code = 1


class ModelEdits:
    """Read and replace consumer weights and biases of one model by node name."""

    def __init__(self, model: ModelProto) -> None:
        self.model = model
        self.nodes = {node.name: node for node in model.graph.node}
        self.initializers = {init.name: init for init in model.graph.initializer}
        self.replaced: set[str] = set()

    def node(self, name: str):
        node = self.nodes.get(name)
        if node is None:
            raise RecoveryError(f"node '{name}' is missing from the pruned model")
        return node

    def value(self, name: str) -> np.ndarray | None:
        init = self.initializers.get(name)
        return None if init is None else numpy_helper.to_array(init)

    def _put(self, name: str, value: np.ndarray) -> str:
        unique = name
        suffix = 0
        while unique in self.initializers:
            suffix += 1
            unique = f"{name}_{suffix}"
        tensor = numpy_helper.from_array(value, unique)
        self.model.graph.initializer.append(tensor)
        self.initializers[unique] = self.model.graph.initializer[-1]
        return unique

    def input_value(self, node_name: str, position: int) -> np.ndarray | None:
        node = self.node(node_name)
        return self.value(node.input[position]) if position < len(node.input) else None

    def set_input(self, node_name: str, position: int, value: np.ndarray, tag: str) -> None:
        """Point input ``position`` of the node at a new initializer holding ``value``."""
        node = self.node(node_name)
        name = self._put(f"{node_name}__recovered_{tag}", value)
        while len(node.input) <= position:
            node.input.append("")
        if node.input[position]:
            self.replaced.add(node.input[position])
        node.input[position] = name

    def shift_bias(self, node_name: str, delta: np.ndarray, dtype) -> None:
        """Add ``delta`` (one value per output channel) to the node's output."""
        node = self.node(node_name)
        delta = np.asarray(delta, dtype=np.float64)
        if node.op_type == "Conv":
            self._shift_input(node_name, 2, delta, dtype)
        elif node.op_type == "Gemm":
            beta = next((a.f for a in node.attribute if a.name == "beta"), 1.0)
            if len(node.input) > 2 and node.input[2] and beta != 0:
                self._shift_input(node_name, 2, delta / beta, dtype)
            else:
                for attribute in list(node.attribute):
                    if attribute.name == "beta":
                        node.attribute.remove(attribute)
                self.set_input(node_name, 2, delta.astype(dtype), "b")
        elif node.op_type == "MatMul":
            self._shift_matmul(node, delta, dtype)
        else:
            raise RecoveryError(f"cannot add a bias to {node.op_type} '{node_name}'")

    def _shift_input(self, node_name: str, position: int, delta, dtype) -> None:
        current = self.input_value(node_name, position)
        node = self.node(node_name)
        if current is None and position < len(node.input) and node.input[position]:
            raise RecoveryError(f"bias of '{node_name}' is not a constant")
        base = np.zeros(len(delta)) if current is None else current.astype(np.float64)
        if base.size == 1 and len(delta) > 1:
            base = np.full(len(delta), float(base.reshape(-1)[0]))
        if base.size != len(delta):
            raise RecoveryError(f"bias of '{node_name}' has an unexpected shape {base.shape}")
        self.set_input(node_name, position, (base.reshape(-1) + delta).astype(dtype), "b")

    def _shift_matmul(self, node, delta, dtype) -> None:
        output = node.output[0]
        readers = [n for n in self.model.graph.node if output in n.input]
        graph_outputs = {value.name for value in self.model.graph.output}
        if len(readers) == 1 and readers[0].op_type == "Add" and output not in graph_outputs:
            add = readers[0]
            other = 1 - list(add.input).index(output)
            constant = self.value(add.input[other])
            if constant is not None and constant.size == len(delta) and constant.ndim <= 2:
                value = (constant.astype(np.float64).reshape(-1) + delta).reshape(constant.shape)
                self.set_input(add.name, other, value.astype(dtype), "b")
                return
        hidden = f"{output}__before_bias"
        node.output[0] = hidden
        for value in self.model.graph.value_info:
            if value.name == output:
                self.model.graph.value_info.remove(value)
                break
        bias = self._put(f"{node.name}__recovered_b", delta.astype(dtype))
        add = helper.make_node("Add", [hidden, bias], [output], name=f"{node.name}__bias")
        position = list(self.model.graph.node).index(node)
        self.model.graph.node.insert(position + 1, add)
        self.nodes[add.name] = self.model.graph.node[position + 1]

    def drop_unused(self) -> None:
        """Remove the replaced initializers that no node of the main graph reads any more."""
        used = {name for node in self.model.graph.node for name in node.input}
        used |= {value.name for value in self.model.graph.output}
        has_subgraphs = any(
            a.type in (a.GRAPH, a.GRAPHS) for node in self.model.graph.node for a in node.attribute
        )
        if has_subgraphs:  # subgraphs may read outer initializers: keep everything
            return
        dead = self.replaced - used
        keep = [init for init in self.model.graph.initializer if init.name not in dead]
        inputs = [value for value in self.model.graph.input if value.name not in dead]
        del self.model.graph.initializer[:]
        self.model.graph.initializer.extend(keep)
        del self.model.graph.input[:]
        self.model.graph.input.extend(inputs)
        self.initializers = {init.name: init for init in keep}
        self.replaced -= dead
