"""Shape computations: Shape/Size of a tensor with channels *taint* the values that count them.

``Shape(x)`` marks the entries of x's channel axes. Taint flows through the ops that select or
assemble shape vectors (Gather/Slice with constant indices, Concat, Squeeze, Unsqueeze, Cast,
Identity); an entry that is never selected is harmless (the batch size of ``x.view(B, -1)``).
Any other use of a tainted value (Reshape target, Expand, ConstantOfShape, arithmetic) would
bake the old channel count into the graph, so the counted channels are blocked.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from onnxprune.analysis.context import AnalysisContext, Taint
from onnxprune.analysis.graph_view import NodeView
from onnxprune.analysis.labels import varying_axes
from onnxprune.analysis.registry import register
from onnxprune.analysis.rules._common import constant_ints

TaintRule = Callable[[NodeView, AnalysisContext], bool]
TAINT_RULES: dict[str, TaintRule] = {}


def taint_rule(*op_types: str) -> Callable[[TaintRule], TaintRule]:
    """Register how taint flows through ``op_types``; the rule returns False when it cannot."""

    def decorate(rule: TaintRule) -> TaintRule:
        for op_type in op_types:
            TAINT_RULES[op_type] = rule
        return rule

    return decorate


def _set_taint(ctx: AnalysisContext, name: str, mask: np.ndarray, atoms: np.ndarray) -> None:
    if mask.any():
        ctx.taints[name] = Taint(mask, atoms)


@register("Shape")
def shape(node: NodeView, ctx: AnalysisContext) -> None:
    """Shape(x)[start:end]: entries of channel axes are tainted by x's atoms."""
    labels = ctx.labels_of(node.input(0))
    if labels is None:
        return
    mask = np.zeros(labels.ndim, dtype=bool)
    mask[varying_axes(labels)] = True
    start = int(node.attrs.get("start", 0))
    end = node.attrs.get("end")
    mask = mask[start : None if end is None else int(end)]
    _set_taint(ctx, node.outputs[0], mask, np.unique(labels[labels >= 0]))


@register("Size")
def size(node: NodeView, ctx: AnalysisContext) -> None:
    """Size(x) counts every element, channels included."""
    labels = ctx.labels_of(node.input(0))
    if labels is not None:
        _set_taint(ctx, node.outputs[0], np.ones((), dtype=bool), np.unique(labels[labels >= 0]))


@taint_rule("Gather")
def taint_gather(node: NodeView, ctx: AnalysisContext) -> bool:
    """Selecting constant entries of a shape vector keeps only their taint."""
    taint = ctx.taints.get(node.input(0))
    indices = constant_ints(ctx, node.input(1))
    if taint is None or indices is None or taint.mask.ndim != 1:
        return False
    index_shape = np.shape(ctx.constant(node.input(1)))
    picked = taint.mask[np.asarray(indices, dtype=np.int64) % len(taint.mask)].reshape(index_shape)
    _set_taint(ctx, node.outputs[0], picked, taint.atoms)
    return True


@taint_rule("Slice")
def taint_slice(node: NodeView, ctx: AnalysisContext) -> bool:
    """A constant 1-D slice of a shape vector keeps the taint of the selected entries."""
    taint = ctx.taints.get(node.input(0))
    starts, ends = constant_ints(ctx, node.input(1)), constant_ints(ctx, node.input(2))
    steps = constant_ints(ctx, node.input(4)) if node.input(4) else [1]
    if taint is None or taint.mask.ndim != 1 or not starts or not ends or not steps:
        return False
    picked = taint.mask[slice(starts[0], ends[0], steps[0])]
    _set_taint(ctx, node.outputs[0], picked, taint.atoms)
    return True


@taint_rule("Squeeze", "Unsqueeze", "Cast", "Identity")
def taint_reshape_only(node: NodeView, ctx: AnalysisContext) -> bool:
    """Ops that only change the rank or type of a shape value keep its taint."""
    taint = ctx.taints.get(node.input(0))
    if taint is None:
        return False
    shape = ctx.static_shape(node.outputs[0])
    mask = (
        taint.mask.reshape(shape)
        if shape is not None and np.prod(shape) == taint.mask.size
        else taint.mask
    )
    _set_taint(ctx, node.outputs[0], mask, taint.atoms)
    return True


@taint_rule("Concat")
def taint_concat(node: NodeView, ctx: AnalysisContext) -> bool:
    """Concatenated shape vectors keep each piece's taint."""
    parts, atoms = [], []
    for name in node.inputs:
        taint = ctx.taints.get(name)
        if taint is not None:
            parts.append(taint.mask.reshape(-1))
            atoms.append(taint.atoms)
            continue
        shape = ctx.static_shape(name)
        if shape is None or len(shape) != 1:
            return False
        parts.append(np.zeros(shape[0], dtype=bool))
    _set_taint(ctx, node.outputs[0], np.concatenate(parts), np.unique(np.concatenate(atoms)))
    return True


@taint_rule("Resize")
def taint_resize(node: NodeView, ctx: AnalysisContext) -> bool:
    """Resize(x, roi, scales, sizes) whose ``sizes`` counts x's own channels passes them.

    ``F.interpolate(x, size=(h, w))`` exports as ``sizes = Concat(Shape(x)[0:2], [h, w])``: the
    channel entry is read from x at run time, so after pruning it holds the kept count and the
    Resize leaves the channel axis alone. Accepted when only ``sizes`` is tainted, its tainted
    entries are exactly x's channel axes and they count exactly x's atoms (opset ≥ 11, no
    ``axes`` attribute); x's labels then pass to the output. Anything else: False (blocked).
    """
    labels = ctx.labels_of(node.input(0))
    if ctx.view.opset < 11 or labels is None or "axes" in node.attrs or len(node.inputs) < 4:
        return False
    if any(name in ctx.taints for name in node.inputs[:3] if name):
        return False
    taint = ctx.taints.get(node.input(3))
    if taint is None or taint.mask.size != labels.ndim:
        return False
    if list(np.flatnonzero(taint.mask.reshape(-1))) != varying_axes(labels):
        return False
    if not np.array_equal(np.unique(taint.atoms), np.unique(labels[labels >= 0])):
        return False
    ctx.set_labels(node.outputs[0], labels)
    return True
