"""Rewrites of the graph that is differentiated, not of the model the user gets.

Distillation trains initializer values and writes them back into the pruned model, whose graph
never changes; the graph it differentiates only has to compute the same function of the same
initializers (same names, same shapes). These rewrites make that graph cheaper:

* :func:`fold_zero_pads` — a constant-zero ``Pad`` whose only readers are ``Conv`` nodes
  (inputs 0, ``auto_pad`` NOTSET) on spatial axes is merged into their ``pads``. Exporters emit
  such pairs for TensorFlow-style "same" padding (EfficientNet: one before every depthwise
  Conv). The forward saves the padded copy, the backward its ``Slice``, and the Conv's
  backward-data is cropped by the ConvTranspose's own ``pads`` instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

import numpy as np
from onnx import ModelProto, numpy_helper

from onnxprune.autodiff.prepare import default_opset


def _attr(node, name: str, default):
    for attr in node.attribute:
        if attr.name == name:
            if attr.type == attr.INTS:
                return list(attr.ints)
            if attr.type == attr.STRING:
                return attr.s.decode()
            if attr.type == attr.FLOAT:
                return attr.f
            if attr.type == attr.INT:
                return attr.i
    return default


def _zero_pad_amounts(node, constants: dict[str, np.ndarray], opset: int) -> list[int] | None:
    """The ``pads`` of a constant-mode, zero-valued Pad, or None when it is anything else."""
    if node.domain not in ("", "ai.onnx") or _attr(node, "mode", "constant") != "constant":
        return None
    if opset < 11:
        pads = _attr(node, "pads", None)
        value = _attr(node, "value", 0.0)
    else:
        if len(node.input) < 2 or node.input[1] not in constants:
            return None
        if len(node.input) > 3 and node.input[3]:
            return None  # explicit axes (opset 18): left alone
        pads = [int(p) for p in constants[node.input[1]].reshape(-1)]
        value = 0.0
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in constants:
                return None
            value = float(constants[node.input[2]].reshape(-1)[0])
    if pads is None or value != 0.0 or any(p < 0 for p in pads):
        return None
    return pads


def fold_zero_pads(model: ModelProto, keep: Collection[str] = ()) -> ModelProto:
    """A copy of ``model`` with every foldable zero Pad merged into the Convs reading it (see
    the module docstring); the Pad's constants stay (unused), initializer names do not change.
    Pads whose output is in ``keep`` (tensors a loss reads) stay."""
    result = ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    opset = default_opset(result)
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    readers: dict[str, list] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            readers[name].append(node)
    outputs = {value.name for value in graph.output}
    dropped = set()
    for node in graph.node:
        if node.op_type != "Pad" or node.output[0] in outputs or node.output[0] in keep:
            continue
        pads = _zero_pad_amounts(node, constants, opset)
        users = readers.get(node.output[0], [])
        if pads is None or not users or len(pads) < 6 or any(pads[:2]):
            continue
        rank = len(pads) // 2
        if any(pads[rank : rank + 2]):
            continue
        if not all(_foldable_conv(user, node.output[0]) for user in users):
            continue
        begins, ends = pads[2:rank], pads[rank + 2 :]
        for user in users:
            current = _attr(user, "pads", [0] * (2 * (rank - 2)))
            merged = [a + b for a, b in zip(current, [*begins, *ends], strict=True)]
            _set_ints(user, "pads", merged)
            user.input[0] = node.input[0]
        dropped.add(id(node))
    if dropped:
        kept = [node for node in graph.node if id(node) not in dropped]
        del graph.node[:]
        graph.node.extend(kept)
        live = {name for node in kept for name in node.output}
        live |= {value.name for value in graph.input} | {init.name for init in graph.initializer}
        infos = [value for value in graph.value_info if value.name in live]
        del graph.value_info[:]
        graph.value_info.extend(infos)
    return result


def _foldable_conv(node, tensor: str) -> bool:
    return (
        node.op_type == "Conv"
        and node.domain in ("", "ai.onnx")
        and node.input[0] == tensor
        and tensor not in list(node.input[1:])
        and _attr(node, "auto_pad", "NOTSET") == "NOTSET"
    )


def _set_ints(node, name: str, values: list[int]) -> None:
    from onnx import helper

    kept = [attr for attr in node.attribute if attr.name != name]
    del node.attribute[:]
    node.attribute.extend(kept)
    node.attribute.append(helper.make_attribute(name, [int(v) for v in values]))
