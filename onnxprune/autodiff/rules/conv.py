"""Conv and ConvTranspose (any spatial rank, strides, pads, dilations, groups).

Forward: Y[n, m, o] = Σ_{c ∈ group(m), k} W[m, c, k] · X_pad[n, c, o·s + k·d] (+ B[m]).

* backward-data: ∂X = ConvTranspose(g, W) with the same strides, pads, dilations and group,
  and ``output_padding`` r = (S + p_b + p_e − ((K−1)d + 1)) mod s, the input rows the forward's
  floor division dropped, so the result has X's spatial size S exactly;
* backward-filter: ∂W[m, c, k] = Σ_{n, o} g[n, m, o] · X_pad[n, c, k·d + o·s]: a Conv whose
  "batch" is X's in-group channel axis (X reshaped to [C/G, G·N, *S]), whose weight is g
  transposed to [M, N, *O], with strides d, dilations s, the forward pads and group G; the
  result [C/G, M, *K'] (K' ≥ K) is cut to K and transposed to [M, C/G, *K];
  a depthwise Conv (group = C = M) with stride 1 instead sums shifted windows elementwise
  (:func:`depthwise_filter_gradient`), and an ungrouped Conv with few taps multiplies stacked
  windows (:func:`windowed_filter_gradient`). Measured on ONNX Runtime's CPU kernels for
  EfficientNet-Lite2's depthwise layers at batch 8: strided windows (step-2 Slices) are
  1.5–2.4x slower than the grouped Conv, unit-stride windows up to 1.5x faster
  (``tools/bench_distill_effnet.py``, docs/benchmarks.md);
* ∂B = Σ_{n, o} g[n, m, o].

ConvTranspose is the adjoint of a Conv with the same attributes, so its rules swap roles:
∂X = Conv(g, W) and ∂W = the Conv backward-filter with g as input and X as output gradient.
"""

from __future__ import annotations

import numpy as np

from onnxprune.autodiff.builder import GradientBuilder, string_attr
from onnxprune.autodiff.registry import register_vjp
from onnxprune.errors import InputError

# Ungrouped convs with at most this many kernel taps get the windowed filter gradient (the
# stacked windows hold taps × the input); larger kernels use the transposed-operand Conv.
WINDOWED_MAX_TAPS = 9


def explicit_pads(node, b: GradientBuilder, spatial: list[int], kernel: list[int]) -> list[int]:
    """Begin and end pads as numbers (``auto_pad`` resolved at the static input size)."""
    rank = len(kernel)
    strides = list(node.attrs.get("strides", [1] * rank))
    dilations = list(node.attrs.get("dilations", [1] * rank))
    mode = string_attr(node, "auto_pad", "NOTSET")
    if mode == "NOTSET":
        return list(node.attrs.get("pads", [0] * (2 * rank)))
    if mode == "VALID":
        return [0] * (2 * rank)
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small = total // 2
        begin = small if mode == "SAME_UPPER" else total - small
        begins.append(begin)
        ends.append(total - begin)
    return begins + ends


def conv_filter_gradient(
    b: GradientBuilder,
    x: str,
    g: str,
    *,
    channels: int,
    spatial: list[int],
    kernel: list[int],
    out_spatial: list[int],
    strides: list[int],
    dilations: list[int],
    pads: list[int],
    group: int,
) -> str:
    """∂W of Y = Conv(X, W) given X [N, channels, *spatial] and g = ∂Y [N, M, *out_spatial]."""
    rank = len(kernel)
    per_group = channels // group
    spatial_axes = list(range(2, 2 + rank))
    if group == 1:
        x_t = b.transpose(x, [1, 0, *spatial_axes])
    else:
        split = b.node("Reshape", [x, b.ints([-1, group, per_group, *spatial])])
        moved = b.transpose(split, [2, 1, 0, *[a + 1 for a in spatial_axes]])
        x_t = b.node("Reshape", [moved, b.ints([per_group, -1, *spatial])])
    g_t = b.transpose(g, [1, 0, *spatial_axes])
    full = b.node(
        "Conv",
        [x_t, g_t],
        strides=list(dilations),
        dilations=list(strides),
        pads=list(pads),
        group=group,
    )
    reach = [
        (size + pads[i] + pads[i + rank] - ((o - 1) * s + 1)) // d + 1
        for i, (size, o, s, d) in enumerate(
            zip(spatial, out_spatial, strides, dilations, strict=False)
        )
    ]
    if reach != list(kernel):
        full = b.slice(full, [0] * rank, list(kernel), spatial_axes)
    return b.transpose(full, [1, 0, *spatial_axes])


def depthwise_filter_gradient(
    b: GradientBuilder,
    x: str,
    g: str,
    *,
    kernel: list[int],
    out_spatial: list[int],
    strides: list[int],
    dilations: list[int],
    pads: list[int],
) -> str:
    """∂W of a depthwise Conv (group = C = M): for every kernel offset k,
    ∂W[c, 0, k] = Σ_{n, o} g[n, c, o] · X_pad[n, c, o·s + k·d], the input window at offset k
    taken with a strided Slice. Elementwise work instead of a grouped Conv with an O-sized
    kernel, which ONNX Runtime runs slowly."""
    rank = len(kernel)
    spatial_axes = list(range(2, 2 + rank))
    padded = x
    if any(pads):
        padded = b.node("Pad", [x, b.ints([0, 0, *pads[:rank], 0, 0, *pads[rank:]])])
    columns = []
    for offset in np.ndindex(*kernel):
        starts = [k * d for k, d in zip(offset, dilations, strict=True)]
        ends = [
            start + (o - 1) * s + 1
            for start, o, s in zip(starts, out_spatial, strides, strict=True)
        ]
        window = b.slice(padded, starts, ends, spatial_axes, strides)
        total = b.reduce_sum(b.mul(window, g), [0, *spatial_axes], keepdims=False)
        columns.append(b.unsqueeze(total, [1]))
    stacked = columns[0] if len(columns) == 1 else b.node("Concat", columns, axis=1)
    return b.node("Reshape", [stacked, b.ints([-1, 1, *kernel])])


def windowed_filter_gradient(
    b: GradientBuilder,
    x: str,
    g: str,
    *,
    channels: int,
    kernel: list[int],
    out_spatial: list[int],
    strides: list[int],
    dilations: list[int],
    pads: list[int],
) -> str:
    """∂W of an ungrouped Conv as one batched MatMul over explicit windows: the strided
    slices X_k = X_pad[:, :, o·s + k·d] for every kernel offset k are stacked to
    [N, C·∏K, ∏O], multiplied by gᵀ [N, ∏O, M] and summed over n, which gives
    ∂W[m, c, k] = Σ_{n, o} g[n, m, o] · X_k[n, c, o] as [C·∏K, M], transposed and reshaped."""
    rank = len(kernel)
    spatial_axes = list(range(2, 2 + rank))
    padded = x
    if any(pads):
        padded = b.node("Pad", [x, b.ints([0, 0, *pads[:rank], 0, 0, *pads[rank:]])])
    windows = []
    for offset in np.ndindex(*kernel):
        starts = [k * d for k, d in zip(offset, dilations, strict=True)]
        ends = [
            start + (o - 1) * s + 1
            for start, o, s in zip(starts, out_spatial, strides, strict=True)
        ]
        window = b.slice(padded, starts, ends, spatial_axes, strides)
        windows.append(b.unsqueeze(window, [2]))
    stacked = windows[0] if len(windows) == 1 else b.node("Concat", windows, axis=2)
    positions = int(np.prod(out_spatial))
    columns = b.node("Reshape", [stacked, b.ints([0, channels * len(windows), positions])])
    g_rows = b.node("Reshape", [g, b.ints([0, -1, positions])])
    per_sample = b.node("MatMul", [columns, b.transpose(g_rows, [0, 2, 1])])
    summed = b.reduce_sum(per_sample, [0], keepdims=False)
    return b.node("Reshape", [b.transpose(summed, [1, 0]), b.ints([-1, channels, *kernel])])


def _geometry(node, b: GradientBuilder, x: str, w: str, what: str):
    w_dims = b.static_dims(w, range(b.rank(w)), what)
    rank = len(w_dims) - 2
    kernel = w_dims[2:]
    spatial = b.static_dims(x, range(2, 2 + rank), what)
    strides = list(node.attrs.get("strides", [1] * rank))
    dilations = list(node.attrs.get("dilations", [1] * rank))
    group = int(node.attrs.get("group", 1))
    return w_dims, rank, kernel, spatial, strides, dilations, group


@register_vjp("Conv", since=1)
def conv(node, b: GradientBuilder, grads, needed):
    """See the module docstring."""
    x, w, g = node.inputs[0], node.inputs[1], grads[0]
    what = f"Conv '{node.name}'"
    w_dims, rank, kernel, spatial, strides, dilations, group = _geometry(node, b, x, w, what)
    pads = explicit_pads(node, b, spatial, kernel)
    y = node.outputs[0]
    out_spatial = b.static_dims(y, range(2, 2 + rank), what)
    result: list[str | None] = [None] * len(node.inputs)
    if needed[0]:
        output_padding = [
            (size + pads[i] + pads[i + rank] - ((k - 1) * d + 1)) % s
            for i, (size, k, s, d) in enumerate(
                zip(spatial, kernel, strides, dilations, strict=False)
            )
        ]
        result[0] = b.node(
            "ConvTranspose",
            [g, w],
            strides=strides,
            dilations=dilations,
            pads=pads,
            group=group,
            output_padding=output_padding if any(output_padding) else None,
        )
    channels = b.static_dims(x, [1], what)[0]
    depthwise = group == channels == w_dims[0] and group > 1
    if needed[1] and depthwise and all(s == 1 for s in strides):
        result[1] = depthwise_filter_gradient(
            b,
            x,
            g,
            kernel=kernel,
            out_spatial=out_spatial,
            strides=strides,
            dilations=dilations,
            pads=pads,
        )
    elif needed[1] and group == 1 and int(np.prod(kernel)) <= WINDOWED_MAX_TAPS:
        result[1] = windowed_filter_gradient(
            b,
            x,
            g,
            channels=channels,
            kernel=kernel,
            out_spatial=out_spatial,
            strides=strides,
            dilations=dilations,
            pads=pads,
        )
    elif needed[1]:
        result[1] = conv_filter_gradient(
            b,
            x,
            g,
            channels=channels,
            spatial=spatial,
            kernel=kernel,
            out_spatial=out_spatial,
            strides=strides,
            dilations=dilations,
            pads=pads,
            group=group,
        )
    if len(node.inputs) > 2 and needed[2]:
        result[2] = b.reduce_sum(g, [0, *range(2, 2 + rank)], keepdims=False)
    return result


@register_vjp("ConvTranspose", since=1)
def conv_transpose(node, b: GradientBuilder, grads, needed):
    """See the module docstring (explicit pads only; no ``output_shape``)."""
    x, w, g = node.inputs[0], node.inputs[1], grads[0]
    what = f"ConvTranspose '{node.name}'"
    if string_attr(node, "auto_pad", "NOTSET") != "NOTSET" or "output_shape" in node.attrs:
        raise InputError(f"gradient of {what}: auto_pad/output_shape are not supported")
    w_dims, rank, kernel, spatial, strides, dilations, group = _geometry(node, b, x, w, what)
    pads = list(node.attrs.get("pads", [0] * (2 * rank)))
    y = node.outputs[0]
    out_spatial = b.static_dims(y, range(2, 2 + rank), what)
    result: list[str | None] = [None] * len(node.inputs)
    if needed[0]:
        result[0] = b.node(
            "Conv", [g, w], strides=strides, dilations=dilations, pads=pads, group=group
        )
    if needed[1]:
        channels = w_dims[1] * group
        result[1] = conv_filter_gradient(
            b,
            g,
            x,
            channels=channels,
            spatial=out_spatial,
            kernel=kernel,
            out_spatial=spatial,
            strides=strides,
            dilations=dilations,
            pads=pads,
            group=group,
        )
    if len(node.inputs) > 2 and needed[2]:
        result[2] = b.reduce_sum(g, [0, *range(2, 2 + rank)], keepdims=False)
    return result
