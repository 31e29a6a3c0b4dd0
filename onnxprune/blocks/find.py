"""Find removable residual units: ``y = x + f(x)`` where the branch ``f`` can be cut out whole.

For every ``Add`` with two run-time operands, each operand order is tried as (identity ``x``,
branch output ``o``). The branch ``f`` is the set of nodes found by walking producers back
from ``o`` (an explicit stack, no recursion) and stopping at ``x`` and at constants. The walk
only visits nodes after ``x``'s producer in graph (topological) order; reaching an earlier
tensor or another graph input means ``f`` reads something besides ``x``, and the order fails.

A unit is *removable* when, in addition, (fail closed, the first failing reason is recorded):

* ``f`` reads ``x`` (otherwise ``o`` is a constant-only branch, not a residual);
* ``x``, ``o`` and ``y`` have the same known static shape (no broadcast, no shape change);
* no tensor made inside ``f`` (``o`` included) is a graph output;
* no tensor made inside ``f`` is read by a node outside ``f`` (``o`` only by the Add);
* no node of ``f`` has a subgraph (If/Loop/Scan) and ``y`` is not read by one;
* x is a floating-point tensor (integer index arithmetic is never a residual block).

A layer-scale ``Mul`` by a constant (``y = x + γ·f(x)``) and the attention or MLP branch of a
transformer layer are the same pattern: the Mul or the whole pre-norm branch lies inside ``f``.
Identity/Dropout on the identity path are removed by preprocessing before the search.

Removing a unit rewrites ``y`` to ``x + c`` (see :mod:`onnxprune.blocks.apply`). Units of one
*stage* are consecutive: each unit's ``x`` is the previous unit's ``y`` or follows it through
at most two one-input nodes (a ReLU after the Add); a stage of two or more units can go as a
whole.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import onnx
from onnx import ModelProto

from onnxprune.analysis.graph_view import GraphView, NodeView, ensure_node_names
from onnxprune.analysis.measured import measure_missing_shapes
from onnxprune.graph.measured_shapes import says_measured
from onnxprune.graph.shapes import fix_input_shapes, infer_shapes, without_large_initializers
from onnxprune.stats import count_macs


@dataclass
class BlockUnit:
    """One removable residual branch.

    ``add`` names the Add node, ``identity`` is x, ``branch`` is o = f(x) (the Add's other
    input), ``output`` is y; ``nodes`` are f's node names in graph order; ``kind`` is
    ``attention`` (f holds a Softmax), ``mlp`` (MatMul/Gemm, no Conv) or ``conv``; ``macs``
    and ``params`` are what removing f saves; ``stage`` indexes :attr:`BlockSearch.stages`.
    """

    index: int
    add: str
    identity: str
    branch: str
    output: str
    nodes: list[str]
    kind: str
    macs: int = 0
    params: int = 0
    stage: int = -1

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RejectedBranch:
    """An Add that looks like a residual join but whose branch cannot be removed, and why."""

    add: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BlockSearch:
    """Result of :func:`find_units` on ``model`` (the searched model, with unique node names).

    ``shapes``: static shape of every unit's x at ``input_shapes``.
    ``stages``: unit indices of chains of consecutive units (see :func:`find_stages`), in graph
    order; single units form one-unit stages.
    """

    model: ModelProto
    units: list[BlockUnit]
    rejected: list[RejectedBranch]
    stages: list[list[int]]
    total_macs: int
    input_shapes: dict[str, list[int]] | None = None
    notes: list[str] = field(default_factory=list)
    per_node_macs: dict[str, int] = field(default_factory=dict, repr=False)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)

    def removable_macs(self) -> int:
        """MACs of all units' branches (a unit nested in another counts once)."""
        nodes: set[str] = set()
        per_node = self.per_node_macs
        for unit in self.units:
            nodes.update(unit.nodes)
        return sum(per_node.get(name, 0) for name in nodes)

    def to_dict(self) -> dict:
        total = max(self.total_macs, 1)
        return {
            "units": [{**u.to_dict(), "mac_share": u.macs / total} for u in self.units],
            "rejected": [r.to_dict() for r in self.rejected],
            "stages": self.stages,
            "total_macs": self.total_macs,
            "removable_macs": self.removable_macs(),
            "removable_mac_share": self.removable_macs() / total,
            "notes": list(self.notes),
        }


# Reasons ranked by how far the check got: the furthest failure of both operand orders is kept.
_WRONG_ORDER = 0  # the branch side is computed before the identity side
_NOT_RESIDUAL = 1  # f reads something besides x (projection shortcut), or not x at all
_FAILED_LATE = 2  # a residual branch that cannot be cut out


class _Failure(Exception):
    def __init__(self, reason: str, rank: int = _FAILED_LATE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rank = rank


_FLOATS = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.BFLOAT16,
    onnx.TensorProto.DOUBLE,
}


def static_view(
    model: ModelProto, input_shapes: dict[str, list[int]] | None = None
) -> tuple[GraphView, dict[str, int]]:
    """A :class:`GraphView` of ``model`` (node names made unique in place) with static shapes
    inferred at ``input_shapes`` (other dynamic dims = 1), and the element type of every
    tensor inference typed."""
    ensure_node_names(model)
    static = infer_shapes(fix_input_shapes(without_large_initializers(model), input_shapes))
    graph = static.graph
    types = {
        value.name: int(value.type.tensor_type.elem_type)
        for value in [*graph.input, *graph.value_info, *graph.output]
    }
    return GraphView(model, static), types


def side_tensors(view: GraphView, types: dict[str, int]) -> set[str]:
    """Run-time tensors that carry no features: computed without any feature input and
    without an embedding lookup (a Gather from a constant table of rank ≥ 2, where token ids
    become features) — a transformer's attention-mask bias, from the integer mask.

    Feature inputs are the floating-point and 8-bit integer graph inputs (pixels, quantized
    data); wider integers and booleans are ids, masks and lengths. A branch may read side
    tensors besides x: removing the branch (o → a constant) changes nothing upstream, and
    their other readers keep them."""
    features = {name for name in view.graph_inputs if types.get(name) in _FLOATS | _EIGHT_BIT}
    side = set(view.graph_inputs) - features
    for node in view.nodes:
        inputs = [name for name in node.inputs if name and not view.is_constant(name)]
        lookup = node.op_type == "Gather" and _is_table(view, node.inputs[0])
        if not inputs or node.subgraph_inputs or lookup or any(n not in side for n in inputs):
            continue
        side.update(name for name in node.outputs if name)
    return side


_EIGHT_BIT = {onnx.TensorProto.UINT8, onnx.TensorProto.INT8}


def _is_table(view: GraphView, name: str) -> bool:
    """A constant of rank ≥ 2 (an embedding table)."""
    if not view.is_constant(name):
        return False
    shape = view.static_shape(name)
    return shape is not None and len(shape) >= 2


def branch_nodes(
    view: GraphView, identity: str, branch: str, side: set[str] | frozenset[str] = frozenset()
) -> list[NodeView]:
    """Nodes of f between ``identity`` (x) and ``branch`` (o), in graph order.

    Raises :class:`_Failure` when f reads anything but x, constants and ``side`` tensors
    (:func:`side_tensors`), which the walk does not enter.
    """
    start = view.producer.get(branch)
    if start is None:
        raise _Failure(f"branch '{branch}' is a graph input", _WRONG_ORDER)
    source = view.producer.get(identity)
    floor = source.index if source is not None else -1
    if start.index <= floor:
        raise _Failure(f"branch '{branch}' is computed before '{identity}'", _WRONG_ORDER)
    found: dict[int, NodeView] = {start.index: start}
    stack = [start]
    reads_identity = False
    while stack:
        node = stack.pop()
        if node.subgraph_inputs:
            raise _Failure(f"node '{node.name}' of the branch has a subgraph")
        for name in node.inputs:
            if not name or view.is_constant(name):
                continue
            if name == identity:
                reads_identity = True
                continue
            if name in side:
                continue
            producer = view.producer.get(name)
            if producer is None:
                raise _Failure(
                    f"branch reads graph input '{name}' besides '{identity}'", _NOT_RESIDUAL
                )
            if producer.index <= floor:
                raise _Failure(
                    f"branch reads '{name}' besides '{identity}' (projection or other shortcut)",
                    _NOT_RESIDUAL,
                )
            if producer.index not in found:
                found[producer.index] = producer
                stack.append(producer)
    if not reads_identity:
        raise _Failure(f"branch does not read '{identity}'", _NOT_RESIDUAL)
    return [found[index] for index in sorted(found)]


def check_closed(view: GraphView, nodes: list[NodeView], add: NodeView, branch: str) -> None:
    """Raise :class:`_Failure` unless f's tensors stay inside f (o read only by the Add)."""
    inside = {node.name for node in nodes}
    outputs = set(view.graph_outputs)
    for node in nodes:
        for name in node.outputs:
            if not name:
                continue
            if name in outputs:
                raise _Failure(f"branch tensor '{name}' is a graph output")
            for consumer in view.consumers.get(name, []):
                if consumer.name in inside:
                    continue
                if name == branch and consumer.name == add.name:
                    continue
                raise _Failure(f"branch tensor '{name}' is also read by '{consumer.name}'")
    if sum(1 for n in add.inputs if n == branch) != 1:
        raise _Failure(f"'{branch}' is added to itself")


def check_shapes(view: GraphView, identity: str, branch: str, output: str) -> None:
    """Raise :class:`_Failure` unless x, o and y have one known static shape."""
    shapes = [view.static_shape(name) for name in (identity, branch, output)]
    if any(shape is None for shape in shapes):
        raise _Failure("shape unknown at the given input shapes (give --input-shape)")
    if not shapes[0] == shapes[1] == shapes[2]:
        raise _Failure(f"shape change: x {shapes[0]}, f(x) {shapes[1]}, y {shapes[2]}")


def _kind(nodes: list[NodeView]) -> str:
    ops = {node.op_type for node in nodes}
    if "Softmax" in ops:
        return "attention"
    if "Conv" in ops or "ConvTranspose" in ops:
        return "conv"
    return "mlp"


def try_unit(
    view: GraphView,
    types: dict[str, int],
    add: NodeView,
    identity: str,
    branch: str,
    side: set[str] | frozenset[str] = frozenset(),
) -> list[NodeView]:
    """f's nodes when ``add`` = identity + branch is a removable unit; else :class:`_Failure`."""
    output = add.outputs[0]
    nodes = branch_nodes(view, identity, branch, side)
    check_closed(view, nodes, add, branch)
    check_shapes(view, identity, branch, output)
    if types.get(identity) not in _FLOATS:
        raise _Failure(f"'{identity}' is not a floating-point tensor")
    if any(c.subgraph_inputs and output in c.subgraph_inputs for c in view.consumers[output]):
        raise _Failure(f"'{output}' is read inside a subgraph")
    return nodes


def _unit_params(view: GraphView, nodes: list[NodeView]) -> int:
    inside = {node.name for node in nodes}
    total = 0
    for name in {n for node in nodes for n in node.inputs if n and view.is_constant(n)}:
        if all(c.name in inside for c in view.consumers[name]):
            shape = view.constant_shape(name) or ()
            count = 1
            for dim in shape:
                count *= int(dim)
            total += count
    return total


STAGE_HOPS = 2


def _next_identity(view: GraphView, output: str, identities: set[str]) -> str | None:
    """The x of the unit that follows y = ``output``: y itself, or the end of a chain of at most
    ``STAGE_HOPS`` nodes (each y's only reader, with one run-time input and one output, such
    as the ReLU after a ResNet block)."""
    tensor = output
    for _ in range(STAGE_HOPS + 1):
        if tensor in identities:
            return tensor
        readers = view.consumers.get(tensor, [])
        if len(readers) != 1 or tensor in view.graph_outputs:
            return None
        reader = readers[0]
        dynamic = [n for n in reader.inputs if n and not view.is_constant(n)]
        outputs = [n for n in reader.outputs if n]
        if len(dynamic) != 1 or len(outputs) != 1 or reader.subgraph_inputs:
            return None
        tensor = outputs[0]
    return None


def find_stages(view: GraphView, units: list[BlockUnit]) -> list[list[int]]:
    """Chains of consecutive units, in graph order: each unit's x is the previous unit's y, or
    follows it through one-input nodes only (:func:`_next_identity`)."""
    by_identity = {unit.identity: unit for unit in units}
    following = {
        unit.index: by_identity[name].index
        for unit in units
        if (name := _next_identity(view, unit.output, set(by_identity))) is not None
    }
    has_previous = set(following.values())
    stages: list[list[int]] = []
    for unit in units:
        if unit.index in has_previous:
            continue  # not the first of its chain
        chain = [unit.index]
        while chain[-1] in following:
            chain.append(following[chain[-1]])
        stages.append(chain)
    for position, chain in enumerate(stages):
        for index in chain:
            units[index].stage = position
    return stages


def find_units(model: ModelProto, input_shapes: dict[str, list[int]] | None = None) -> BlockSearch:
    """Every removable residual unit of ``model`` (a preprocessed model; see module docstring).

    ``model`` is copied; the returned :attr:`BlockSearch.model` is the copy with unique node
    names that unit node names refer to.
    """
    named = ModelProto()
    named.CopyFrom(model)
    view, types = static_view(named, input_shapes)
    measured = measure_missing_shapes(named, view, input_shapes, None)
    macs = count_macs(named, input_shapes)
    side = side_tensors(view, types)
    units: list[BlockUnit] = []
    rejected: list[RejectedBranch] = []
    for add in view.nodes:
        if add.op_type != "Add" or add.domain not in ("", "ai.onnx") or len(add.inputs) != 2:
            continue
        left, right = add.inputs
        if not left or not right or view.is_constant(left) or view.is_constant(right):
            continue
        failure: _Failure | None = None
        for identity, branch in ((left, right), (right, left)):
            try:
                nodes = try_unit(view, types, add, identity, branch, side)
            except _Failure as error:
                if failure is None or error.rank > failure.rank:
                    failure = error
                continue
            units.append(
                BlockUnit(
                    index=len(units),
                    add=add.name,
                    identity=identity,
                    branch=branch,
                    output=add.outputs[0],
                    nodes=[node.name for node in nodes],
                    kind=_kind(nodes),
                    macs=sum(macs.per_node.get(node.name, 0) for node in nodes),
                    params=_unit_params(view, nodes),
                )
            )
            failure = None
            break
        same_shape = view.static_shape(left) is not None and view.static_shape(
            left
        ) == view.static_shape(right)
        if failure is not None and (failure.rank >= _FAILED_LATE or same_shape):
            rejected.append(RejectedBranch(add.name, failure.reason))
    stages = find_stages(view, units)
    return BlockSearch(
        named,
        units,
        rejected,
        stages,
        macs.total,
        input_shapes,
        notes=_notes(measured, macs.notes),
        per_node_macs=dict(macs.per_node),
        shapes={u.identity: view.static_shape(u.identity) for u in units},  # type: ignore[misc]
    )


def _notes(measured: list[str], mac_notes: list[str]) -> list[str]:
    """The MAC count's notes, and the search's own shape note unless the MAC count already
    says that shapes were measured (the same run at the same input shapes)."""
    said = any(says_measured(note) for note in mac_notes)
    return [*([] if said else measured), *mac_notes]


def elem_type(model: ModelProto, name: str) -> int:
    """ONNX element type of tensor ``name`` (value_info, inputs, outputs), float if unknown."""
    graph = model.graph
    for value in [*graph.value_info, *graph.input, *graph.output]:
        if value.name == name and value.type.tensor_type.elem_type:
            return int(value.type.tensor_type.elem_type)
    return onnx.TensorProto.FLOAT
