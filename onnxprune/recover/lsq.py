"""Least-squares refit of the consumers of removed channels (sequential calibration).

For a consumer with original weight matrix W (rows kept, all columns) and original input rows
X (im2col rows for convs), the pruned model feeds rows X_k (kept columns only, computed by the
*already pruned and already refitted* upstream layers). The refit solves, in float64,

    [W'ᵀ; δ] = argmin ‖X Wᵀ − X_k W'ᵀ − 1 δ‖² + λ ‖W' − W_k‖²,   λ = ridge · tr(X_kᵀX_k) / d

through the normal equations (G + λ D) θ = X_k~ᵀ Y + λ D θ₀ with X_k~ = [X_k, 1],
G = X_k~ᵀ X_k~, Y = X Wᵀ, θ₀ = [W_kᵀ; 0] (the original kept columns) and D = diag(1, …, 1, 0).
The ridge pulls toward the original kept weights, not toward zero: with few calibration rows
per unknown (a classifier head sees one row per image) the refit stays near the pruned layer
instead of shrinking it (shrinking to zero collapsed EfficientNet-Lite2's head to 0 %
agreement). The intercept δ (added to the bias) is not penalized, so the constant part of the
lost signal is compensated as bias compensation would. When the removed channels are linear
combinations of kept ones the fit is exact up to the ridge.

Targets are refitted level by level (:func:`~onnxprune.recover.targets.levels`): one pass over
the calibration data per level runs the original and the current pruned model on each batch,
exposing only the inputs of that level's consumers, and accumulates G, the cross term and the
output moments; rows are subsampled to ``positions`` output positions per sample as in
:mod:`onnxprune.calibrate.im2col`, and further to ⌈rows_per_column · d / samples⌉ per
sample (about ``rows_per_column`` rows per unknown of the fit), which bounds the O(rows·d²)
accumulation where feature maps are large and layers narrow.

Optional statistics correction rescales each refitted output channel so its mean and standard
deviation on the calibration rows match the original's: ŷ' = (ŷ − μ̂)·σ/σ̂ + μ, folded into W'
and δ (closed form from G: μ̂ = G_{1,:}θ / n, E[ŷ²] = diag(θᵀGθ) / n).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
from onnx import ModelProto

from onnxprune.analysis import ChannelAnalysis
from onnxprune.calibrate import ConsumerLayer, iter_feeds, sample_count
from onnxprune.calibrate.frontier import FrontierRunner
from onnxprune.calibrate.im2col import CHUNK_ELEMENTS, sample_positions
from onnxprune.calibrate.padding import real_positions
from onnxprune.defaults import LSQ_RIDGE
from onnxprune.graph.mask_input import mask_input
from onnxprune.recover.edit import ModelEdits
from onnxprune.recover.targets import RefitTarget, levels


@dataclasses.dataclass
class NormalEquations:
    """Streaming sums of one refit: G = X~ᵀX~, C = X~ᵀY, ΣY, ΣY² and the row count."""

    gram: np.ndarray
    cross: np.ndarray
    sum_y: np.ndarray
    sum_yy: np.ndarray
    rows: int = 0

    @classmethod
    def empty(cls, columns: int, outputs: int) -> NormalEquations:
        return cls(
            np.zeros((columns + 1, columns + 1)),
            np.zeros((columns + 1, outputs)),
            np.zeros(outputs),
            np.zeros(outputs),
        )

    def add(self, kept_rows: np.ndarray, y: np.ndarray) -> None:
        x = np.hstack([kept_rows, np.ones((kept_rows.shape[0], 1))])
        self.gram += x.T @ x
        self.cross += x.T @ y
        self.sum_y += y.sum(axis=0)
        self.sum_yy += np.square(y).sum(axis=0)
        self.rows += x.shape[0]


def solve_ridge(
    normal: NormalEquations, ridge: float, prior: np.ndarray | None = None
) -> np.ndarray:
    """θ = (G + λD)⁻¹ (C + λDθ₀) with λ = ridge · tr(G_xx)/d, no penalty on the intercept.

    ``prior`` θ₀ ((d + 1) × outputs; None = zeros) is what the penalty pulls the weights toward.
    """
    d = normal.gram.shape[0] - 1
    scale = np.trace(normal.gram[:d, :d]) / max(d, 1)
    penalty = np.ones(d + 1) * ridge * (scale if scale > 0 else 1.0)
    penalty[d] = 0.0
    system = normal.gram + np.diag(penalty)
    rhs = normal.cross if prior is None else normal.cross + penalty[:, None] * prior
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(system), rhs)
    except (np.linalg.LinAlgError, ValueError):
        return np.linalg.lstsq(system, rhs, rcond=None)[0]


RIDGE_RETRY_FACTOR = 10.0


class RecoveryFallbackWarning(RuntimeWarning):
    """A least-squares refit fell back (larger ridge, bias compensation or kept weights)."""


def solve_with_fallback(
    normal: NormalEquations, ridge: float, prior: np.ndarray
) -> tuple[np.ndarray, str]:
    """θ from :func:`solve_ridge`, falling back when the numerics fail; returns (θ, note).

    1. the ridge solve at ``ridge``; 2. once more at ``RIDGE_RETRY_FACTOR`` × ``ridge`` (or
    1e-3 when ``ridge`` is 0); 3. bias compensation from the same sums: the kept weights θ₀ and
    the intercept E[y] − E[x_k]·W_kᵀ; 4. θ₀ with no shift (the plain pruned layer) when even
    the means are not finite. A step counts as failed when it raises (Cholesky and the SVD of
    lstsq: "SVD did not converge") or returns a non-finite θ. ``note`` is '' for step 1.
    """
    finite = bool(np.all(np.isfinite(normal.gram)) and np.all(np.isfinite(normal.cross)))
    if finite:
        for attempt, value in enumerate((ridge, ridge * RIDGE_RETRY_FACTOR if ridge else 1e-3)):
            try:
                theta = solve_ridge(normal, value, prior)
            except (np.linalg.LinAlgError, ValueError):
                continue
            if np.all(np.isfinite(theta)):
                note = "" if attempt == 0 else f"least squares retried with ridge {value:g}"
                return theta, note
    theta = prior.copy()
    n = max(normal.rows, 1)
    mean_x = normal.gram[-1, :-1] / n
    mean_y = normal.sum_y / n
    shift = mean_y - mean_x @ prior[:-1]
    if np.all(np.isfinite(shift)):
        theta[-1] = shift
        return theta, "least squares failed (non-finite sums or no convergence): bias compensation"
    return (
        theta,
        "least squares and bias compensation failed (non-finite activations): kept weights",
    )


def kept_prior(target: RefitTarget) -> np.ndarray:
    """θ₀ = [W_kᵀ; 0]: the original weights of the kept columns, intercept 0."""
    kept = target.weight[:, target.kept_columns].T
    return np.vstack([kept, np.zeros((1, kept.shape[1]))])


def match_statistics(theta: np.ndarray, normal: NormalEquations) -> np.ndarray:
    """θ rescaled so every output's mean and std on the calibration rows equal the target's."""
    n = max(normal.rows, 1)
    mean_hat = normal.gram[-1] @ theta / n
    var_hat = np.einsum("ij,ij->j", theta, normal.gram @ theta) / n - mean_hat**2
    mean = normal.sum_y / n
    var = normal.sum_yy / n - mean**2
    scale = np.where(
        var_hat > 1e-12, np.sqrt(np.maximum(var, 0.0) / np.maximum(var_hat, 1e-12)), 1.0
    )
    corrected = theta * scale
    corrected[-1] = (theta[-1] - mean_hat) * scale + mean
    return corrected


def _pruned_layer(target: RefitTarget, edits: ModelEdits) -> ConsumerLayer:
    node = edits.node(target.layer.node)
    return dataclasses.replace(
        target.layer,
        input=node.input[0],
        weight=node.input[1],
        labels=target.layer.labels[target.kept_features],
    )


def _accumulate(
    target: RefitTarget,
    layer: ConsumerLayer,
    x_original: np.ndarray,
    x_pruned: np.ndarray,
    normal: NormalEquations,
    per_sample: int | None,
    rng: np.random.Generator,
    mask: np.ndarray | None = None,
) -> None:
    count = target.layer.position_count(x_original.shape)
    if layer.position_count(x_pruned.shape) != count:
        raise ValueError(f"'{layer.node}': pruned and original inputs differ in positions")
    valid = real_positions(mask, count)
    chosen = sample_positions(x_original.shape[0], count, per_sample, rng, valid)
    width = target.weight.shape[1] + target.weight.shape[0]
    step = max(1, CHUNK_ELEMENTS // max(1, chosen.shape[1] * width))
    for start in range(0, x_original.shape[0], step):
        part = slice(start, start + step)
        rows = np.concatenate(list(target.layer.rows(x_original[part], chosen[part])))
        kept = np.concatenate(list(layer.rows(x_pruned[part], chosen[part])))
        normal.add(kept, rows @ target.weight.T)


def _positions_per_sample(
    columns: int, positions: int | None, rows_per_column: int | None, samples: int | None
) -> int | None:
    """Positions sampled per sample: ``positions``, capped so rows ≈ rows_per_column · d."""
    if rows_per_column is None or not samples:
        return positions
    cap = max(1, -(-rows_per_column * columns // samples))
    return cap if positions is None else min(positions, cap)


def refit_least_squares(
    analysis: ChannelAnalysis,
    pruned: ModelProto,
    targets: list[RefitTarget],
    calibration: Any,
    *,
    ridge: float = LSQ_RIDGE,
    batch_size: int = 32,
    max_samples: int | None = 512,
    positions: int | None = 64,
    rows_per_column: int | None = 32,
    stats_correction: bool = False,
    frontier_mb: float = 1024.0,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ModelProto:
    """A copy of ``pruned`` with every target refitted (see module docstring). Each level
    runs the original and the pruned model only from the tensors the previous level left
    behind, while they fit ``frontier_mb`` MiB per model (:mod:`onnxprune.calibrate.frontier`;
    0 runs both from the graph inputs every level, with the same result)."""
    say = progress or (lambda message: None)
    model = ModelProto()
    model.CopyFrom(pruned)
    staged = levels(analysis, targets)
    samples = sample_count(calibration, max_samples)
    rng = np.random.default_rng(seed)
    budget = frontier_mb * (1 << 20)
    original_runner = FrontierRunner(samples, budget)
    mask_name = mask_input(analysis.model)  # padding rows are left out (calibrate/padding)
    current_runner = FrontierRunner(samples, budget)

    def feeds():
        return iter_feeds(
            calibration, analysis.model, batch_size=batch_size, max_samples=max_samples
        )

    for depth, level in enumerate(staged):
        edits = ModelEdits(model)
        layers = [_pruned_layer(target, edits) for target in level]
        normals = [
            NormalEquations.empty(int(t.kept_features.sum()) * t.layer.kernel_size, len(t.weight))
            for t in level
        ]
        per_sample = [
            _positions_per_sample(normal.gram.shape[0], positions, rows_per_column, samples)
            for normal in normals
        ]
        wanted = [t.layer.input for t in level] + ([mask_name] if mask_name else [])
        originals = original_runner.run(analysis.model, wanted, feeds())
        pruned_values = current_runner.run(model, [layer.input for layer in layers], feeds())
        for values_original, values_pruned in zip(originals, pruned_values, strict=True):
            mask = values_original.get(mask_name) if mask_name else None
            for target, layer, normal, count in zip(
                level, layers, normals, per_sample, strict=True
            ):
                _accumulate(
                    target,
                    layer,
                    values_original[target.layer.input],
                    values_pruned[layer.input],
                    normal,
                    count,
                    rng,
                    mask,
                )
        for target, layer, normal in zip(level, layers, normals, strict=True):
            theta, note = solve_with_fallback(normal, ridge, kept_prior(target))
            if note:
                warning = f"'{layer.node}': {note}"
                say(f"warning: {warning}")
                warnings.warn(warning, RecoveryFallbackWarning, stacklevel=2)
            if stats_correction and not note:
                theta = match_statistics(theta, normal)
            current_weight = edits.value(layer.weight)
            weight = layer.weight_from_matrix(theta[:-1].T, current_weight.shape)
            edits.set_input(layer.node, 1, weight.astype(current_weight.dtype), "w")
            edits.shift_bias(layer.node, theta[-1], current_weight.dtype)
        edits.drop_unused()
        say(f"least-squares recovery: level {depth + 1}/{len(staged)} ({len(level)} layers)")
    return model
