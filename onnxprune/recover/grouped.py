"""Ridge normal equations of G independent groups at once (a depthwise conv: one per channel).

For group g with input rows X_g (columns ``[g·d, (g+1)·d)`` of the im2col row) and targets Y_g
(outputs ``[g·m, (g+1)·m)``), the sums G_g = X~_gᵀX~_g, C_g = X~_gᵀY_g (X~ = [X, 1]), ΣY, ΣY²
are accumulated in float64 and

    θ_g = (G_g + λ_g D)⁻¹ (C_g + λ_g D θ₀_g),   λ_g = ridge · tr(G_g,xx)/d,  D = diag(1,…,1,0)

solved for all groups at once (intercept unpenalized, θ₀ = the current weights and bias). The
calibration error of output j of a solution θ is

    e_j(θ) = θ_jᵀ G θ_j − 2 θ_jᵀ C_j + ΣY_j²,

and the refit objective e(θ) + λ‖θ − θ₀‖² is at most e(θ₀) at its minimum, so e(θ) ≤ e(θ₀):
a refit never increases a layer's calibration error. :func:`keep_better` enforces this against
round-off (any output whose error would grow keeps θ₀).

With few calibration images a refit can fit them and generalize worse; :func:`cross_validated_ridge`
picks λ from a grid by two-fold cross-validation over samples (and keeps θ₀ when no λ beats
it on held-out samples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxprune.recover.lsq import NormalEquations, match_statistics


@dataclass
class GroupedNormal:
    """Streaming sums of G groups: gram (G, d+1, d+1), cross (G, d+1, m), ΣY, ΣY² (G, m)."""

    gram: np.ndarray
    cross: np.ndarray
    sum_y: np.ndarray
    sum_yy: np.ndarray
    rows: int = 0

    @classmethod
    def empty(cls, groups: int, columns: int, outputs: int) -> GroupedNormal:
        return cls(
            np.zeros((groups, columns + 1, columns + 1)),
            np.zeros((groups, columns + 1, outputs)),
            np.zeros((groups, outputs)),
            np.zeros((groups, outputs)),
        )

    @property
    def groups(self) -> int:
        return self.gram.shape[0]

    def add(self, rows: np.ndarray, y: np.ndarray) -> None:
        """Add R rows: ``rows`` (R, G·d) and targets ``y`` (R, G·m), both in group order."""
        groups, width, outputs = self.groups, self.gram.shape[1] - 1, self.cross.shape[2]
        count = rows.shape[0]
        x = np.ones((groups, count, width + 1))
        x[:, :, :width] = rows.reshape(count, groups, width).transpose(1, 0, 2)
        t = y.reshape(count, groups, outputs).transpose(1, 0, 2)
        self.gram += np.matmul(x.transpose(0, 2, 1), x)
        self.cross += np.matmul(x.transpose(0, 2, 1), t)
        self.sum_y += t.sum(axis=1)
        self.sum_yy += np.square(t).sum(axis=1)
        self.rows += count

    def group(self, index: int) -> NormalEquations:
        """Group ``index`` as the single-group :class:`~onnxprune.recover.lsq.NormalEquations`."""
        return NormalEquations(
            self.gram[index], self.cross[index], self.sum_y[index], self.sum_yy[index], self.rows
        )

    def errors(self, theta: np.ndarray) -> np.ndarray:
        """e_j(θ) for every group and output (G, m); see module docstring."""
        quadratic = np.einsum("gim,gim->gm", theta, np.matmul(self.gram, theta))
        linear = np.einsum("gim,gim->gm", theta, self.cross)
        return quadratic - 2 * linear + self.sum_yy


def solve_grouped(normal: GroupedNormal, ridge: float, prior: np.ndarray) -> np.ndarray:
    """θ (G, d+1, m) of every group, ridge toward ``prior`` θ₀ (same shape)."""
    d = normal.gram.shape[1] - 1
    scale = np.trace(normal.gram[:, :d, :d], axis1=1, axis2=2) / max(d, 1)
    scale = np.where(scale > 0, scale, 1.0) * ridge
    penalty = np.ones((normal.groups, d + 1)) * scale[:, None]
    penalty[:, d] = 0.0
    system = normal.gram + penalty[:, :, None] * np.eye(d + 1)[None]
    rhs = normal.cross + penalty[:, :, None] * prior
    try:
        return np.linalg.solve(system, rhs)
    except np.linalg.LinAlgError:
        return np.stack(
            [np.linalg.lstsq(a, b, rcond=None)[0] for a, b in zip(system, rhs, strict=True)]
        )


def keep_better(normal: GroupedNormal, theta: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """θ with every output whose calibration error exceeds θ₀'s replaced by θ₀'s column."""
    worse = normal.errors(theta) > normal.errors(prior)
    if not worse.any():
        return theta
    chosen = theta.copy()
    groups, outputs = np.nonzero(worse)
    chosen[groups, :, outputs] = prior[groups, :, outputs]
    return chosen


def correct_statistics(normal: GroupedNormal, theta: np.ndarray) -> np.ndarray:
    """θ with each output's calibration mean/std matched to the target's (per group)."""
    return np.stack([match_statistics(theta[g], normal.group(g)) for g in range(normal.groups)])


def merged(first: GroupedNormal, second: GroupedNormal) -> GroupedNormal:
    """The sums of both (the normal equations of all their rows)."""
    return GroupedNormal(
        first.gram + second.gram,
        first.cross + second.cross,
        first.sum_y + second.sum_y,
        first.sum_yy + second.sum_yy,
        first.rows + second.rows,
    )


def cross_validated_ridge(
    folds: tuple[GroupedNormal, GroupedNormal], prior: np.ndarray, ridges: tuple[float, ...]
) -> float | None:
    """Two-fold cross-validation of the ridge: the λ of ``ridges`` minimising
    Σ_k e_{fold ≠ k}(θ_k(λ)) (θ_k solved on fold k, errors summed over groups and outputs), or
    None when keeping θ₀ has the smaller held-out error (the layer is then not refitted)."""
    first, second = folds
    held_out = {None: first.errors(prior).sum() + second.errors(prior).sum()}
    for ridge in ridges:
        held_out[ridge] = (
            second.errors(solve_grouped(first, ridge, prior)).sum()
            + first.errors(solve_grouped(second, ridge, prior)).sum()
        )
    return min(held_out, key=lambda key: (held_out[key], key is not None))
