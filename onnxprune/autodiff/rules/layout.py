"""Ops that move values without arithmetic: the gradient moves back the same way.

* Reshape / Flatten / Squeeze / Unsqueeze: ∂X = reshape(g, shape(X)).
* Transpose(perm): ∂X = Transpose(g, perm⁻¹).
* Concat(axis): ∂X_i = g[..., o_i : o_i + n_i, ...] along the axis (static sizes n_i).
* Split(axis): ∂X = Concat(g_i) with zeros for pieces no gradient reaches.
* Slice (step 1): ∂X = Pad(g) with zeros at the cut-off begin and end of every sliced axis.
* Pad (constant mode, pads ≥ 0): ∂X = Slice of g without the pads.
* Gather(axis, constant indices): ∂X = g contracted with the one-hot matrix of the indices
  along the axis (repeated indices add up).
"""

from __future__ import annotations

import numpy as np

from onnxprune.autodiff.builder import GradientBuilder, string_attr
from onnxprune.autodiff.registry import register_vjp
from onnxprune.errors import InputError

_INT_MAX = 2**62


@register_vjp("Reshape", "Flatten", "Squeeze", "Unsqueeze", since=1, inputs=(0,))
def reshape(node, b: GradientBuilder, grads, needed):
    """∂X = reshape(g, shape(X))."""
    return [b.reshape_like(grads[0], node.inputs[0])] + [None] * (len(node.inputs) - 1)


@register_vjp("Transpose", since=1)
def transpose(node, b: GradientBuilder, grads, needed):
    """∂X = Transpose(g, perm⁻¹)."""
    rank = b.rank(node.inputs[0])
    perm = list(node.attrs.get("perm", list(reversed(range(rank)))))
    return [b.transpose(grads[0], list(np.argsort(perm)))]


@register_vjp("Concat", since=4)
def concat(node, b: GradientBuilder, grads, needed):
    """∂X_i = the slice of g at X_i's offset along the axis (offsets computed at run time
    where a size is not static)."""
    rank = b.rank(node.inputs[0])
    axis = int(node.attrs["axis"]) % rank
    sizes = [b.dims(x)[axis] for x in node.inputs]
    out: list[str | None] = []
    if all(size is not None for size in sizes):
        offset = 0
        for size, need in zip(sizes, needed, strict=True):
            out.append(b.slice(grads[0], [offset], [offset + size], [axis]) if need else None)
            offset += size
        return out
    start = b.ints([0])
    for x, need in zip(node.inputs, needed, strict=True):
        size = b.node("Slice", [b.shape_of(x), b.ints([axis]), b.ints([axis + 1])])
        end = b.node("Add", [start, size])
        out.append(b.node("Slice", [grads[0], start, end, b.ints([axis])]) if need else None)
        start = end
    return out


@register_vjp("Split", since=2, inputs=(0,))
def split(node, b: GradientBuilder, grads, needed):
    """∂X = Concat of the pieces' gradients (zeros where none arrives)."""
    x = node.inputs[0]
    axis = int(node.attrs.get("axis", 0)) % b.rank(x)
    for out in node.outputs:
        b.set_elem_type(out, b.elem_type(x))
    pieces = [
        grad if grad is not None else b.zeros_like(out)
        for grad, out in zip(grads, node.outputs, strict=False)
    ]
    return [b.node("Concat", pieces, axis=axis)] + [None] * (len(node.inputs) - 1)


def _slice_arguments(node, b: GradientBuilder, rank: int):
    what = f"Slice '{node.name}'"
    if b.opset < 10:
        starts = list(node.attrs["starts"])
        ends = list(node.attrs["ends"])
        axes = list(node.attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = [int(v) for v in b.constant(node.input(1), what)]
        ends = [int(v) for v in b.constant(node.input(2), what)]
        axes = (
            [int(v) for v in b.constant(node.input(3), what)]
            if node.input(3)
            else list(range(len(starts)))
        )
        steps = (
            [int(v) for v in b.constant(node.input(4), what)]
            if node.input(4)
            else [1] * len(starts)
        )
    return starts, ends, [a % rank for a in axes], steps


@register_vjp("Slice", since=1, inputs=(0,))
def slice_(node, b: GradientBuilder, grads, needed):
    """∂X = g padded with zeros back to X's size (steps of 1 only)."""
    x = node.inputs[0]
    rank = b.rank(x)
    starts, ends, axes, steps = _slice_arguments(node, b, rank)
    if any(step != 1 for step in steps):
        raise InputError(f"gradient of Slice '{node.name}': only steps of 1 are supported")
    pads = [0] * (2 * rank)
    for start, end, axis in zip(starts, ends, axes, strict=False):
        size = b.static_dims(x, [axis], f"Slice '{node.name}'")[0]
        begin = min(max(start + size if start < 0 else start, 0), size)
        stop = min(max(end + size if end < 0 else end, 0), size)
        stop = max(stop, begin)
        pads[axis] = begin
        pads[axis + rank] = size - stop
    grad = b.node("Pad", [grads[0], b.ints(pads)]) if any(pads) else grads[0]
    return [grad] + [None] * (len(node.inputs) - 1)


@register_vjp("Pad", since=11, inputs=(0,))
def pad(node, b: GradientBuilder, grads, needed):
    """∂X = g without the constant padding."""
    x = node.inputs[0]
    what = f"Pad '{node.name}'"
    if string_attr(node, "mode", "constant") != "constant":
        raise InputError(f"gradient of {what}: only constant padding is supported")
    rank = b.rank(x)
    pads = [int(v) for v in b.constant(node.input(1), what)]
    axes = list(range(rank))
    if len(node.inputs) > 3 and node.input(3):
        axes = [int(a) % rank for a in b.constant(node.input(3), what)]
    if any(p < 0 for p in pads):
        raise InputError(f"gradient of {what}: negative pads are not supported")
    count = len(axes)
    starts = pads[:count]
    ends = [-p if p else _INT_MAX for p in pads[count:]]
    grad = b.slice(grads[0], starts, ends, axes)
    return [grad] + [None] * (len(node.inputs) - 1)


def _runtime_onehot(b: GradientBuilder, x: str, axis: int, flat: np.ndarray) -> str:
    """[K, D] one-hot rows of the constant ``flat`` indices over D = Shape(x)[axis] (known
    only at run time); a negative index counts from the end (index mod D)."""
    size = b.node("Gather", [b.shape_of(x), b.const(np.array(axis, np.int64), "axis")])
    positions = b.node(
        "Range",
        [b.const(np.array(0, np.int64), "zero"), size, b.const(np.array(1, np.int64), "one")],
    )
    wrapped = b.node("Mod", [b.const(flat.reshape(-1, 1), "gather_indices"), size])
    return b.node("Cast", [b.node("Equal", [wrapped, positions])], to=b.elem_type(x))


@register_vjp("Gather", since=1, inputs=(0,))
def gather(node, b: GradientBuilder, grads, needed):
    """∂X = g · onehot(indices) along the gathered axis (constant indices). The one-hot matrix
    [K, D] is a constant when the axis size D is known, else built at run time as
    Cast(Equal(indices mod D, Range(0, D))) from D = Shape(X)[axis]."""
    x = node.inputs[0]
    what = f"Gather '{node.name}'"
    rank = b.rank(x)
    axis = int(node.attrs.get("axis", 0)) % rank
    indices = b.constant(node.input(1), what).astype(np.int64)
    size = b.dims(x, what)[axis]
    flat = indices.reshape(-1)
    if size is not None:
        flat = np.where(flat < 0, flat + size, flat)
        table = np.zeros((flat.size, size), dtype=b.np_dtype(x))
        table[np.arange(flat.size), flat] = 1.0
        onehot = b.const(table, "gather_onehot")
    else:
        onehot = _runtime_onehot(b, x, axis, flat)
    out_rank = rank - 1 + indices.ndim
    # Bring the index axes of g together at the end: [..., K] then contract with onehot [K, D].
    index_axes = list(range(axis, axis + indices.ndim))
    rest = [a for a in range(out_rank) if a not in index_axes]
    moved = b.transpose(grads[0], rest + index_axes)
    if indices.ndim == 1:
        merged = moved
    elif indices.ndim == 0:  # one index (a packed q/k/v part): a K = 1 axis at the end
        merged = b.unsqueeze(moved, [out_rank])
    else:
        out_dims = b.dims(node.outputs[0])
        kept = [out_dims[a] for a in rest]
        shape = [0 if d is None else int(d) for d in kept] + [int(flat.size)]
        if None in kept[1:]:
            raise InputError(f"gradient of {what}: dims other than the first must be static")
        merged = b.node("Reshape", [moved, b.ints(shape)])
    contracted = b.node("MatMul", [merged, onehot])
    back = list(range(rank - 1))
    back.insert(axis, rank - 1)
    return [b.transpose(contracted, back), None]
