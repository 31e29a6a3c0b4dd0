"""Bias correction after a layer is sparsified (sequential, on calibration rows).

A sparsified layer y' = W'·x̃ + b (x̃: its input on the model whose upstream layers are already
sparsified) differs from the dense layer y = W·x + b (x: its input on the original model) by
e = W·x − W'·x̃ per row. Shifting the bias by the mean difference

    δ = W·x̄ − W'·x̄̃,   x̄, x̄̃ the means of the reference and current rows (same samples and
                         positions),

makes the layer's mean output on the calibration rows equal the dense model's at that point,
and lowers its mean squared error by exactly ‖δ‖² per row: E‖e − δ‖² = E‖e‖² − ‖δ‖² (the best
constant shift of a residual is its mean). So the correction can only reduce the layer's
calibration error, whatever upstream did. Unlike the OBS update, it also absorbs the part of
the upstream error that is a constant offset per channel.

Layers whose rows are output channels carry the shift: Conv (bias input 2) and Gemm (C input,
divided by ``beta``; C must be per output, shape (N,) or (1, N)). A Conv or Gemm without a bias
gets a zero one first (:func:`add_zero_biases`; same outputs). Other layers (ConvTranspose,
MatMul) are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import ModelProto, helper, numpy_helper

from onnxprune.sparsity.calibration import LayerStats
from onnxprune.sparsity.targets import SparseLayer

BIAS_OPS = ("Conv", "Gemm")


def bias_shift(original: np.ndarray, sparse: np.ndarray, stats: LayerStats) -> np.ndarray:
    """δ = W·x̄ − W'·x̄̃ per weight-matrix row (see module docstring)."""
    if stats.row_sum is None or stats.reference_sum is None or stats.rows == 0:
        raise ValueError("bias correction needs row sums (a Gram layer's statistics)")
    current = stats.row_sum / stats.rows
    reference = stats.reference_sum / stats.rows
    return original @ reference - sparse @ current


def _node(model: ModelProto, name: str):
    for node in model.graph.node:
        if node.name == name:
            return node
    raise KeyError(name)


def bias_of(model: ModelProto, layer: SparseLayer) -> tuple[str, float] | None:
    """(initializer name, scale) of the layer's per-output bias, or None when the layer cannot
    carry a correction (module docstring); the shift is added as shift / scale."""
    if layer.op_type not in BIAS_OPS:
        return None
    node = _node(model, layer.node)
    if len(node.input) < 3 or not node.input[2]:
        return None
    inits = {init.name: init for init in model.graph.initializer}
    bias = inits.get(node.input[2])
    if bias is None:
        return None
    dims = tuple(bias.dims)
    if dims not in ((layer.rows,), (1, layer.rows)):
        return None
    readers = sum(node.input[2] in other.input for other in model.graph.node)
    if readers > 1:
        return None
    scale = 1.0
    if layer.op_type == "Gemm":
        for attr in node.attribute:
            if attr.name == "beta":
                scale = float(attr.f)
    return (bias.name, scale) if scale != 0 else None


def add_zero_biases(model: ModelProto, layers: Sequence[SparseLayer]) -> ModelProto:
    """A copy of ``model`` where every Conv/Gemm of ``layers`` without a bias reads a new
    zero bias (named after the weight), so a correction has somewhere to go."""
    result = ModelProto()
    result.CopyFrom(model)
    names = {init.name for init in result.graph.initializer}
    wanted = {layer.node: layer for layer in layers if layer.op_type in BIAS_OPS}
    for node in result.graph.node:
        layer = wanted.get(node.name)
        if layer is None or (len(node.input) >= 3 and node.input[2]):
            continue
        if layer.op_type == "Conv" and layer.groups > 1:
            continue
        name = f"{layer.weight}_bias"
        while name in names:
            name += "_"
        names.add(name)
        dtype = helper.tensor_dtype_to_np_dtype(
            next(i.data_type for i in result.graph.initializer if i.name == layer.weight)
        )
        result.graph.initializer.append(
            numpy_helper.from_array(np.zeros(layer.rows, dtype=dtype), name)
        )
        while len(node.input) < 2:
            node.input.append("")
        node.input.append(name)
    return result


def corrected_bias(value: np.ndarray, shift: np.ndarray, scale: float) -> np.ndarray:
    """``value`` + shift / scale in the bias' own shape and dtype."""
    return (value.astype(np.float64) + (shift / scale).reshape(value.shape)).astype(value.dtype)
