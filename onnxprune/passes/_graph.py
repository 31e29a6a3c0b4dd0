"""Small onnx-graphsurgeon helpers shared by the passes (producers, consumers, rewiring)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs


def producer(tensor: gs.Tensor, op: str | tuple[str, ...] | None = None) -> gs.Node | None:
    """The node producing ``tensor`` (of type ``op`` when given), else None."""
    if len(tensor.inputs) != 1:
        return None
    node = tensor.inputs[0]
    if op is None:
        return node
    ops = (op,) if isinstance(op, str) else op
    return node if node.op in ops else None


def readers(tensor: gs.Tensor) -> list[gs.Node]:
    """The nodes reading ``tensor``, each once (a node may read it at several inputs)."""
    unique: list[gs.Node] = []
    for node in tensor.outputs:
        if node not in unique:
            unique.append(node)
    return unique


def output_names(graph: gs.Graph) -> set[str]:
    """Names of the graph outputs."""
    return {tensor.name for tensor in graph.outputs}


def sole_consumer(tensor: gs.Tensor, graph_outputs: set[str]) -> gs.Node | None:
    """The only consumer of ``tensor`` when it has exactly one and is no graph output."""
    if tensor.name in graph_outputs or len(tensor.outputs) != 1:
        return None
    return tensor.outputs[0]


def private(tensor: gs.Tensor, graph_outputs: set[str], consumers: int = 1) -> bool:
    """True when ``tensor`` is an intermediate used by exactly ``consumers`` node inputs."""
    if tensor.name in graph_outputs or isinstance(tensor, gs.Constant):
        return False
    uses = sum(1 for node in tensor.outputs for inp in node.inputs if inp is tensor)
    return uses == consumers


def constant_array(tensor: gs.Tensor) -> np.ndarray | None:
    """Values of a constant tensor, else None."""
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    return None


def scalar_value(tensor: gs.Tensor) -> float | None:
    """The value of a one-element constant tensor as a float, else None."""
    values = constant_array(tensor)
    if values is None or values.size != 1:
        return None
    if not np.issubdtype(values.dtype, np.number):
        return None
    return float(values.reshape(()))


def replace_uses(old: gs.Tensor, new: gs.Tensor) -> None:
    """Make every consumer of ``old`` read ``new`` instead."""
    for node in list(old.outputs):
        for index, tensor in enumerate(node.inputs):
            if tensor is old:
                node.inputs[index] = new


def detach(node: gs.Node) -> None:
    """Disconnect ``node`` from its tensors (cleanup then drops it)."""
    node.inputs.clear()
    node.outputs.clear()


def bypass(node: gs.Node, keep: gs.Tensor, drop: gs.Tensor, graph: gs.Graph) -> bool:
    """Remove ``node`` whose output ``drop`` equals its input ``keep``; False if impossible.

    Graph output names never change: when ``drop`` is a graph output, the producer of ``keep``
    writes ``drop`` directly instead, which needs ``keep`` to be a private intermediate.
    """
    graph_outputs = output_names(graph)
    if drop.name not in graph_outputs:
        replace_uses(drop, keep)
        detach(node)
        return True
    source = producer(keep)
    graph_inputs = {tensor.name for tensor in graph.inputs}
    if (
        source is None
        or isinstance(keep, gs.Constant)
        or keep.name in graph_outputs
        or keep.name in graph_inputs
        or len(source.outputs) < 1
    ):
        return False
    detach(node)
    replace_uses(keep, drop)
    slot = next(i for i, tensor in enumerate(source.outputs) if tensor is keep)
    source.outputs[slot] = drop
    return True


class NameGen:
    """Fresh tensor/node names that collide with nothing in the graph."""

    def __init__(self, graph: gs.Graph) -> None:
        self._taken = set(graph.tensors().keys()) | {node.name for node in graph.nodes}

    def __call__(self, base: str) -> str:
        name, index = base, 0
        while name in self._taken:
            index += 1
            name = f"{base}_{index}"
        self._taken.add(name)
        return name


def slice_arguments(
    node: gs.Node,
) -> tuple[list[int], list[int], list[int] | None, list[int] | None] | None:
    """(starts, ends, axes, steps) of a Slice with constant bounds, or None. Slice-10 and later
    take them as inputs 1-4 (axes, steps optional: None); Slice-1 (opsets 1-9) as the
    attributes ``starts``, ``ends``, ``axes`` (no steps)."""
    if len(node.inputs) == 1:
        starts, ends = node.attrs.get("starts"), node.attrs.get("ends")
        if starts is None or ends is None:
            return None
        axes = node.attrs.get("axes")
        return (
            [int(v) for v in starts],
            [int(v) for v in ends],
            (None if axes is None else [int(v) for v in axes]),
            None,
        )
    arrays = [constant_array(tensor) for tensor in node.inputs[1:5]]
    if len(arrays) < 2 or arrays[0] is None or arrays[1] is None:
        return None
    if any(array is None for array in arrays[2:]):
        return None
    lists = [[int(v) for v in array.reshape(-1)] for array in arrays]
    return (
        lists[0],
        lists[1],
        lists[2] if len(lists) > 2 else None,
        lists[3] if len(lists) > 3 else None,
    )
