"""MaxPool, AveragePool, GlobalAveragePool.

* MaxPool: every output position passes its gradient to the input position it took (the
  first maximum). A copy of the node returns the ``Indices`` (flat over the whole input), and
  ∂X = reshape(ScatterElements(zeros[|X|], indices, g, reduction="add")). Opset ≥ 16 (the
  ``add`` reduction) or windows that do not overlap (indices unique: a plain scatter).
* AveragePool: Y[o] = Σ_{k} X_pad[o·s + k·d] / n[o] with n[o] = ∏k (count_include_pad) or the
  number of window positions inside X, so ∂X = ConvTranspose(g / n, ones[C, 1, *k]) with
  group C and the pool's strides, pads and dilations (output_padding / extra end pad so the
  result has X's size). A ``ceil_mode`` that adds windows fails closed: runtimes disagree
  on their divisor.
* GlobalAveragePool: ∂X = expand(g / ∏S) to X's shape.
"""

from __future__ import annotations

import numpy as np

from onnxprune.autodiff.builder import GradientBuilder, string_attr
from onnxprune.autodiff.registry import register_vjp
from onnxprune.autodiff.rules.conv import explicit_pads
from onnxprune.errors import InputError


@register_vjp("MaxPool", since=8)
def max_pool(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    x, g = node.inputs[0], grads[0]
    what = f"MaxPool '{node.name}'"
    if int(node.attrs.get("storage_order", 0)) != 0:
        raise InputError(f"gradient of {what}: storage_order=1 is not supported")
    kernel = list(node.attrs["kernel_shape"])
    strides = list(node.attrs.get("strides", [1] * len(kernel)))
    dilations = list(node.attrs.get("dilations", [1] * len(kernel)))
    attrs = {
        key: value
        for key, value in node.attrs.items()
        if key in ("kernel_shape", "strides", "pads", "dilations", "ceil_mode", "auto_pad")
    }
    if "auto_pad" in attrs:
        attrs["auto_pad"] = string_attr(node, "auto_pad", "NOTSET")
    _, indices = b.node_outputs("MaxPool", [x], 2, **attrs)
    b.set_elem_type(indices, 7)
    flat_g = b.node("Reshape", [g, b.ints([-1])])
    flat_i = b.node("Reshape", [indices, b.ints([-1])])
    size = b.node("Reshape", [b.node("Size", [x]), b.ints([1])])
    value = _zero_tensor(b, x)
    zeros = b.node("ConstantOfShape", [size], value=value)
    overlap = any(k * d > s for k, s, d in zip(kernel, strides, dilations, strict=False))
    if b.opset >= 16:
        scattered = b.node("ScatterElements", [zeros, flat_i, flat_g], axis=0, reduction="add")
    elif not overlap:
        scattered = b.node("ScatterElements", [zeros, flat_i, flat_g], axis=0)
    else:
        raise InputError(
            f"gradient of {what}: overlapping windows need opset >= 16 (ScatterElements add); "
            f"the model has opset {b.opset}"
        )
    return [b.reshape_like(scattered, x)]


def _zero_tensor(b: GradientBuilder, x: str):
    from onnx import helper

    return helper.make_tensor("value", b.elem_type(x), [1], [0])


def _window_counts(
    spatial, out_spatial, kernel, strides, dilations, pads, include_pad: bool
) -> np.ndarray:
    """n[o]: window positions that count for every output position (separable per axis)."""
    rank = len(kernel)
    counts = np.ones(out_spatial, dtype=np.float64)
    for axis in range(rank):
        o = np.arange(out_spatial[axis])[:, None]
        taps = o * strides[axis] - pads[axis] + np.arange(kernel[axis])[None, :] * dilations[axis]
        if include_pad:
            inside = (taps >= -pads[axis]) & (taps < spatial[axis] + pads[axis + rank])
        else:
            inside = (taps >= 0) & (taps < spatial[axis])
        shape = [1] * rank
        shape[axis] = out_spatial[axis]
        counts = counts * inside.sum(axis=1).reshape(shape)
    return counts


@register_vjp("AveragePool", since=7)
def average_pool(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    x, g, y = node.inputs[0], grads[0], node.outputs[0]
    what = f"AveragePool '{node.name}'"
    kernel = list(node.attrs["kernel_shape"])
    rank = len(kernel)
    strides = list(node.attrs.get("strides", [1] * rank))
    dilations = list(node.attrs.get("dilations", [1] * rank))
    channels, *spatial = b.static_dims(x, range(1, 2 + rank), what)
    out_spatial = b.static_dims(y, range(2, 2 + rank), what)
    pads = explicit_pads(node, b, spatial, kernel)
    floor_sizes = [
        (size + pads[a] + pads[a + rank] - ((kernel[a] - 1) * dilations[a] + 1)) // strides[a] + 1
        for a, size in enumerate(spatial)
    ]
    if floor_sizes != list(out_spatial):
        raise InputError(
            f"gradient of {what}: ceil_mode windows past the input are not supported "
            "(their divisor differs between runtimes)"
        )
    include_pad = bool(node.attrs.get("count_include_pad", 0))
    counts = _window_counts(spatial, out_spatial, kernel, strides, dilations, pads, include_pad)
    dtype = b.np_dtype(x)
    scaled = b.mul(g, b.const((1.0 / np.maximum(counts, 1)).astype(dtype), "pool_divisor"))
    end_pads = list(pads[rank:])
    output_padding = []
    for axis in range(rank):
        reach = (
            (out_spatial[axis] - 1) * strides[axis]
            + (kernel[axis] - 1) * dilations[axis]
            + 1
            - pads[axis]
            - end_pads[axis]
        )
        extra = spatial[axis] - reach
        if extra < 0:
            end_pads[axis] -= extra
            extra = 0
        output_padding.append(extra)
    ones = b.const(np.ones([channels, 1, *kernel], dtype=dtype), "pool_ones")
    if any(p >= s for p, s in zip(output_padding, strides, strict=False)):
        raise InputError(f"gradient of {what}: unsupported geometry (input rows no window reads)")
    grad = b.node(
        "ConvTranspose",
        [scaled, ones],
        strides=strides,
        dilations=dilations,
        pads=list(pads[:rank]) + end_pads,
        group=channels,
        output_padding=output_padding if any(output_padding) else None,
    )
    return [grad]


@register_vjp("GlobalAveragePool", since=1)
def global_average_pool(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    x = node.inputs[0]
    rank = b.rank(x)
    spatial = b.static_dims(x, range(2, rank), f"GlobalAveragePool '{node.name}'")
    scaled = b.mul(grads[0], b.scalar(1.0 / float(np.prod(spatial)), x))
    return [b.node("Expand", [scaled, b.shape_of(x)])]
