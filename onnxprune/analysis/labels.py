"""Channel label arrays: which channel of which group sits at each position of a tensor.

A tensor's labels are an int64 array of the tensor's rank, of size 1 on every axis along which
the labels do not vary and of the tensor's size on the channel axes. Each entry is an *atom*
id (a source channel: one output channel of one Conv/Gemm/MatMul) or ``FIXED`` (-1) for a
position that can never be removed (it comes from a graph input or an unprunable tensor).
Index maps between tensors are plain numpy operations on these arrays: concatenation (Concat
offsets), slicing (Split/Slice sub-ranges), ``np.repeat`` via reshape (Flatten block expansion),
``np.transpose`` (permutations) and reshapes (attention heads).
"""

from __future__ import annotations

import numpy as np

FIXED = -1


def axis_labels(rank: int, axis: int, vector: np.ndarray) -> np.ndarray:
    """Labels of a rank-``rank`` tensor that vary along ``axis`` as ``vector``."""
    shape = [1] * rank
    shape[axis] = len(vector)
    return np.asarray(vector, dtype=np.int64).reshape(shape)


def varying_axes(labels: np.ndarray) -> list[int]:
    """Axes along which ``labels`` has more than one position."""
    return [axis for axis, size in enumerate(labels.shape) if size > 1]


def varies_only_along(labels: np.ndarray, axis: int) -> bool:
    """True when every axis but ``axis`` has size 1."""
    return all(size == 1 for i, size in enumerate(labels.shape) if i != axis)


def vector_along(labels: np.ndarray, axis: int, size: int) -> np.ndarray | None:
    """The 1-D labels along ``axis`` (broadcast to ``size``), or None if labels vary elsewhere."""
    if not varies_only_along(labels, axis):
        return None
    vector = labels.reshape(-1)
    if len(vector) == size:
        return vector
    if len(vector) == 1:
        return np.repeat(vector, size)
    return None


def pad_rank(labels: np.ndarray, rank: int) -> np.ndarray:
    """Left-pad ``labels`` with size-1 axes to ``rank`` (numpy broadcasting alignment)."""
    missing = rank - labels.ndim
    return labels.reshape((1,) * missing + labels.shape) if missing > 0 else labels


def squeeze_constant_axes(labels: np.ndarray) -> np.ndarray:
    """Shrink to size 1 every axis along which the labels do not change."""
    for axis in range(labels.ndim):
        if labels.shape[axis] > 1:
            first = labels.take([0], axis=axis)
            if np.array_equal(np.broadcast_to(first, labels.shape), labels):
                labels = first
    return labels


def has_atoms(labels: np.ndarray | None) -> bool:
    """True when ``labels`` holds at least one prunable atom."""
    return labels is not None and bool((labels >= 0).any())


def reshape_groups(
    in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> list[tuple[list[int], list[int]]] | None:
    """Split a reshape into contiguous (input axes, output axes) groups of equal element count.

    Returns None when the shapes do not factor (different totals or a zero dimension).
    """
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(in_shape) or j < len(out_shape):
        gin: list[int] = []
        gout: list[int] = []
        pin = pout = 1
        if i < len(in_shape):
            gin.append(i)
            pin *= in_shape[i]
            i += 1
        if j < len(out_shape):
            gout.append(j)
            pout *= out_shape[j]
            j += 1
        while pin != pout:
            if pin < pout and i < len(in_shape):
                gin.append(i)
                pin *= in_shape[i]
                i += 1
            elif pout < pin and j < len(out_shape):
                gout.append(j)
                pout *= out_shape[j]
                j += 1
            else:
                return None
        if pin == 0:
            return None
        groups.append((gin, gout))
    return groups


def reshape_labels(
    labels: np.ndarray, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> np.ndarray | None:
    """Carry labels through a reshape from ``in_shape`` to ``out_shape``.

    Groups of axes that hold varying labels are expanded to their real sizes, reshaped like
    the data, and shrunk back to size 1 where the result is constant. Returns None when the
    reshape does not factor into contiguous groups.
    """
    groups = reshape_groups(in_shape, out_shape)
    if groups is None:
        return None
    varying = set(varying_axes(labels))
    expand_to = list(labels.shape)
    target: list[int] = []
    for gin, gout in groups:
        if varying & set(gin):
            for axis in gin:
                expand_to[axis] = in_shape[axis]
            target.extend(out_shape[axis] for axis in gout)
        else:
            target.extend(1 for _ in gout)
    expanded = np.broadcast_to(labels, expand_to)
    return squeeze_constant_axes(np.ascontiguousarray(expanded).reshape(target))


def cluster_varying_axes(labels: np.ndarray, component_of: np.ndarray) -> list[int]:
    """Axes along which the *clusters* (``component_of`` of each atom; FIXED stays -1) of
    ``labels`` change. Channels spread over several axes stay rectangular under any removal
    only when this is at most one axis (whole slabs of it go)."""
    mapped = np.where(labels >= 0, component_of[np.maximum(labels, 0)], FIXED)
    return [
        axis
        for axis in varying_axes(mapped)
        if not np.array_equal(np.broadcast_to(mapped.take([0], axis=axis), mapped.shape), mapped)
    ]
