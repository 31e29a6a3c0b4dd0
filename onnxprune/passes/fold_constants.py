"""Pass: constant folding (static parts of shape computations, then onnx-graphsurgeon's folder)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import onnx_graphsurgeon as gs
from onnx_graphsurgeon.logger import G_LOGGER

from onnxprune.passes._graph import constant_array, detach, output_names, producer
from onnxprune.passes._shapes import static_shape
from onnxprune.passes.context import PassContext
from onnxprune.passes.registry import register_pass

# Never evaluated ahead of time: their value is not a function of their inputs.
_NONDETERMINISTIC = {
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
}
# Ops whose output can be far larger than their inputs; folded only when known to be small.
_GROWING = {"Expand", "Tile", "ConstantOfShape", "Range"}
_GROWING_MAX_ELEMENTS = 1 << 20


def _known_dims(tensor: gs.Tensor) -> list | None:
    if tensor.shape is None:
        return None
    return list(tensor.shape)


def _is_static(dims: list) -> bool:
    return all(isinstance(dim, int) and dim >= 0 for dim in dims)


def _shape_node_value(node: gs.Node) -> np.ndarray | None:
    """Value of ``Shape(x)`` (with start/end) when the selected dims of x are static."""
    dims = _known_dims(node.inputs[0])
    if dims is None:
        return None
    rank = len(dims)
    start = int(node.attrs.get("start", 0))
    end = int(node.attrs.get("end", rank))
    selected = dims[start:end]
    return np.array(selected, dtype=np.int64) if _is_static(selected) else None


def _gather_of_shape_value(node: gs.Node) -> np.ndarray | None:
    """Value of ``Gather(Shape(x), const)`` when the gathered dims of x are static."""
    shape_node = producer(node.inputs[0], "Shape")
    indices = constant_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if shape_node is None or indices is None or int(node.attrs.get("axis", 0)) != 0:
        return None
    if shape_node.attrs.get("start", 0) != 0 or "end" in shape_node.attrs:
        return None
    dims = _known_dims(shape_node.inputs[0])
    if dims is None:
        return None
    rank = len(dims)
    flat = indices.astype(np.int64).reshape(-1)
    if any(index < -rank or index >= rank for index in flat):
        return None
    picked = [dims[int(index)] for index in flat]
    if not _is_static(picked):
        return None
    return np.array(picked, dtype=np.int64).reshape(indices.shape)


def _slice_of_shape_value(node: gs.Node) -> np.ndarray | None:
    """Value of ``Slice(Shape(x), starts, ends[, 0, steps>0])`` when the sliced dims are static."""
    shape_node = producer(node.inputs[0], "Shape")
    if shape_node is None or len(node.inputs) < 3:
        return None
    if shape_node.attrs.get("start", 0) != 0 or "end" in shape_node.attrs:
        return None
    arrays = [constant_array(tensor) for tensor in node.inputs[1:]]
    if any(array is None or array.size != 1 for array in arrays):
        return None
    starts, ends = int(arrays[0].item()), int(arrays[1].item())
    axis = int(arrays[2].item()) if len(arrays) > 2 else 0
    step = int(arrays[3].item()) if len(arrays) > 3 else 1
    dims = _known_dims(shape_node.inputs[0])
    if dims is None or axis not in (0, -1) or step <= 0:
        return None
    limit = 1 << 62
    picked = dims[max(min(starts, limit), -limit) : max(min(ends, limit), -limit) : step]
    return np.array(picked, dtype=np.int64) if _is_static(picked) else None


def fold_static_shapes(graph: gs.Graph) -> int:
    """Replace Shape / Gather(Shape) / Slice(Shape) outputs whose dims are static by constants.

    Contract: only dimensions that are integers in the (inferred) tensor shapes are folded, so
    a dynamic dimension is never turned into a number. Returns the number of folded tensors.
    """
    graph_outputs = output_names(graph)
    folded = 0
    for node in graph.nodes:
        if len(node.outputs) != 1 or node.outputs[0].name in graph_outputs or not node.inputs:
            continue
        value = None
        if node.op == "Gather":
            value = _gather_of_shape_value(node)
        elif node.op == "Slice":
            value = _slice_of_shape_value(node)
        elif node.op == "Shape":
            value = _shape_node_value(node)
        if value is None:
            continue
        tensor = node.outputs[0]
        detach(node)
        tensor.to_constant(value)
        folded += 1
    return folded


def _exclude(node: gs.Node) -> bool:
    if node.op in _NONDETERMINISTIC:
        return True
    if node.op in _GROWING:
        shape = static_shape(node.outputs[0]) if node.outputs else None
        return shape is None or int(np.prod(shape)) > _GROWING_MAX_ELEMENTS
    return False


@contextlib.contextmanager
def _quiet_graphsurgeon() -> Iterator[None]:
    """Silence graphsurgeon and the ONNX Runtime sessions it opens while folding.

    ORT's default logger warns about its own graph optimizations on the folding sessions; those
    warnings say nothing about the user's model. Its severity has no getter, so it is restored
    to ORT's default (warning).
    """
    import onnxruntime as ort

    severity = G_LOGGER.severity
    G_LOGGER.severity = G_LOGGER.CRITICAL
    ort.set_default_logger_severity(4)  # failures come back as exceptions
    try:
        yield
    finally:
        G_LOGGER.severity = severity
        ort.set_default_logger_severity(2)


def _fold_bounded(graph: gs.Graph) -> str:
    """Fold with one ONNX Runtime session per output partition; bounded when one fails.

    graphsurgeon's ``partitioning="basic"`` with ``error_ok=True`` re-runs a failing partition
    recursively without shrinking it: one failing constant node meant thousands of sessions (a
    run that never ended, then RecursionError). So partitions run with ``error_ok=False``; if
    one fails, the graph is folded once more as a single session that may fail quietly (the
    model then keeps those nodes; ONNX Runtime reports the fault when the model is run).
    Returns '' or the first line of the failure.
    """
    try:
        graph.fold_constants(
            fold_shapes=False,
            partitioning="basic",
            error_ok=False,
            should_exclude_node=_exclude,
        )
        return ""
    except Exception as error:  # an ORT failure on a constant partition, or a GS routine
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = lines[0][:200] if lines else type(error).__name__
    graph.fold_constants(
        fold_shapes=False, partitioning=None, error_ok=True, should_exclude_node=_exclude
    )
    return reason


@register_pass("fold_constants")
def fold_constants(graph: gs.Graph, ctx: PassContext) -> bool:
    """Evaluate every node whose inputs are all constant (and static shape reads) ahead of time.

    Contract: outputs equal ONNX Runtime's evaluation of the folded nodes; dynamic dimensions
    stay dynamic (only statically known dims are read); random ops and large Expand/Tile/
    ConstantOfShape/Range are kept.
    """
    graph.toposort()
    nodes_before = len(graph.nodes)
    folded_shapes = fold_static_shapes(graph)
    with _quiet_graphsurgeon():
        failure = _fold_bounded(graph)
    if failure:
        ctx.note(f"constant folding evaluated no partition one by one: {failure}")
    graph.cleanup(remove_unused_graph_inputs=False)
    changed = folded_shapes > 0 or len(graph.nodes) != nodes_before
    if len(graph.nodes) < nodes_before:
        ctx.note(f"constant folding removed {nodes_before - len(graph.nodes)} node(s)")
    return changed
