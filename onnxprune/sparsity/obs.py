"""Second-order weight removal with compensation (Optimal Brain Surgeon, SparseGPT-style).

For a layer y = W·x with weight matrix W (rows × columns) and input second moment
H = E[x xᵀ] (from calibration rows), removing weight w_rq of row r and re-fitting the row's
other weights optimally increases the squared output error of row r by
ε = w_rq² / [H⁻¹]_qq, with the update δw_r = −(w_rq / [H⁻¹]_qq) · [H⁻¹]_{q,:}.

SparseGPT makes this cheap for all rows at once by visiting the columns in order and freezing
each one after its visit: the inverse Hessian of the *remaining* columns j ≥ q is then read off
the upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), row q: removing w_rq updates the columns
j ≥ q of row r by −(w_rq / U_qq) · U_{q,j}. Columns are processed in blocks of ``block``: the
updates inside a block are applied eagerly, those to later columns once per block
(W[:, after] −= E·U[block, after], E the block's scaled errors), so the cost is O(rows·cols²)
in matrix products plus O(cols³) for the factorization.

Selection happens during the sweep, on the already-compensated weights (adaptive mask):

* unstructured: at the start of each block, the weights with the lowest w² / U_qq² in the block
  (over all rows) are removed, the block's share of the layer's count being
  round(count·end/cols) − round(count·start/cols), so the layer loses exactly ``count``;
* N:M: at the first column of each group of M (columns in group order), per row the M − N
  lowest w² / U_qq² of the group.

A fixed ``mask`` may be given instead (tests; exact least squares when the removed columns come
first). H is damped, H + damp·mean(diag H)·I; dead columns (zero on every row) then get a huge
[H⁻¹]_qq, so their weights cost nothing and go first. Memory: H, its inverse and factor
(3·cols² float64) plus W; callers bound cols (``max_columns``).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from onnxprune.defaults import OBS_DAMP
from onnxprune.sparsity.patterns import lowest_mask, nm_mask

#: Default ridge of the OBS Hessian, relative to mean(diag H) (see :func:`inverse_cholesky`).
DEFAULT_DAMP = OBS_DAMP


def output_energy(matrix: np.ndarray, h: np.ndarray) -> float:
    """tr(M H Mᵀ) = Σ_rows m H mᵀ: the summed squared output of rows M on inputs with second
    moment H (one BLAS product; a three-operand einsum loops in C without BLAS, ~50× slower)."""
    return float(np.sum((matrix @ h) * matrix))


def inverse_cholesky(h: np.ndarray, damp: float) -> np.ndarray:
    """Upper Cholesky factor U of (H + damp·mean(diag H)·I)⁻¹, i.e. (H + λI)⁻¹ = UᵀU."""
    diag = np.diag(h)
    scale = float(diag.mean()) if diag.size and diag.mean() > 0 else 1.0
    damped = h + damp * scale * np.eye(h.shape[0])
    inverse = scipy.linalg.cho_solve(scipy.linalg.cho_factor(damped, lower=True), np.eye(len(h)))
    return scipy.linalg.cholesky(inverse, lower=False)


def sparsegpt(
    w: np.ndarray,
    h: np.ndarray,
    *,
    count: int | None = None,
    nm: tuple[int, int] | None = None,
    mask: np.ndarray | None = None,
    block: int = 128,
    damp: float = 0.01,
    factor: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Remove weights of ``w`` (rows, cols) and compensate with H (cols, cols).

    Exactly one of ``count`` (unstructured), ``nm`` (N:M, columns in group order) and ``mask``
    (fixed, True = removed) is given. ``factor``: :func:`inverse_cholesky` of (H, damp) when
    the caller already has it (several sweeps over one H). Returns (new weights, removal
    mask), float64.
    """
    if sum(x is not None for x in (count, nm, mask)) != 1:
        raise ValueError("give exactly one of count, nm, mask")
    w = np.array(w, dtype=np.float64)
    rows, cols = w.shape
    if nm is not None:
        block = max(nm[1], block - block % nm[1])
    u = factor if factor is not None else inverse_cholesky(np.asarray(h, dtype=np.float64), damp)
    removed = np.zeros((rows, cols), dtype=bool) if mask is None else np.asarray(mask, bool)
    for start in range(0, cols, block):
        stop = min(cols, start + block)
        w1 = w[:, start:stop].copy()
        u1 = u[start:stop, start:stop]
        d1 = np.diag(u1)
        errors = np.zeros_like(w1)
        if count is not None:
            share = round(count * stop / cols) - round(count * start / cols)
            removed[:, start:stop] = lowest_mask(w1**2 / d1**2, share)
        for i in range(stop - start):
            if nm is not None and i % nm[1] == 0:
                group = slice(i, i + nm[1])
                removed[:, start + i : start + i + nm[1]] = nm_mask(
                    w1[:, group] ** 2 / d1[group] ** 2, *nm
                )
            gone = removed[:, start + i]
            error = np.where(gone, w1[:, i], 0.0) / d1[i]
            w1[:, i:] -= np.outer(error, u1[i, i:])
            w1[gone, i] = 0.0
            errors[:, i] = error
        w[:, start:stop] = w1
        if stop < cols:
            w[:, stop:] -= errors @ u[start:stop, stop:]
    w[removed] = 0.0
    return w, removed
