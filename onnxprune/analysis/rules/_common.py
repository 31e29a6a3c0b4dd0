"""Helpers shared by the op rules: reading attributes and constant axes inputs."""

from __future__ import annotations

import numpy as np

from onnxprune.analysis.context import AnalysisContext
from onnxprune.analysis.graph_view import NodeView


def normalize_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def constant_ints(ctx: AnalysisContext, name: str) -> list[int] | None:
    """A constant input as a list of ints, or None when absent or computed at run time."""
    value = ctx.constant(name)
    return None if value is None else [int(v) for v in np.asarray(value).reshape(-1)]


def axes_of(
    node: NodeView, ctx: AnalysisContext, input_index: int, attr: str = "axes"
) -> list[int] | str | None:
    """Axes given as attribute (old opsets) or constant input (new opsets).

    Returns the list, None when not given, or the string "dynamic" when given at run time.
    """
    if attr in node.attrs:
        return [int(a) for a in node.attrs[attr]]
    name = node.input(input_index)
    if not name:
        return None
    values = constant_ints(ctx, name)
    return "dynamic" if values is None else values
