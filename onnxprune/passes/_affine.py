"""Matching scalar affine chains and clamp chains (the pieces of decomposed activations).

An *affine chain* is a run of Add/Sub/Mul/Div nodes, each with one scalar constant operand,
computing ``a·x + b``; a *clamp chain* is a run of Clip/Relu/Min/Max-with-scalar nodes
computing ``clamp(x, lo, hi)``. Every tensor inside a chain must be private (used once, not a
graph output) so the whole chain can be replaced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx_graphsurgeon as gs

from onnxprune.passes._graph import constant_array, private, producer, scalar_value

_AFFINE_OPS = ("Add", "Sub", "Mul", "Div")


@dataclass
class Affine:
    """``output = scale·source + offset`` computed by ``nodes``."""

    source: gs.Tensor
    output: gs.Tensor
    scale: float = 1.0
    offset: float = 0.0
    nodes: list[gs.Node] = field(default_factory=list)


@dataclass
class Clamp:
    """``output = clamp(source, lo, hi)`` computed by ``nodes``."""

    source: gs.Tensor
    output: gs.Tensor
    lo: float
    hi: float
    nodes: list[gs.Node]


def _step(node: gs.Node, operand: gs.Tensor) -> tuple[float, float] | None:
    """(a, b) with node(operand) = a·operand + b, when ``node`` is affine in ``operand``."""
    if node.op not in _AFFINE_OPS or len(node.inputs) != 2 or len(node.outputs) != 1:
        return None
    first, second = node.inputs
    if first is operand and second is not operand:
        constant_tensor, operand_first = second, True
    elif second is operand and first is not operand:
        constant_tensor, operand_first = first, False
    else:
        return None
    values = constant_array(constant_tensor)
    if values is None or not np.issubdtype(values.dtype, np.floating):
        return None
    constant = scalar_value(constant_tensor)
    if constant is None or not math.isfinite(constant):
        return None
    if node.op == "Add":
        return 1.0, constant
    if node.op == "Sub":
        return (1.0, -constant) if operand_first else (-1.0, constant)
    if node.op == "Mul":
        return constant, 0.0
    if operand_first and constant != 0.0:
        return 1.0 / constant, 0.0
    return None


def _variable_operand(node: gs.Node) -> gs.Tensor | None:
    variables = [t for t in node.inputs if not isinstance(t, gs.Constant)]
    return variables[0] if len(variables) == 1 else None


def affine_before(tensor: gs.Tensor, graph_outputs: set[str]) -> Affine:
    """The longest affine chain ending at ``tensor`` through private tensors only.

    Possibly empty (source = tensor); a shared tensor is never looked through.
    """
    chain = Affine(source=tensor, output=tensor)
    current = tensor
    while True:
        node = producer(current)
        if node is None or node.op not in _AFFINE_OPS:
            break
        if not private(current, graph_outputs):
            break
        operand = _variable_operand(node)
        step = _step(node, operand) if operand is not None else None
        if step is None:
            break
        a, b = step
        # current = a·operand + b and output = scale·current + offset
        chain.offset += chain.scale * b
        chain.scale *= a
        chain.nodes.append(node)
        chain.source = operand
        current = operand
    return chain


def affine_after(tensor: gs.Tensor, graph_outputs: set[str]) -> list[Affine]:
    """Every affine chain starting at private ``tensor``, shortest first (the empty one first)."""
    chains = [Affine(source=tensor, output=tensor)]
    current = tensor
    while private(current, graph_outputs):
        node = current.outputs[0]
        step = _step(node, current)
        if step is None:
            break
        a, b = step
        last = chains[-1]
        chains.append(
            Affine(
                source=tensor,
                output=node.outputs[0],
                scale=a * last.scale,
                offset=a * last.offset + b,
                nodes=[*last.nodes, node],
            )
        )
        current = node.outputs[0]
    return chains


def _clip_bounds(node: gs.Node) -> tuple[float, float] | None:
    if node.op == "Relu":
        return 0.0, math.inf
    if node.op in ("Min", "Max") and len(node.inputs) == 2:
        values = [scalar_value(t) for t in node.inputs]
        if (values[0] is None) == (values[1] is None):
            return None
        bound = values[0] if values[0] is not None else values[1]
        return (-math.inf, bound) if node.op == "Min" else (bound, math.inf)
    if node.op == "Clip":
        lo = node.attrs.get("min", -math.inf)
        hi = node.attrs.get("max", math.inf)
        for index, default in ((1, lo), (2, hi)):
            if len(node.inputs) > index and not node.inputs[index].is_empty():
                value = scalar_value(node.inputs[index])
                if value is None:
                    return None
                if index == 1:
                    lo = value
                else:
                    hi = value
            elif index == 1:
                lo = default
            else:
                hi = default
        return float(lo), float(hi)
    return None


def clamp_before(tensor: gs.Tensor, graph_outputs: set[str]) -> Clamp | None:
    """The longest clamp chain ending at ``tensor`` (None when its producer is no clamp)."""
    found: Clamp | None = None
    current = tensor
    while True:
        node = producer(current)
        if node is None or (current is not tensor and not private(current, graph_outputs)):
            break
        bounds = _clip_bounds(node)
        if bounds is None:
            break
        lo, hi = bounds
        if found is not None:
            lo, hi = max(lo, found.lo), min(hi, found.hi)
            if lo > hi:
                break
        source = _variable_operand(node) if node.op in ("Min", "Max") else node.inputs[0]
        if source is None:
            break
        found = Clamp(source, tensor, lo, hi, [*(found.nodes if found else []), node])
        current = source
    return found


def close(value: float, target: float) -> bool:
    """Float32-level equality of fused constants."""
    return bool(np.isclose(value, target, rtol=1e-5, atol=1e-7))
