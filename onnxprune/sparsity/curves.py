"""Per-layer error curves for the ``error`` allocation (:mod:`~onnxprune.sparsity.allocation`).

For a layer y = W·x with calibration rows x, sparsifying W to W' at fraction s costs the
*normalized output error*

    e(s) = tr(ΔW H ΔWᵀ) / tr(W H Wᵀ),   ΔW = W − W',  H = E[x xᵀ],

i.e. ‖(W − W')x‖² / ‖Wx‖² over the rows: 0 when nothing is removed, comparable across layers
of any width.

**Held-out halves.** W' is fitted on the rows of one half of the calibration samples (even
sample indices, H_a) and the error read on the other half (H_b), then the other way round; the
curve is the mean of both. A reconstruction fitted and scored on the same rows is optimistic
where rows are few against columns (a classifier Gemm has one row per sample: 128 rows for
1,280 columns, where the in-sample error is ~100× below the error on new images); the
held-out error is not.

W' is what the criterion would produce on the *dense* model: with a reconstructing criterion
(OBS), :func:`~onnxprune.sparsity.obs.sparsegpt` at count round(s·n); otherwise the lowest
criterion scores zeroed (scores from the pooled statistics) without update. To keep the cost
small the curve is measured on at most ``max_rows`` weight-matrix rows drawn at random (the
error ratio is a sum over rows), at the sparsity ``levels``.

**Output gains** (``output_gain=True``, the ``output`` allocation). Layers pass their error on
to the model output with very different gains (a classifier's error lands on the logits
unchanged; an early layer's error can be amplified by everything after it), so equal layer
errors are not equal harm. For each layer a small probe perturbation is made: its weights move
toward the magnitude mask at 50 % (ΔW = t·(W_mask − W), t set so the layer error
tr(ΔW H ΔWᵀ)/tr(W H Wᵀ) is ``probe`` = 1 %, small enough to stay in the linear regime), only that
layer is changed, and the model outputs on the first ``gain_samples`` calibration samples are
compared with the dense ones: gain_l = D(y, y + Δy) / probe. D is ``gain_metric``, a smooth drop
metric (:mod:`onnxprune.sensitivity.metrics`; quadratic in small output changes, as e_l is in
ΔW, so the ratio is a gain): by default ``rel_mse``, ‖Δy‖² / ‖y‖² per float output. That
misleads on heads whose channels have different scales: on a YOLO output [N, 4 + C, A] box
coordinates in pixels fill ‖y‖², the class branch measures a gain of ~0 and is sparsified
first. ``std_mse`` weighs each output channel by its own spread; ``optimize`` uses it under a
task guard (:func:`onnxprune.pipeline.drop_metric.choose_gain_metric`), ``sparsify`` with
``gain_metric="std_mse"``. The curve is then gain_l · e_l(s), an estimate of the model-output
error each layer's sparsity causes, so the allocator minimizes Σ_l gain_l·e_l. Cost: one
forward pass of ``gain_samples`` samples per layer.

One calibration pass runs the dense model with the layers' inputs exposed; layers are taken in
chunks whose two Gram matrices (2·d² float64 each, d = columns) fit in ``budget_bytes``, one
pass per chunk. Layers OBS cannot handle (grouped convs, ConvTranspose, more than
``max_columns`` columns) get no curve: the allocator gives them the uniform share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from onnx import ModelProto

from onnxprune.calibrate.data import iter_feeds
from onnxprune.calibrate.im2col import sample_positions
from onnxprune.calibrate.padding import real_positions
from onnxprune.calibrate.session import ExposedRunner, make_session
from onnxprune.graph.mask_input import mask_input
from onnxprune.graph.tensor_outputs import tensor_output_model
from onnxprune.sensitivity.metrics import DropMetric, relative_squared_error
from onnxprune.sparsity.allocation import ErrorCurve
from onnxprune.sparsity.apply import apply_weights
from onnxprune.sparsity.calibration import (
    LayerStats,
    input_elem_type,
    layer_rows,
    position_count,
)
from onnxprune.sparsity.criteria import SparsityCriterion
from onnxprune.sparsity.obs import DEFAULT_DAMP, inverse_cholesky, output_energy, sparsegpt
from onnxprune.sparsity.patterns import lowest_mask
from onnxprune.sparsity.targets import SparseLayer

#: Sparsity fractions at which curves are measured (0 is implied, with error 0).
DEFAULT_LEVELS = (0.25, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
Progress = Callable[[str], None]


def curve_capable(layer: SparseLayer, max_columns: int) -> bool:
    """True when the layer's full Gram matrix can be measured (plain conv, Gemm, MatMul)."""
    if layer.op_type == "ConvTranspose":
        return False
    if layer.op_type == "Conv" and layer.groups > 1:
        return False
    return layer.columns <= max_columns


def fold_grams(
    model: ModelProto,
    layers: Sequence[SparseLayer],
    data: Any,
    *,
    positions: int | None,
    batch_size: int,
    max_samples: int | None,
    seed: int,
) -> dict[str, tuple[tuple[np.ndarray, int], tuple[np.ndarray, int]]]:
    """``{node: ((Σ rowᵀrow, rows) of even samples, (…) of odd samples)}`` on ``model``."""
    rng = np.random.default_rng(seed)
    names = list(dict.fromkeys(layer.input for layer in layers))
    runner = ExposedRunner(
        model, names, {layer.input: input_elem_type(model, layer) for layer in layers}
    )
    grams = {layer.node: [np.zeros((layer.columns,) * 2), 0, np.zeros((layer.columns,) * 2), 0]
             for layer in layers}  # fmt: skip
    offset = 0  # samples seen before this batch: the fold of a sample is its global parity
    mask_name = mask_input(model)
    for batch in iter_feeds(data, model, batch_size=batch_size, max_samples=max_samples):
        values = runner(batch)
        mask = batch.get(mask_name) if mask_name else None
        size = 0
        for layer in layers:
            x = np.asarray(values[layer.input])
            size = x.shape[0]
            count = position_count(layer, x.shape)
            chosen = sample_positions(size, count, positions, rng, real_positions(mask, count))
            for fold in (0, 1):
                pick = np.arange((offset + fold) % 2, size, 2)
                if not len(pick):
                    continue
                entry = grams[layer.node]
                for chunk in layer_rows(layer, x[pick], np.asarray(chosen)[pick]):
                    entry[2 * fold] += chunk.T @ chunk
                    entry[2 * fold + 1] += chunk.shape[0]
        offset += size
    return {node: ((g0, n0), (g1, n1)) for node, (g0, n0, g1, n1) in grams.items()}


def _normalized_error(delta: np.ndarray, matrix: np.ndarray, h: np.ndarray) -> float:
    return output_energy(delta, h) / max(output_energy(matrix, h), 1e-30)


def layer_curve(
    matrix: np.ndarray,
    folds: tuple[tuple[np.ndarray, int], tuple[np.ndarray, int]],
    criterion: SparsityCriterion,
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    damp: float = DEFAULT_DAMP,
    block: int = 128,
    scores: np.ndarray | None = None,
) -> ErrorCurve:
    """The held-out error curve of one (rows, columns) weight matrix (module docstring);
    ``scores``: the criterion's scores of ``matrix`` when they come from the whole model
    (gradient criteria), else computed here."""
    (g0, n0), (g1, n1) = folds
    pooled = (g0 + g1) / max(n0 + n1, 1)
    halves = [g0 / n0, g1 / n1] if n0 and n1 else [pooled, pooled]
    pairs = ((halves[0], halves[1]), (halves[1], halves[0]))
    factors = [inverse_cholesky(fit, damp) for fit, _ in pairs] if criterion.reconstructs else []
    stats = LayerStats(n0 + n1, np.diag(g0 + g1)[None, :].copy(), g0 + g1)
    if scores is None and not criterion.reconstructs:
        scores = np.asarray(criterion(matrix, stats))
    errors = []
    for level in levels:
        count = round(level * matrix.size)
        if scores is not None:
            delta = np.where(lowest_mask(scores, count), matrix, 0.0)
            errors.append(_normalized_error(delta, matrix, pooled))
            continue
        value = 0.0
        for (fit, held_out), factor in zip(pairs, factors, strict=True):
            solved, _ = sparsegpt(matrix, fit, count=count, block=block, factor=factor)
            value += _normalized_error(matrix - solved, matrix, held_out) / len(pairs)
        errors.append(value)
    return ErrorCurve((0.0, *levels), (0.0, *errors))


def _outputs(model: ModelProto, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """The float outputs of ``model`` on ``feeds``, each with the batches joined on axis 0
    (ZipMap outputs as the probability tensors they view: :mod:`onnxprune.graph.tensor_outputs`).
    """
    session = make_session(tensor_output_model(model))
    names = {value.name for value in session.get_inputs()}
    parts: list[list[np.ndarray]] = []
    for batch in feeds:
        values = session.run(None, {k: v for k, v in batch.items() if k in names})
        values = [v for v in map(np.asarray, values) if np.issubdtype(v.dtype, np.floating)]
        parts = parts or [[] for _ in values]
        for part, value in zip(parts, values, strict=True):
            part.append(value)
    return [np.concatenate(part, axis=0) for part in parts]


def output_gains(
    model: ModelProto,
    layers: Sequence[SparseLayer],
    weights: dict[str, np.ndarray],
    hessians: dict[str, np.ndarray],
    data: Any,
    *,
    samples: int = 32,
    batch_size: int = 32,
    probe: float = 0.01,
    gain_metric: DropMetric | None = None,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Model-output error per unit of layer error, by node: ``gain_metric`` (reference outputs,
    probed outputs) over the probe (module docstring; None: ``rel_mse``)."""
    measure = gain_metric or relative_squared_error
    feeds = list(iter_feeds(data, model, batch_size=batch_size, max_samples=samples))
    reference = _outputs(model, feeds)
    gains = {}
    for layer in layers:
        h = hessians.get(layer.node)
        if h is None:
            continue
        weight = weights[layer.weight]
        matrix = layer.to_matrix(weight).astype(np.float64)
        direction = np.where(lowest_mask(np.abs(matrix), matrix.size // 2), -matrix, 0.0)
        layer_error = _normalized_error(direction, matrix, h)
        if layer_error <= 0:
            continue
        step = np.sqrt(probe / layer_error)
        probed = layer.from_matrix(matrix + step * direction).astype(weight.dtype)
        probed_outputs = _outputs(apply_weights(model, {layer.weight: probed}), feeds)
        gains[layer.node] = float(measure(reference, probed_outputs)) / probe
        if progress:
            progress(f"output gain {layer.node}: {gains[layer.node]:.3f}")
    return gains


def _gram_chunks(
    layers: Sequence[SparseLayer], max_columns: int, budget_bytes: float
) -> list[list[SparseLayer]]:
    """The curve-capable layers in chunks whose two Gram matrices (2·d² float64 each) fit in
    ``budget_bytes`` (one calibration pass per chunk)."""
    chunks: list[list[SparseLayer]] = [[]]
    used = 0.0
    for layer in (layer for layer in layers if curve_capable(layer, max_columns)):
        cost = 2 * 8.0 * layer.columns**2
        if chunks[-1] and used + cost > budget_bytes:
            chunks.append([])
            used = 0.0
        chunks[-1].append(layer)
        used += cost
    return [chunk for chunk in chunks if chunk]


def nm_costs(
    model: ModelProto,
    layers: Sequence[SparseLayer],
    weights: dict[str, np.ndarray],
    data: Any,
    nm: tuple[int, int],
    *,
    positions: int | None = 64,
    batch_size: int = 32,
    max_samples: int | None = 256,
    seed: int = 0,
    damp: float = DEFAULT_DAMP,
    block: int = 128,
    max_columns: int = 4096,
    max_rows: int = 128,
    budget_bytes: float = 1 << 30,
    gain_samples: int = 32,
    gain_metric: DropMetric | None = None,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Estimated model-output error of each layer alone at the N:M pattern, by node:
    gain_l · e_l with e_l the held-out normalized error of the OBS N:M solution (fitted on
    one half of the calibration samples, scored on the other, both ways; columns in N:M group
    order) and gain_l the layer's output gain (module docstring). Layers OBS cannot handle get
    no cost."""
    rng = np.random.default_rng(seed)
    costs: dict[str, float] = {}
    for chunk in _gram_chunks(layers, max_columns, budget_bytes):
        folds = fold_grams(
            model, chunk, data, positions=positions, batch_size=batch_size,
            max_samples=max_samples, seed=seed,
        )  # fmt: skip
        hessians = {
            node: (g0 + g1) / max(n0 + n1, 1) for node, ((g0, n0), (g1, n1)) in folds.items()
        }
        gains = output_gains(
            model, chunk, weights, hessians, data, samples=gain_samples, batch_size=batch_size,
            gain_metric=gain_metric, progress=progress,
        )  # fmt: skip
        for layer in chunk:
            (g0, n0), (g1, n1) = folds[layer.node]
            if layer.node not in gains or not (n0 and n1):
                continue
            order = layer.nm_order()
            matrix = layer.to_matrix(weights[layer.weight]).astype(np.float64)[:, order]
            if matrix.shape[0] > max_rows:
                matrix = matrix[np.sort(rng.choice(matrix.shape[0], max_rows, replace=False))]
            halves = [g[np.ix_(order, order)] / n for g, n in ((g0, n0), (g1, n1))]
            error = 0.0
            for fit, held_out in ((halves[0], halves[1]), (halves[1], halves[0])):
                solved, _ = sparsegpt(matrix, fit, nm=nm, block=block, damp=damp)
                error += _normalized_error(matrix - solved, matrix, held_out) / 2
            costs[layer.node] = gains[layer.node] * error
            if progress:
                progress(f"N:M cost {layer.node}: {costs[layer.node]:.4f}")
    return costs


def error_curves(
    model: ModelProto,
    layers: Sequence[SparseLayer],
    weights: dict[str, np.ndarray],
    data: Any,
    criterion: SparsityCriterion,
    *,
    positions: int | None = 64,
    batch_size: int = 32,
    max_samples: int | None = 256,
    seed: int = 0,
    damp: float = DEFAULT_DAMP,
    block: int = 128,
    max_columns: int = 4096,
    max_rows: int = 128,
    levels: Sequence[float] = DEFAULT_LEVELS,
    budget_bytes: float = 1 << 30,
    output_gain: bool = False,
    gain_samples: int = 32,
    gain_metric: DropMetric | None = None,
    scores: dict[str, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> dict[str, ErrorCurve]:
    """Error curves of ``layers`` on ``model`` (module docstring), keyed by node; scaled by
    each layer's output gain when ``output_gain``. ``scores``: per node, the criterion's
    matrix-layout scores when it scores the whole model (gradient criteria)."""
    chunks = _gram_chunks(layers, max_columns, budget_bytes)
    rng = np.random.default_rng(seed)
    curves: dict[str, ErrorCurve] = {}
    for number, chunk in enumerate(chunks):
        if progress:
            progress(f"error curves: calibration pass {number + 1} ({len(chunk)} layers)")
        folds = fold_grams(
            model, chunk, data, positions=positions, batch_size=batch_size,
            max_samples=max_samples, seed=seed,
        )  # fmt: skip
        if output_gain:
            hessians = {
                node: (g0 + g1) / max(n0 + n1, 1) for node, ((g0, n0), (g1, n1)) in folds.items()
            }
            gains = output_gains(
                model, chunk, weights, hessians, data, samples=gain_samples,
                batch_size=batch_size, gain_metric=gain_metric, progress=progress,
            )  # fmt: skip
            del hessians
        for layer in chunk:
            matrix = layer.to_matrix(weights[layer.weight]).astype(np.float64)
            layer_scores = None if scores is None else scores[layer.node]
            if matrix.shape[0] > max_rows:
                rows = np.sort(rng.choice(matrix.shape[0], max_rows, replace=False))
                matrix = matrix[rows]
                layer_scores = None if layer_scores is None else layer_scores[rows]
            (_, n0), (_, n1) = folds[layer.node]
            if n0 + n1 == 0:
                continue
            curve = layer_curve(
                matrix, folds[layer.node], criterion, levels=levels, damp=damp, block=block,
                scores=layer_scores,
            )  # fmt: skip
            if output_gain:
                if layer.node not in gains:
                    continue
                curve = ErrorCurve(curve.levels, tuple(gains[layer.node] * e for e in curve.errors))
            curves[layer.node] = curve
            if progress:
                shown = ", ".join(f"{e:.3f}" for e in curves[layer.node].errors[1:])
                progress(f"error curve {layer.node}: {shown}")
    return curves
