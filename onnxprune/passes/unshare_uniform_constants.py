"""Pass: give every reader of a shared *uniform* constant its own copy.

Exporters merge initializers with equal values (torch.onnx deduplicates them): the zero biases
of unrelated layers, or the unit scales of their norms, become one tensor read by many nodes.
The channel analysis must slice a shared constant the same way for every reader, so such a
merge couples layers that have nothing to do with each other — in a Hugging Face BERT with
zero biases the query/key/value heads were tied to the residual stream and blocked with it.

A constant whose elements are all equal carries no per-channel information: copying it per
reader changes no value and decouples the readers. Constants that are not uniform are left
shared (genuine weight sharing, ALBERT's layers, stays one tensor and keeps its readers
coupled), so are scalars (never sliced) and constants above :data:`MAX_ELEMENTS` elements.

Contract: every node reads the same values as before; after the pass, no uniform constant of
more than one element and at most ``MAX_ELEMENTS`` elements is read by two different nodes.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass

MAX_ELEMENTS = 1 << 16


def _uniform(constant: gs.Constant) -> bool:
    shape = tuple(constant.shape or ())
    size = int(np.prod(shape)) if shape else 1
    if size <= 1 or size > MAX_ELEMENTS:
        return False
    values = np.asarray(constant.values)
    if values.dtype.kind not in "fiub":
        return False
    flat = values.reshape(-1)
    return bool(np.all(flat == flat[0]))


@register_pass("unshare_uniform_constants")
def unshare_uniform_constants(graph: gs.Graph, ctx: PassContext) -> bool:
    """Copy each shared uniform constant for every reader after the first (module docstring)."""
    changed = False
    readers: dict[str, list[gs.Node]] = {}
    constants: dict[str, gs.Constant] = {}
    for node in graph.nodes:
        for tensor in node.inputs:
            if isinstance(tensor, gs.Constant):
                constants[tensor.name] = tensor
                if node not in readers.setdefault(tensor.name, []):
                    readers[tensor.name].append(node)
    taken = {tensor.name for tensor in graph.tensors().values()}
    for name, nodes in readers.items():
        if len(nodes) < 2 or not _uniform(constants[name]):
            continue
        values = np.asarray(constants[name].values)
        for copy_index, node in enumerate(nodes[1:], 1):
            copy_name = f"{name}__{copy_index}"
            while copy_name in taken:
                copy_name += "_"
            taken.add(copy_name)
            copy = gs.Constant(copy_name, values.copy())
            for position, tensor in enumerate(node.inputs):
                if tensor is constants[name]:
                    node.inputs[position] = copy
        changed = True
    return changed
