"""Normalize a model's storage: Constant-node weights become initializers, dead parts go.

Paddle2ONNX and older exporters keep weights in ``Constant`` nodes; every later layer expects
weights as initializers. Nodes that feed no graph output and initializers nobody reads are
dropped so that statistics and pruning see only the live graph.
"""

from __future__ import annotations

import numpy as np
from onnx import GraphProto, ModelProto, NodeProto, TensorProto, helper, numpy_helper

_SCALAR_ATTRIBUTES = {
    "value_float": lambda a: np.array(a.f, dtype=np.float32),
    "value_floats": lambda a: np.array(list(a.floats), dtype=np.float32),
    "value_int": lambda a: np.array(a.i, dtype=np.int64),
    "value_ints": lambda a: np.array(list(a.ints), dtype=np.int64),
}


def normalize_model(model: ModelProto) -> ModelProto:
    """Return a normalized copy of ``model`` (the argument is not modified).

    0. :func:`~onnxprune.io.bitmask.decode_bitmask` (weights onnxprune stored as bitmask +
    non-zeros become dense initializers again), 1. :func:`lift_initializer_inputs` (weights
    listed as graph inputs become constants, IR 3 becomes IR 4), 2. :func:`constants_to_initializers`, 3. :func:`drop_dead_nodes`,
    4. :func:`drop_unused_initializers`, 5. :func:`drop_stale_value_info`, on the main graph.
    """
    from onnxprune.io.bitmask import decode_bitmask

    normalized = ModelProto()
    normalized.CopyFrom(model)
    graph = normalized.graph
    decode_bitmask(graph)
    lift_initializer_inputs(normalized)
    constants_to_initializers(graph)
    drop_dead_nodes(graph)
    drop_unused_initializers(graph)
    drop_stale_value_info(graph)
    return normalized


def weight_inputs(model: ModelProto) -> list[str]:
    """Names of the main graph's inputs that only declare an initializer of the same name."""
    weights = {tensor.name for tensor in model.graph.initializer}
    return [value.name for value in model.graph.input if value.name in weights]


def lift_initializer_inputs(model: ModelProto) -> int:
    """Make weights listed as graph inputs constants, in place; returns how many were lifted.

    Contract: IR 3 requires every initializer to be listed as a graph input as well (ONNX Model
    Zoo models of opsets 7–8: MXNet, Caffe2, CNTK and old PyTorch exports), and later exports
    may still list them (PyTorch's ``keep_initializers_as_inputs=True``, some converters). Such
    an input makes its weight a default a caller may override, so every pass that adds or
    reshapes a weight would have to add or reshape an input too, and sub-models built from the
    graph would ask to be fed the weight. ONNX Runtime constant-folds only initializers that are
    not inputs (it warns about the others). The lifted model lists only the inputs that have
    no initializer and declares at least IR 4 (where an initializer need not be an input); its
    opsets, nodes and weights are unchanged, so it computes the same outputs.
    """
    lifted = set(weight_inputs(model))
    if lifted:
        inputs = [value for value in model.graph.input if value.name not in lifted]
        del model.graph.input[:]
        model.graph.input.extend(inputs)
    if model.ir_version < 4:
        model.ir_version = 4
    return len(lifted)


def lifted_note(count: int) -> str:
    """The note a door records when :func:`lift_initializer_inputs` lifted ``count`` weights."""
    return (
        f"{count} weight(s) were also listed as graph inputs (IR 3, or an export that keeps "
        "initializers as inputs); they are constants now and the model is written without "
        "those inputs (same opsets and outputs)"
    )


def constant_tensor(node: NodeProto) -> TensorProto | None:
    """The tensor a main-graph ``Constant`` node produces, named after its output, or None.

    Handles ``value`` (tensor), ``value_float(s)``, ``value_int(s)`` and ``value_string(s)``;
    ``sparse_value`` stays a node (returns None).
    """
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
        return None
    if len(node.attribute) != 1:
        return None
    attribute = node.attribute[0]
    name = node.output[0]
    if attribute.name == "value":
        tensor = TensorProto()
        tensor.CopyFrom(attribute.t)
        tensor.name = name
        return tensor
    if attribute.name in _SCALAR_ATTRIBUTES:
        return numpy_helper.from_array(_SCALAR_ATTRIBUTES[attribute.name](attribute), name)
    if attribute.name == "value_string":
        return helper.make_tensor(name, TensorProto.STRING, [], [attribute.s])
    if attribute.name == "value_strings":
        return helper.make_tensor(
            name, TensorProto.STRING, [len(attribute.strings)], list(attribute.strings)
        )
    return None


def constants_to_initializers(graph: GraphProto) -> int:
    """Replace main-graph Constant nodes by initializers of the same name; returns how many.

    A Constant whose output is also a graph output stays a node (graph outputs are produced by
    nodes). The graph is IR 4 or newer (:func:`lift_initializer_inputs` runs first), where an
    initializer need not be a graph input.
    """
    outputs = {value.name for value in graph.output}
    kept: list[NodeProto] = []
    new_initializers: list[TensorProto] = []
    for node in graph.node:
        tensor = None if set(node.output) & outputs else constant_tensor(node)
        if tensor is None:
            kept.append(node)
        else:
            new_initializers.append(tensor)
    if not new_initializers:
        return 0
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(new_initializers)
    return len(new_initializers)


def subgraph_references(node: NodeProto) -> set[str]:
    """Every tensor name read by nodes inside ``node``'s subgraphs (recursively).

    An over-approximation of the outer-scope names the subgraphs capture: names defined inside
    the subgraph are included too, which can only keep more of the outer graph alive.
    """
    names: set[str] = set()
    for attribute in node.attribute:
        graphs = ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs)
        for subgraph in graphs:
            for inner in subgraph.node:
                names.update(name for name in inner.input if name)
                names.update(subgraph_references(inner))
            names.update(value.name for value in subgraph.output)
    return names


def node_reads(node: NodeProto) -> set[str]:
    """Names a node depends on: its inputs and what its subgraphs capture."""
    return {name for name in node.input if name} | subgraph_references(node)


def drop_dead_nodes(graph: GraphProto) -> int:
    """Remove nodes that contribute to no graph output; returns how many were removed.

    Liveness walks backwards from the graph outputs through node inputs (and subgraph captures).
    """
    producers: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for name in node.output:
            if name:
                producers[name] = index
    live: set[int] = set()
    pending = [value.name for value in graph.output]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        index = producers.get(name)
        if index is None or index in live:
            continue
        live.add(index)
        pending.extend(node_reads(graph.node[index]))
    dead = len(graph.node) - len(live)
    if dead:
        kept = [node for index, node in enumerate(graph.node) if index in live]
        del graph.node[:]
        graph.node.extend(kept)
    return dead


def drop_unused_initializers(graph: GraphProto) -> int:
    """Remove initializers no node reads and no graph output names; returns how many.

    A graph input that only declared such an initializer (IR < 4 style) is removed with it;
    real graph inputs (without an initializer) are never touched.
    """
    used = {value.name for value in graph.output}
    for node in graph.node:
        used |= node_reads(node)
    unused = {init.name for init in graph.initializer if init.name not in used}
    if not unused:
        return 0
    kept = [init for init in graph.initializer if init.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    inputs = [value for value in graph.input if value.name not in unused]
    del graph.input[:]
    graph.input.extend(inputs)
    return len(unused)


def drop_stale_value_info(graph: GraphProto) -> int:
    """Remove value_info entries for tensors that no longer exist; returns how many."""
    existing = {name for node in graph.node for name in node.output}
    existing.update(value.name for value in graph.input)
    existing.update(init.name for init in graph.initializer)
    kept = [value for value in graph.value_info if value.name in existing]
    removed = len(graph.value_info) - len(kept)
    if removed:
        del graph.value_info[:]
        graph.value_info.extend(kept)
    return removed
