"""Partial evaluation of small integer shape vectors: which entries are known at analysis time.

``shape_values(ctx, name)`` returns the value of a 0-D/1-D integer tensor as a list whose entries
are ints where they do not depend on run-time data and None where they do (a dynamic batch read
through ``Shape``). One evaluator per op, registered in ``EVALUATORS``; an op without one (or an
unsupported attribute) makes the whole vector unknown (None), so callers fail closed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from onnx import numpy_helper

from onnxprune.analysis.context import AnalysisContext
from onnxprune.analysis.graph_view import NodeView

Values = list[int | None]
Evaluator = Callable[[NodeView, AnalysisContext, list["Values | None"]], "Values | None"]
EVALUATORS: dict[str, Evaluator] = {}
MAX_LENGTH = 16  # shape vectors only; longer tensors are not shapes


def evaluator(*op_types: str) -> Callable[[Evaluator], Evaluator]:
    """Register ``fn(node, ctx, input_values) -> output values or None`` for ``op_types``."""

    def decorate(fn: Evaluator) -> Evaluator:
        for op_type in op_types:
            EVALUATORS[op_type] = fn
        return fn

    return decorate


def shape_values(ctx: AnalysisContext, name: str, depth: int = 0) -> Values | None:
    """Known entries of integer tensor ``name`` (None entries: run-time), or None if unknown.

    Memoized per (name, depth) on ``ctx``: a shape computation that reads one tensor twice
    (``Add(s, s)`` chains) would otherwise cost 2^depth evaluations.
    """
    memo: dict[tuple[str, int], Values | None] = ctx.__dict__.setdefault("_shape_values_memo", {})
    key = (name, depth)
    if key not in memo:
        memo[key] = _shape_values(ctx, name, depth)
    value = memo[key]
    return None if value is None else list(value)


def _shape_values(ctx: AnalysisContext, name: str, depth: int) -> Values | None:
    constant = ctx.constant(name)
    if constant is not None:
        if not np.issubdtype(constant.dtype, np.integer) or constant.size > MAX_LENGTH:
            return None
        return [int(v) for v in constant.reshape(-1)]
    producer = ctx.view.producer.get(name)
    if producer is None or depth > 32 or producer.domain not in ("", "ai.onnx"):
        return None
    evaluate = EVALUATORS.get(producer.op_type)
    if evaluate is None:
        return None
    inputs = [shape_values(ctx, n, depth + 1) if n else None for n in producer.inputs]
    result = evaluate(producer, ctx, inputs)
    if result is None or len(result) > MAX_LENGTH:
        return None
    return result


@evaluator("Shape")
def shape(node: NodeView, ctx: AnalysisContext, inputs) -> Values | None:
    """Shape(x)[start:end]: static dims of x are known, dynamic ones None."""
    dims = ctx.view.shapes.get(node.inputs[0])
    if dims is None:
        return None
    known = [d if isinstance(d, int) and d >= 0 else None for d in dims]
    start = int(node.attrs.get("start", 0))
    end = node.attrs.get("end")
    return known[start : (int(end) if end is not None else None)]


@evaluator("Identity", "Cast", "Squeeze", "Unsqueeze", "Reshape", "Flatten")
def same_values(node: NodeView, ctx: AnalysisContext, inputs) -> Values | None:
    """Ops that keep the entries of a 0-D/1-D vector in order (integer casts included)."""
    if node.op_type == "Cast" and node.attrs.get("to") not in (6, 7):  # int32 / int64
        return None
    return inputs[0]


@evaluator("Concat")
def concat(node: NodeView, ctx: AnalysisContext, inputs) -> Values | None:
    """Concat along axis 0 of 1-D vectors: entries in order."""
    if int(node.attrs.get("axis", 0)) not in (0, -1) or any(v is None for v in inputs):
        return None
    return [entry for values in inputs for entry in values]


@evaluator("Gather")
def gather(node: NodeView, ctx: AnalysisContext, inputs) -> Values | None:
    """Gather(v, constant indices) on axis 0."""
    data, indices = inputs[0], ctx.constant(node.input(1))
    if data is None or indices is None or int(node.attrs.get("axis", 0)) != 0:
        return None
    try:
        return [data[int(i)] for i in indices.reshape(-1)]
    except IndexError:
        return None


@evaluator("Slice")
def slice_(node: NodeView, ctx: AnalysisContext, inputs) -> Values | None:
    """Slice of a 1-D vector with constant starts/ends/axes(0)/steps."""
    data = inputs[0]
    bounds = [ctx.constant(node.input(i)) if node.input(i) else None for i in range(1, 5)]
    if data is None or bounds[0] is None or bounds[1] is None:
        return None
    if bounds[2] is not None and [int(a) for a in bounds[2].reshape(-1)] not in ([0], [-1]):
        return None
    step = 1 if bounds[3] is None else int(bounds[3].reshape(-1)[0])
    if step == 0:
        return None
    start, end = int(bounds[0].reshape(-1)[0]), int(bounds[1].reshape(-1)[0])
    return list(data[slice(*slice(start, end, step).indices(len(data)))])


def _elementwise(inputs, fn) -> Values | None:
    left, right = inputs[0], inputs[1]
    if left is None or right is None:
        return None
    if len(left) == 1:
        left = left * len(right)
    if len(right) == 1:
        right = right * len(left)
    if len(left) != len(right):
        return None
    return [None if a is None or b is None else fn(a, b) for a, b in zip(left, right, strict=True)]


@evaluator("Add", "Sub", "Mul", "Equal")
def arithmetic(node: NodeView, ctx: AnalysisContext, inputs) -> Values | None:
    """Entrywise +, -, *, == with broadcasting of length-1 vectors; unknown stays unknown."""
    functions = {
        "Add": lambda a, b: a + b,
        "Sub": lambda a, b: a - b,
        "Mul": lambda a, b: a * b,
        "Equal": lambda a, b: int(a == b),
    }
    return _elementwise(inputs, functions[node.op_type])


@evaluator("Where")
def where(node: NodeView, ctx: AnalysisContext, inputs) -> Values | None:
    """Where(c, a, b): a where c is known true, b where known false, equal branches either way."""
    condition, left, right = inputs
    if condition is None or left is None or right is None:
        return None
    length = max(len(condition), len(left), len(right))
    vectors = []
    for values in (condition, left, right):
        if len(values) not in (1, length):
            return None
        vectors.append(values * length if len(values) == 1 else values)
    result: Values = []
    for c, a, b in zip(*vectors, strict=True):
        if c is None:
            result.append(a if a is not None and a == b else None)
        else:
            result.append(a if c else b)
    return result


@evaluator("ConstantOfShape")
def constant_of_shape(node: NodeView, ctx: AnalysisContext, inputs) -> Values | None:
    """ConstantOfShape(shape=[n]) of an integer value: n copies of it."""
    length = inputs[0]
    if length is None or len(length) != 1 or length[0] is None:
        return None
    value = node.attrs.get("value")
    if value is None:
        return None  # the default is float 0.0, not an integer shape entry
    array = numpy_helper.to_array(value).reshape(-1)
    if not np.issubdtype(array.dtype, np.integer):
        return None
    return [int(array[0])] * length[0]
