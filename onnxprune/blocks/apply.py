"""Remove residual units: ``y = x + f(x)`` becomes ``y = x + c``, f's nodes are dropped.

``c`` is a constant of x's rank, one value per channel (see
:func:`onnxprune.blocks.observe.channel_constant`): the branch's mean output on calibration
data. For each removed unit, in graph order:

1. f's nodes are deleted (a unit nested in another removed unit's branch goes with it);
2. *fold* (exact): when x is read by nothing else, is not a graph output, y is not a graph
   output and x's producer P can absorb ``c``, the Add is deleted, every reader of y reads x,
   and ``c`` is added to P's constant: Conv bias (``c`` varies only along axis 1; a bias is
   created if absent), Gemm ``C`` (``c`` of shape [1, N], divided by ``beta``), or the
   constant operand of an Add (any ``c`` that broadcasts to x; this merges the constants of a
   removed stage into one Add);
3. otherwise the Add stays with its branch input replaced by a new initializer holding ``c``.

Initializers and value_info entries nobody reads any more are dropped; graph input and output
names, dtypes and ranks are unchanged. The result passes ``onnx.checker`` (full_check).

Equivalence (the proof in ``tests/blocks``): the result equals the original model in which
each removed unit's branch output o is replaced by the same constant ``c``
(:func:`constant_branch_model`), up to float32 rounding of folded sums.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from onnx import ModelProto, NodeProto, helper, numpy_helper

from onnxprune.blocks.find import BlockSearch, BlockUnit, elem_type
from onnxprune.errors import OnnxPruneError
from onnxprune.rewrite import check_model


class BlockRemovalError(OnnxPruneError):
    """Block removal was asked for something the model does not hold (a bug, exit code 1)."""

    exit_code = 1


class _Model:
    """A copy of a model with the lookups block removal needs, kept current through edits."""

    def __init__(self, model: ModelProto) -> None:
        self.model = ModelProto()
        self.model.CopyFrom(model)
        self.initializers = {init.name: init for init in self.model.graph.initializer}
        self.outputs = {value.name for value in self.model.graph.output}
        self.deleted: set[str] = set()

    def live_nodes(self) -> list[NodeProto]:
        return [node for node in self.model.graph.node if node.name not in self.deleted]

    def producer(self, name: str) -> NodeProto | None:
        for node in self.live_nodes():
            if name in node.output:
                return node
        return None

    def readers(self, name: str) -> list[NodeProto]:
        return [node for node in self.live_nodes() if name in node.input]

    def value(self, name: str) -> np.ndarray | None:
        init = self.initializers.get(name)
        return None if init is None else numpy_helper.to_array(init)

    def put(self, name: str, value: np.ndarray) -> str:
        unique, suffix = name, 0
        while unique in self.initializers:
            suffix += 1
            unique = f"{name}_{suffix}"
        tensor = numpy_helper.from_array(value, unique)
        self.model.graph.initializer.append(tensor)
        self.initializers[unique] = self.model.graph.initializer[-1]
        return unique

    def finish(self) -> ModelProto:
        graph = self.model.graph
        nodes = self.live_nodes()
        del graph.node[:]
        graph.node.extend(nodes)
        used = {name for node in nodes for name in node.input} | self.outputs
        produced = {name for node in nodes for name in node.output}
        kept = [init for init in graph.initializer if init.name in used]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        inputs = {value.name for value in graph.input}
        infos = [v for v in graph.value_info if v.name in produced or v.name in inputs]
        del graph.value_info[:]
        graph.value_info.extend(infos)
        return self.model


def _fold_into_conv(work: _Model, node: NodeProto, c: np.ndarray) -> bool:
    if c.ndim < 2 or any(d != 1 for i, d in enumerate(c.shape) if i != 1):
        return False
    weight = work.value(node.input[1]) if len(node.input) > 1 else None
    if weight is None or weight.shape[0] != c.shape[1]:
        return False
    bias = work.value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if len(node.input) > 2 and node.input[2] and bias is None:
        return False  # run-time bias
    base = np.zeros(c.shape[1], dtype=weight.dtype) if bias is None else bias
    name = work.put(f"{node.name}__block_bias", (base + c.reshape(-1)).astype(weight.dtype))
    while len(node.input) < 3:
        node.input.append("")
    node.input[2] = name
    return True


def _fold_into_gemm(work: _Model, node: NodeProto, c: np.ndarray) -> bool:
    if c.ndim != 2 or c.shape[0] != 1:
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    beta = float(attrs.get("beta", 1.0))
    existing = node.input[2] if len(node.input) > 2 else ""
    bias = work.value(existing) if existing else None
    if (existing and bias is None) or beta == 0.0:
        return False
    base = np.zeros(c.shape, dtype=c.dtype) if bias is None else bias
    try:
        merged = base + c / beta
    except ValueError:
        return False
    if merged.ndim > 2:
        return False
    name = work.put(f"{node.name}__block_bias", merged.astype(c.dtype))
    while len(node.input) < 3:
        node.input.append("")
    node.input[2] = name
    return True


def _fold_into_add(work: _Model, node: NodeProto, c: np.ndarray) -> bool:
    """k + c into the Add's constant k. Both k (an operand of the Add that makes x) and c
    (x's rank, 1 or x's size on every axis) broadcast to x, so k + c does too."""
    constants = [i for i, name in enumerate(node.input) if name in work.initializers]
    if len(node.input) != 2 or len(constants) != 1:
        return False
    position = constants[0]
    k = work.value(node.input[position])
    if k is None or k.ndim > c.ndim:
        return False
    merged = k + c
    node.input[position] = work.put(f"{node.name}__block_const", merged.astype(c.dtype))
    return True


def _try_fold(work: _Model, unit: BlockUnit, identity: str, add: NodeProto, c) -> bool:
    """Fold ``c`` into x's producer and delete the Add (module docstring, step 2)."""
    output = add.output[0]
    if identity in work.outputs or output in work.outputs:
        return False
    if any(node is not add for node in work.readers(identity)):
        return False
    producer = work.producer(identity)
    if producer is None or producer.domain not in ("", "ai.onnx") or len(producer.output) != 1:
        return False
    folders = {
        "Conv": lambda: _fold_into_conv(work, producer, c),
        "Gemm": lambda: _fold_into_gemm(work, producer, c),
        "Add": lambda: _fold_into_add(work, producer, c),
    }
    fold = folders.get(producer.op_type)
    if fold is None or not fold():
        return False
    work.deleted.add(add.name)
    for node in work.live_nodes():
        for i, name in enumerate(node.input):
            if name == output:
                node.input[i] = identity
    return True


def remove_units(
    search: BlockSearch,
    units: Iterable[int],
    constants: Mapping[int, np.ndarray],
    *,
    model: ModelProto | None = None,
    fold: bool = True,
    check: bool = True,
) -> ModelProto:
    """A copy of ``model`` (default ``search.model``) without the branches of ``units``
    (indices into ``search.units``); ``constants[i]`` is unit i's per-channel constant c
    (module docstring). ``model`` may be ``search.model`` after other edits that keep node and
    tensor names (channel removal); then the constants must match its widths
    (:func:`onnxprune.blocks.observe.constants_for`). ``fold=False`` always keeps the Add with
    a constant operand."""
    chosen = sorted({int(i) for i in units})
    removed_nodes = {name for i in chosen for name in search.units[i].nodes}
    work = _Model(search.model if model is None else model)
    order = {node.name: index for index, node in enumerate(work.model.graph.node)}
    missing = [
        name
        for i in chosen
        for name in (search.units[i].add, *search.units[i].nodes)
        if name not in order
    ]
    if missing:
        raise BlockRemovalError(f"node '{missing[0]}' of a unit is missing from the model")
    renamed: dict[str, str] = {}
    for index in sorted(chosen, key=lambda i: order[search.units[i].add]):
        unit = search.units[index]
        if unit.add in removed_nodes:
            continue  # nested in another removed branch
        work.deleted.update(unit.nodes)
        add = next(node for node in work.model.graph.node if node.name == unit.add)
        identity = renamed.get(unit.identity, unit.identity)
        dtype = helper.tensor_dtype_to_np_dtype(elem_type(search.model, unit.identity))
        c = np.asarray(constants[index]).astype(dtype)
        if fold and _try_fold(work, unit, identity, add, c):
            renamed[unit.output] = identity
            continue
        branch_position = list(add.input).index(unit.branch)
        add.input[branch_position] = work.put(f"{unit.add}__block_const", c)
    model = work.finish()
    if check:
        check_model(model)
    return model


def constant_branch_model(
    search: BlockSearch, units: Iterable[int], constants: Mapping[int, np.ndarray]
) -> ModelProto:
    """The oracle's reference: ``search.model`` with each unit's branch input of its Add
    replaced by its constant; nothing else changes (dead branch nodes stay)."""
    work = _Model(search.model)
    adds = {node.name: node for node in work.model.graph.node}
    for index in units:
        unit = search.units[index]
        add = adds[unit.add]
        dtype = helper.tensor_dtype_to_np_dtype(elem_type(search.model, unit.identity))
        position = list(add.input).index(unit.branch)
        add.input[position] = work.put(
            f"{unit.add}__reference_const", np.asarray(constants[index]).astype(dtype)
        )
    return work.model
