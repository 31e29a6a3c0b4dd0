"""Resize in ``nearest`` and ``linear`` modes (opset ≥ 11, no antialias).

Both are separable: along axis a, Y = X ×_a P_aᵀ with a constant matrix P_a [O_a, S_a] built
from the coordinate transform x_a(o) of the node (half_pixel, pytorch_half_pixel,
align_corners, asymmetric, tf_half_pixel_for_nn):

* nearest: P_a[o, i] = [i = clamp(round_mode(x_a(o)), 0, S_a − 1)] (one-hot rows);
* linear: x = clamp(x_a(o), 0, S_a − 1), i₀ = ⌊x⌋, i₁ = min(i₀ + 1, S_a − 1), λ = x − i₀,
  P_a[o, i₀] += 1 − λ, P_a[o, i₁] += λ.

So ∂X = g ×_a P_a: a MatMul with P_a on each resized axis (moved last and back), which adds
up every output a source pixel contributed to, with its weight.
"""

from __future__ import annotations

import numpy as np

from onnxprune.autodiff.builder import GradientBuilder, string_attr
from onnxprune.autodiff.registry import register_vjp
from onnxprune.errors import InputError


def source_coordinates(out_size: int, in_size: int, scale: float, transform: str) -> np.ndarray:
    """x_a(o) for o = 0 … out_size − 1 (ONNX Resize coordinate transforms)."""
    o = np.arange(out_size, dtype=np.float64)
    if transform == "half_pixel":
        return (o + 0.5) / scale - 0.5
    if transform == "pytorch_half_pixel":
        return (o + 0.5) / scale - 0.5 if out_size > 1 else np.zeros(out_size)
    if transform == "align_corners":
        return o * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros(out_size)
    if transform == "asymmetric":
        return o / scale
    if transform == "tf_half_pixel_for_nn":
        return (o + 0.5) / scale
    raise InputError(f"gradient of Resize: coordinate transform '{transform}' is not supported")


def nearest_indices(coordinates: np.ndarray, mode: str, in_size: int) -> np.ndarray:
    """Nearest source index for each coordinate (ONNX ``nearest_mode``), clamped."""
    floor = np.floor(coordinates)
    half = np.isclose(coordinates - floor, 0.5)
    if mode == "round_prefer_floor":
        index = np.where(half, floor, np.round(coordinates))
    elif mode == "round_prefer_ceil":
        index = np.where(half, floor + 1, np.round(coordinates))
    elif mode == "floor":
        index = floor
    elif mode == "ceil":
        index = np.ceil(coordinates)
    else:
        raise InputError(f"gradient of Resize: nearest_mode '{mode}' is not supported")
    return np.clip(index, 0, in_size - 1).astype(np.int64)


def linear_matrix(coordinates: np.ndarray, in_size: int) -> np.ndarray:
    """P[o, i]: weight of input i in output o for linear interpolation at ``coordinates``."""
    clamped = np.clip(coordinates, 0, in_size - 1)
    low = np.floor(clamped).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    frac = clamped - low
    matrix = np.zeros((len(coordinates), in_size))
    rows = np.arange(len(coordinates))
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


@register_vjp("Resize", since=11, inputs=(0,))
def resize(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    x, y = node.inputs[0], node.outputs[0]
    what = f"Resize '{node.name}'"
    mode_name = string_attr(node, "mode", "nearest")
    if mode_name not in ("nearest", "linear") or int(node.attrs.get("antialias", 0)):
        raise InputError(f"gradient of {what}: mode '{mode_name}' (or antialias) has no rule")
    if "axes" in node.attrs or string_attr(node, "keep_aspect_ratio_policy", "stretch") != (
        "stretch"
    ):
        raise InputError(f"gradient of {what}: 'axes' / keep_aspect_ratio_policy unsupported")
    rank = b.rank(x)
    in_dims = b.dims(x)
    out_dims = b.dims(y)
    scales = None
    if len(node.inputs) > 2 and node.input(2):
        values = b.constant(node.input(2), what)
        scales = [float(v) for v in values] if values.size else None
    transform = string_attr(node, "coordinate_transformation_mode", "half_pixel")
    mode = string_attr(node, "nearest_mode", "round_prefer_floor")
    grad = grads[0]
    for axis in range(rank):
        if in_dims[axis] == out_dims[axis] and (scales is None or scales[axis] == 1.0):
            continue
        if axis < 2 or in_dims[axis] is None or out_dims[axis] is None:
            raise InputError(f"gradient of {what}: axis {axis} must be spatial and static")
        size_in, size_out = int(in_dims[axis]), int(out_dims[axis])
        scale = scales[axis] if scales is not None else size_out / size_in
        coordinates = source_coordinates(size_out, size_in, scale, transform)
        if mode_name == "nearest":
            onehot = np.zeros((size_out, size_in), dtype=b.np_dtype(x))
            onehot[np.arange(size_out), nearest_indices(coordinates, mode, size_in)] = 1.0
        else:
            onehot = linear_matrix(coordinates, size_in).astype(b.np_dtype(x))
        perm = [a for a in range(rank) if a != axis] + [axis]
        moved = b.transpose(grad, perm)
        contracted = b.node("MatMul", [moved, b.const(onehot, "resize_onehot")])
        grad = b.transpose(contracted, list(np.argsort(perm)))
    return [grad] + [None] * (len(node.inputs) - 1)
