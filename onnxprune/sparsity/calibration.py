"""Input statistics of sparsifiable layers from calibration data (streaming, float64).

For every requested layer the model runs in ONNX Runtime with the layer inputs as its only
outputs (:class:`~onnxprune.calibrate.session.ExposedRunner`, graph cut to their ancestors),
batch by batch, and per layer we accumulate over its input *rows* (one row per output position:
im2col rows of C·∏k values for convs, the feature vector otherwise, at no more than ``positions``
sampled positions per sample):

* ``column_sq`` = Σ row_j² per weight-matrix column (the Wanda norm is sqrt(column_sq/rows));
  for grouped convs one vector per group, shape (groups, columns);
* ``gram`` = Σ rowᵀ·row (only for layers in ``gram_for``: plain convs, Gemm, MatMul), so that
  H = gram / rows is the layer's input second moment;
* with a ``reference`` model (the original, for sequential calibration): ``cross`` = Σ rowᵀ·ref
  where ``ref`` is the same row (same sample, same position) of the reference model's input of
  the layer, so the layer can be fitted to the *original* output (upstream error corrected);
* for Gram layers also ``row_sum`` = Σ row and ``reference_sum`` = Σ ref (the reference row;
  the row itself without a reference), the means that bias correction matches
  (:func:`~onnxprune.sparsity.correction.bias_shift`).

Memory: one batch of the exposed activations, im2col chunks of at most
:data:`~onnxprune.calibrate.im2col.CHUNK_ELEMENTS` values, and the accumulators (d² float64 per
Gram matrix, d = columns ≤ ``max_columns`` of the caller).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import ModelProto, TensorProto

from onnxprune.calibrate.data import iter_feeds
from onnxprune.calibrate.frontier import FrontierRunner
from onnxprune.calibrate.im2col import conv_rows, matrix_rows, sample_positions
from onnxprune.calibrate.padding import real_positions
from onnxprune.calibrate.session import ExposedRunner
from onnxprune.graph.mask_input import mask_input
from onnxprune.sparsity.targets import SparseLayer

Progress = Callable[[str], None]


@dataclass
class LayerStats:
    """Accumulated input statistics of one layer (see module docstring)."""

    rows: int
    column_sq: np.ndarray  # (groups, columns)
    gram: np.ndarray | None = None
    cross: np.ndarray | None = None  # Σ rowᵀ·reference row
    row_sum: np.ndarray | None = None  # Σ row (Gram layers)
    reference_sum: np.ndarray | None = None  # Σ reference row (= row_sum without reference)

    def column_norms(self) -> np.ndarray:
        """sqrt(E[row_j²]) per group and column, shape (groups, columns)."""
        return np.sqrt(self.column_sq / max(self.rows, 1))

    def hessian(self) -> np.ndarray:
        """H = Σ rowᵀrow / rows (float64)."""
        if self.gram is None:
            raise ValueError("no Gram matrix was accumulated for this layer")
        return self.gram / max(self.rows, 1)


def position_count(layer: SparseLayer, shape: tuple[int, ...]) -> int:
    """Rows one sample of the layer's input of ``shape`` gives."""
    if layer.geometry is not None:
        return int(np.prod(layer.geometry.output_spatial(tuple(shape[2:]))))
    if layer.op_type == "ConvTranspose":
        return int(np.prod(shape[2:]))
    if layer.left_constant:
        return int(np.prod(shape[1:-2])) * int(shape[-1])
    return int(np.prod(shape[1:-1]))


def layer_rows(layer: SparseLayer, x: np.ndarray, chosen: np.ndarray) -> Iterator[np.ndarray]:
    """float64 row chunks of input ``x`` at the flat positions ``chosen`` (N, P); columns are
    the weight-matrix columns (all C·∏k for grouped convs)."""
    if layer.geometry is not None:
        return conv_rows(x, layer.geometry, chosen)
    if layer.op_type == "ConvTranspose":
        return matrix_rows(np.moveaxis(x, 1, -1), chosen)
    if layer.left_constant:
        return matrix_rows(np.swapaxes(x, -1, -2), chosen)
    return matrix_rows(x, chosen)


class _Accumulator:
    def __init__(self, layer: SparseLayer, gram: bool) -> None:
        self.layer = layer
        self.rows = 0
        self.column_sq: np.ndarray | None = None
        self.gram: np.ndarray | None = None
        self.cross: np.ndarray | None = None
        self.row_sum: np.ndarray | None = None
        self.reference_sum: np.ndarray | None = None
        self.want_gram = gram

    def add(self, chunk: np.ndarray, reference: np.ndarray | None = None) -> None:
        if self.column_sq is None:
            self.column_sq = np.zeros(chunk.shape[1])
            if self.want_gram:
                self.gram = np.zeros((chunk.shape[1], chunk.shape[1]))
                self.row_sum = np.zeros(chunk.shape[1])
                self.reference_sum = np.zeros(chunk.shape[1])
                if reference is not None:
                    self.cross = np.zeros((chunk.shape[1], chunk.shape[1]))
        self.column_sq += np.einsum("ij,ij->j", chunk, chunk)
        if self.gram is not None:
            self.gram += chunk.T @ chunk
            self.row_sum += chunk.sum(axis=0)
            self.reference_sum += (chunk if reference is None else reference).sum(axis=0)
        if self.cross is not None and reference is not None:
            self.cross += chunk.T @ reference
        self.rows += chunk.shape[0]

    def result(self) -> LayerStats:
        layer = self.layer
        column_sq = self.column_sq if self.column_sq is not None else np.zeros(layer.columns)
        groups = layer.groups if layer.op_type == "Conv" else 1
        return LayerStats(
            self.rows, column_sq.reshape(groups, -1), self.gram, self.cross, self.row_sum,
            self.reference_sum,
        )  # fmt: skip


def collect_layer_stats(
    model: ModelProto,
    layers: list[SparseLayer],
    data: Any,
    *,
    gram_for: set[str] = frozenset(),
    positions: int | None = 64,
    batch_size: int = 32,
    max_samples: int | None = 512,
    seed: int = 0,
    reference: ModelProto | None = None,
    progress: Progress | None = None,
    frontiers: tuple[FrontierRunner, FrontierRunner] | None = None,
) -> dict[str, LayerStats]:
    """Statistics of every layer's input on ``model`` (see module docstring), keyed by node.

    ``reference`` must have the same graph (tensor names) as ``model``. ``frontiers`` (one
    runner for successive versions of ``model``, one for ``reference``): a level runs only the
    nodes after the previous level's frontier (:mod:`onnxprune.calibrate.frontier`), valid when
    the levels come in order and only layers of earlier levels changed."""
    if not layers:
        return {}
    rng = np.random.default_rng(seed)
    accumulators = {layer.node: _Accumulator(layer, layer.node in gram_for) for layer in layers}
    names = list(dict.fromkeys(layer.input for layer in layers))
    elem_types = {layer.input: input_elem_type(model, layer) for layer in layers}
    cross_names = list(dict.fromkeys(layer.input for layer in layers if layer.node in gram_for))
    pairing = reference is not None and bool(cross_names)

    def feeds():
        return iter_feeds(data, model, batch_size=batch_size, max_samples=max_samples)

    if frontiers is not None:
        values_stream = frontiers[0].run(model, names, feeds())
        original_stream = frontiers[1].run(reference, cross_names, feeds()) if pairing else None
    else:
        runner = ExposedRunner(model, names, elem_types)
        paired = ExposedRunner(reference, cross_names, elem_types) if pairing else None
        values_stream = (runner(batch) for batch in feeds())
        original_stream = (paired(batch) for batch in feeds()) if paired is not None else None
    batches = feeds()
    samples = 0
    # zip(strict=True) runs every stream to its end: a frontier runner keeps its tensors for
    # the next level only once its generator is exhausted.
    streams = (
        zip(values_stream, original_stream, strict=True)
        if original_stream is not None
        else ((values, {}) for values in values_stream)
    )
    mask_name = mask_input(model)
    for batch, (values, originals) in zip(batches, streams, strict=True):
        mask = batch.get(mask_name) if mask_name else None
        for layer in layers:
            x = np.asarray(values[layer.input])
            count = position_count(layer, x.shape)
            chosen = sample_positions(
                x.shape[0], count, positions, rng, real_positions(mask, count)
            )
            if layer.input in originals and layer.node in gram_for:
                pairs = zip(
                    layer_rows(layer, x, chosen),
                    layer_rows(layer, np.asarray(originals[layer.input]), chosen),
                    strict=True,
                )
                for chunk, original in pairs:
                    accumulators[layer.node].add(chunk, original)
                continue
            for chunk in layer_rows(layer, x, chosen):
                accumulators[layer.node].add(chunk)
        samples += next(iter(batch.values())).shape[0]
        if progress:
            progress(f"sparsity statistics: {samples} samples, {len(layers)} layers")
    return {node: acc.result() for node, acc in accumulators.items()}


def input_elem_type(model: ModelProto, layer: SparseLayer) -> int:
    """ONNX element type of the layer's input: its weight's (float16 models read float16)."""
    for init in model.graph.initializer:
        if init.name == layer.weight:
            return int(init.data_type)
    return TensorProto.FLOAT
