"""Rules for layout ops: Reshape, Flatten, Transpose, Squeeze, Unsqueeze."""

from __future__ import annotations

import numpy as np

from onnxprune.analysis.context import AnalysisContext, KeepFn, SlabTie
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import cluster_varying_axes, reshape_labels, varying_axes
from onnxprune.analysis.registry import register
from onnxprune.analysis.rules._common import axes_of, normalize_axis
from onnxprune.analysis.rules.shape_edit import set_shape_entries
from onnxprune.analysis.rules.shape_taint import taint_rule


def kept_along(labels: np.ndarray, axis: int):
    """Count of indices along ``axis`` with at least one kept position (rectangular keep masks)."""

    def count(keep: KeepFn) -> int:
        mask = keep(labels)
        other = tuple(a for a in range(mask.ndim) if a != axis)
        return int(mask.any(axis=other).sum()) if other else int(mask.sum())

    return count


def _whole_slabs_check(labels: np.ndarray, name: str):
    """Post-check: channels spread over several axes must go in whole slabs along one axis.

    After grouping, every cluster must be constant along all varying axes but one (attention
    heads: a head keeps or loses all of its head_dim positions); otherwise block them.
    """

    def check(component_of: np.ndarray) -> list[tuple[np.ndarray, str]]:
        if len(cluster_varying_axes(labels, component_of)) <= 1:
            return []
        return [(labels, f"Reshape '{name}' splits channels over several axes without whole heads")]

    return check


@register("Reshape")
def reshape(node: NodeView, ctx: AnalysisContext) -> None:
    """Reshape: labels follow the data (block expansion C×H×W -> features, [C] -> [heads, d]).

    The target shape entries of channel axes become the kept counts (constant targets, or
    constant pieces of a Concat-built target; -1 and 0 entries stay).
    """
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    in_shape, out_shape = ctx.static_shape(node.input(0)), ctx.static_shape(node.outputs[0])
    if in_shape is None or out_shape is None:
        ctx.block(labels, f"Reshape '{node.name}' has unknown shapes")
        return
    out_labels = reshape_labels(labels, in_shape, out_shape)
    if out_labels is None:
        ctx.block(labels, f"Reshape '{node.name}' does not factor into contiguous axis groups")
        return
    axes = varying_axes(out_labels)
    counts = {axis: kept_along(out_labels, axis) for axis in axes}
    infer_one = int(node.attrs.get("allowzero", 0)) == 0 or 0 not in out_shape
    if not set_shape_entries(
        ctx, node, 1, [], counts=counts, labels=out_labels, infer_one=infer_one
    ):
        ctx.block(
            labels, f"Reshape '{node.name}' target for a channel axis is computed at run time"
        )
        return
    if len(axes) > 1:
        reason = f"Reshape '{node.name}' ties channel i of every slab but along its widest axis"
        ctx.slab_ties.append(SlabTie(out_labels, axes, reason))
        ctx.post_checks.append(_whole_slabs_check(out_labels, node.name))
    ctx.set_labels(node.outputs[0], out_labels)


@register("Flatten")
def flatten(node: NodeView, ctx: AnalysisContext) -> None:
    """Flatten(axis): [d0..d(a-1)] x [da..] -> 2-D; channel c of C×H×W becomes c·HW .. c·HW+HW-1."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    in_shape, out_shape = ctx.static_shape(node.input(0)), ctx.static_shape(node.outputs[0])
    out_labels = None
    if in_shape is not None and out_shape is not None:
        out_labels = reshape_labels(labels, in_shape, out_shape)
    if out_labels is None:
        ctx.block(labels, f"Flatten '{node.name}' has unknown shapes")
        return
    ctx.set_labels(node.outputs[0], out_labels)


@register("Transpose")
def transpose(node: NodeView, ctx: AnalysisContext) -> None:
    """Transpose(perm): labels are permuted like the data (default perm reverses the axes)."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    perm = node.attrs.get("perm") or list(reversed(range(labels.ndim)))
    ctx.set_labels(node.outputs[0], np.transpose(labels, [int(p) for p in perm]))


@register("Squeeze")
def squeeze(node: NodeView, ctx: AnalysisContext) -> None:
    """Squeeze(axes): removes size-1 axes (all of them when axes are not given)."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    axes = axes_of(node, ctx, 1)
    if axes == "dynamic":
        ctx.block(labels, f"Squeeze '{node.name}' axes computed at run time")
        return
    if axes is None:
        shape = ctx.static_shape(node.input(0))
        if shape is None:
            ctx.block(labels, f"Squeeze '{node.name}' has unknown shapes")
            return
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = sorted(normalize_axis(a, labels.ndim) for a in axes)
    ctx.set_labels(
        node.outputs[0], labels.reshape([s for i, s in enumerate(labels.shape) if i not in axes])
    )


@register("Unsqueeze")
def unsqueeze(node: NodeView, ctx: AnalysisContext) -> None:
    """Unsqueeze(axes): inserts size-1 axes at output positions ``axes``."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    axes = axes_of(node, ctx, 1)
    if axes is None or axes == "dynamic":
        ctx.block(labels, f"Unsqueeze '{node.name}' axes unknown")
        return
    out_rank = labels.ndim + len(axes)
    out = labels
    for axis in sorted(normalize_axis(a, out_rank) for a in axes):
        out = np.expand_dims(out, axis)
    ctx.set_labels(node.outputs[0], out)


@taint_rule("Reshape")
def reshape_to_copied_sizes(node: NodeView, ctx: AnalysisContext) -> bool:
    """A Reshape whose target copies channel sizes at run time (``Shape(x)`` pieces, the
    dynamo exporter's decomposed attention) is the plain :func:`reshape` when every tainted
    target entry lies on a channel axis of the output: :func:`set_shape_entries` then checks
    that each copies a tensor axis carrying the same channels, so it follows the pruning."""
    taint = ctx.taints.get(node.input(1))
    labels = ctx.labels_of(node.input(0))
    if node.input(0) in ctx.taints or taint is None or taint.mask.ndim != 1 or labels is None:
        return False
    in_shape, out_shape = ctx.static_shape(node.input(0)), ctx.static_shape(node.outputs[0])
    if in_shape is None or out_shape is None or len(taint.mask) != len(out_shape):
        return False
    out_labels = reshape_labels(labels, in_shape, out_shape)
    if out_labels is None:
        return False
    if not set(np.flatnonzero(taint.mask).tolist()) <= set(varying_axes(out_labels)):
        return False
    reshape(node, ctx)
    return ctx.labels_of(node.outputs[0]) is not None
