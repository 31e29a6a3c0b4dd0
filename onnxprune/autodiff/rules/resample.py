"""Resize in ``nearest`` mode (opset ≥ 11).

Nearest resizing is separable: along axis a, output position o reads input position
i_a(o) = clamp(round_mode(x_a(o)), 0, S_a − 1), x_a(o) the coordinate transform of the node
(half_pixel, pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn). With the
one-hot matrix P_a[o, i] = [i_a(o) = i], Y = X ×_a P_aᵀ on every resized axis, so
∂X = g ×_a P_a: a MatMul with P_a on each resized axis (moved last and back), which adds up
every output a source pixel was copied to.
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


@register_vjp("Resize", since=11, inputs=(0,))
def resize(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    x, y = node.inputs[0], node.outputs[0]
    what = f"Resize '{node.name}'"
    if string_attr(node, "mode", "nearest") != "nearest":
        raise InputError(f"gradient of {what}: only mode 'nearest' has a rule")
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
        index = nearest_indices(
            source_coordinates(size_out, size_in, scale, transform), mode, size_in
        )
        onehot = np.zeros((size_out, size_in), dtype=b.np_dtype(x))
        onehot[np.arange(size_out), index] = 1.0
        perm = [a for a in range(rank) if a != axis] + [axis]
        moved = b.transpose(grad, perm)
        contracted = b.node("MatMul", [moved, b.const(onehot, "resize_onehot")])
        grad = b.transpose(contracted, list(np.argsort(perm)))
    return [grad] + [None] * (len(node.inputs) - 1)
