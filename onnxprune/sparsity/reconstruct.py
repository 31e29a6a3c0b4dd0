"""Sequential OBS reconstruction of sparsified layers, and the masked refit built on it.

:func:`reconstruct_sequential` visits the layers level by level
(:mod:`~onnxprune.sparsity.levels`); each level is calibrated on the model whose upstream
layers are already rewritten (:func:`~onnxprune.sparsity.calibration.collect_layer_stats`) and
each layer is solved by the SparseGPT sweep (:func:`~onnxprune.sparsity.obs.sparsegpt`) for its
job: a zero count (unstructured), an N:M pattern or a fixed mask. With ``correct_upstream`` the
sweep starts from the dense weights that best map the rewritten model's inputs to the original
outputs (:func:`upstream_target`); with ``bias_correction`` each layer's bias is shifted so its
mean output matches the original's (:mod:`~onnxprune.sparsity.correction`). Layers OBS cannot
solve (:func:`obs_reason`) keep their mask without an update (Wanda's mask when none is fixed).

:func:`refit_masked` is the recovery of weight masks made elsewhere (the ``sparsity`` kind of
the guarded loop): every given layer's zeros are its fixed mask, and the kept weights are
refitted by the same sequential reconstruction, so that

    min over W' with W'_ij = 0 on the mask of  ‖X·Wᵀ − X̃·W'ᵀ‖²  (+ λ‖W' − W_t‖², λ = damp·mean diag H̃)

for every layer, X the original model's input rows of the layer and X̃ the refitted model's —
a masked least-squares refit (exact when the masked columns come first in the sweep, the OBS
approximation otherwise). The mask never changes, so the zero count is exactly the input's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
from onnx import ModelProto, numpy_helper

from onnxprune.calibrate import sample_count
from onnxprune.calibrate.frontier import FrontierRunner
from onnxprune.sparsity.apply import apply_weights
from onnxprune.sparsity.calibration import LayerStats, collect_layer_stats
from onnxprune.sparsity.correction import add_zero_biases, bias_of, bias_shift, corrected_bias
from onnxprune.sparsity.criteria import wanda
from onnxprune.sparsity.levels import layer_levels
from onnxprune.sparsity.obs import DEFAULT_DAMP, output_energy, sparsegpt
from onnxprune.sparsity.patterns import keep_mask, lowest_mask, nm_mask
from onnxprune.sparsity.targets import SparseLayer

FRONTIER_BYTES = 1 << 30  # activations kept between OBS levels, per model

Progress = Callable[[str], None]


@dataclass
class LayerJob:
    """Inputs of one layer's realization."""

    layer: SparseLayer
    count: int | None = None  # zeros wanted (unstructured)
    mask: np.ndarray | None = None  # fixed removal mask over the weight matrix
    nm: tuple[int, int] | None = None


def mask_from_scores(job: LayerJob, scores: np.ndarray) -> np.ndarray:
    """The job's removal mask from criterion ``scores`` (lowest removed): N:M per group, else
    the job's count."""
    if job.nm is not None:
        order = job.layer.nm_order()
        mask = np.zeros(scores.shape, dtype=bool)
        mask[:, order] = nm_mask(scores[:, order], *job.nm)
        return mask
    if job.count is not None and job.count >= scores.size:
        return keep_mask(scores, 0)
    return lowest_mask(scores, job.count or 0)


def obs_reason(layer: SparseLayer, max_columns: int) -> str:
    """Why OBS cannot rewrite ``layer`` ('' when it can)."""
    if layer.op_type == "ConvTranspose":
        return "ConvTranspose"
    if layer.op_type == "Conv" and layer.groups > 1:
        return "grouped conv"
    if layer.columns > max_columns:
        return f"{layer.columns} columns > max_columns {max_columns}"
    return ""


def upstream_target(matrix: np.ndarray, stats: LayerStats, damp: float) -> np.ndarray:
    """The dense weights W_t that best map the sparsified model's input rows X̃ to the original
    output X·Wᵀ: (H̃ + λI) W_tᵀ = (X̃ᵀX/n) Wᵀ + λWᵀ, λ = damp·mean(diag H̃) (ridge toward W).

    Since ‖XWᵀ − X̃W'ᵀ‖² = ‖XWᵀ − X̃W_tᵀ‖² + ‖X̃(W_t − W')ᵀ‖² (up to λ), sparsifying W_t with
    H̃ minimizes the error against the original output, compensating upstream layers' errors.
    """
    h = stats.hessian()
    cross = stats.cross / max(stats.rows, 1)
    lam = damp * max(float(np.mean(np.diag(h))), 1e-12)
    rhs = cross @ matrix.T + lam * matrix.T
    factor = scipy.linalg.cho_factor(h + lam * np.eye(len(h)), lower=True)
    return scipy.linalg.cho_solve(factor, rhs).T


def _initializer(model: ModelProto, name: str) -> np.ndarray:
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name)


def reconstruct_sequential(
    model: ModelProto,
    jobs: list[LayerJob],
    weights: dict[str, np.ndarray],
    data: Any,
    say: Progress,
    *,
    positions: int | None,
    batch_size: int,
    max_samples: int | None,
    block: int,
    damp: float,
    max_columns: int,
    seed: int,
    correct_upstream: bool,
    bias_correction: bool = False,
    layer_damps: Mapping[str, float] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, str]]]:
    """Sequential OBS over levels; returns new weights by initializer and (criterion, note).
    ``layer_damps``: damping by node where it differs from ``damp``."""
    by_node = {job.layer.node: job for job in jobs}
    levels = layer_levels(model, [job.layer for job in jobs])
    updated: dict[str, np.ndarray] = {}
    used: dict[str, tuple[str, str]] = {}
    current = model
    samples = sample_count(data, max_samples)
    frontiers = (
        FrontierRunner(samples, FRONTIER_BYTES),
        FrontierRunner(samples, FRONTIER_BYTES),
    )
    for depth, level in enumerate(levels):
        say(f"obs: level {depth + 1}/{len(levels)} ({len(level)} layers)")
        gram_for = {layer.node for layer in level if not obs_reason(layer, max_columns)}
        stats = collect_layer_stats(
            current, level, data, gram_for=gram_for, positions=positions,
            batch_size=batch_size, max_samples=max_samples, seed=seed + depth,
            reference=model if (correct_upstream or bias_correction) and depth else None,
            frontiers=frontiers,
        )  # fmt: skip
        for layer in level:
            job = by_node[layer.node]
            weight = weights[layer.weight]
            matrix = layer.to_matrix(weight).astype(np.float64)
            layer_stats = stats.get(layer.node)
            reason = obs_reason(layer, max_columns)
            if not reason and (layer_stats is None or layer_stats.rows == 0):
                reason = "no calibration rows"
            if reason:
                scores = wanda(matrix, layer_stats)
                mask = job.mask if job.mask is not None else mask_from_scores(job, scores)
                new = np.where(mask, 0.0, matrix)
                used[layer.node] = ("wanda", f"obs fallback: {reason}")
            else:
                order = layer.nm_order()
                dense = matrix
                layer_damp = (layer_damps or {}).get(layer.node, damp)
                if correct_upstream and layer_stats.cross is not None:
                    matrix = upstream_target(matrix, layer_stats, layer_damp)
                h = layer_stats.hessian()[np.ix_(order, order)]
                kwargs: dict[str, Any] = {"nm": job.nm}
                if job.nm is None:
                    kwargs = (
                        {"mask": job.mask[:, order]}
                        if job.mask is not None
                        else {"count": int(job.count or 0)}
                    )
                solved, _ = sparsegpt(matrix[:, order], h, block=block, damp=layer_damp, **kwargs)
                new = np.empty_like(solved)
                new[:, order] = solved
                delta = matrix[:, order] - solved
                error = output_energy(delta, h) / max(output_energy(matrix[:, order], h), 1e-30)
                note = f"relative output error {error:.4f}"
                bias = bias_of(model, layer) if bias_correction else None
                if bias is not None:
                    name, scale = bias
                    current_bias = updated.get(name, _initializer(model, name))
                    shift = bias_shift(dense, new, layer_stats)
                    updated[name] = corrected_bias(current_bias, shift, scale)
                    note += ", bias corrected"
                used[layer.node] = ("obs", note)
                say(f"obs: {layer.node} ({layer.rows}x{layer.columns}): {note}")
            updated[layer.weight] = layer.from_matrix(new).astype(weight.dtype)
        if depth + 1 < len(levels):
            current = apply_weights(model, updated)
    return updated, used


def refit_masked(
    model: ModelProto,
    layers: Sequence[SparseLayer],
    masked: ModelProto,
    data: Any,
    *,
    damp: float = DEFAULT_DAMP,
    bias_correction: bool = True,
    positions: int | None = 64,
    batch_size: int = 32,
    max_samples: int | None = 256,
    block: int = 128,
    max_columns: int = 4096,
    seed: int = 0,
    keep_positions: bool = True,
    progress: Progress | None = None,
) -> tuple[ModelProto, dict[str, tuple[str, str]]]:
    """``masked`` (``model`` with zeros in some of ``layers``' weights) with the kept weights
    of every layer that holds a zero refitted toward ``model``'s outputs (module docstring).

    ``model`` is the dense reference; ``masked`` must have the same graph. Returns the refitted
    model (with a zero bias added where a corrected layer had none) and, per refitted layer,
    (method, note) as :func:`reconstruct_sequential` reports them."""
    arrays = {init.name: init for init in masked.graph.initializer}
    dense = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    jobs = []
    for layer in layers:
        mask = layer.to_matrix(numpy_helper.to_array(arrays[layer.weight])) == 0
        if mask.any():
            fixed = mask if keep_positions else None
            jobs.append(LayerJob(layer, count=int(mask.sum()), mask=fixed))
    if not jobs:
        return masked, {}
    base = add_zero_biases(model, [job.layer for job in jobs]) if bias_correction else model
    updated, used = reconstruct_sequential(
        base, jobs, dense, data, progress or (lambda message: None),
        positions=positions, batch_size=batch_size, max_samples=max_samples, block=block,
        damp=damp, max_columns=max_columns, seed=seed, correct_upstream=True,
        bias_correction=bias_correction,
    )  # fmt: skip
    return apply_weights(base, updated), used
