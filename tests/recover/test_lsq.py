"""The ridge solve of the least-squares refit: the penalty pulls toward the kept weights."""

from __future__ import annotations

import numpy as np

from onnxprune.recover.lsq import NormalEquations, solve_ridge


def normal_equations(x_kept: np.ndarray, y: np.ndarray) -> NormalEquations:
    normal = NormalEquations.empty(x_kept.shape[1], y.shape[1])
    normal.add(x_kept, y)
    return normal


def test_few_rows_stay_near_the_kept_weights_instead_of_shrinking():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 12))  # outputs x columns; columns 10, 11 removed
    x = rng.standard_normal((3, 12))  # far fewer rows than unknowns
    y = x @ weight.T
    normal = normal_equations(x[:, :10], y)
    prior = np.vstack([weight[:, :10].T, np.zeros((1, 4))])
    toward_kept = solve_ridge(normal, 1.0, prior)
    toward_zero = solve_ridge(normal, 1.0)
    kept = weight[:, :10].T
    assert np.linalg.norm(toward_kept[:-1] - kept) < 0.5 * np.linalg.norm(toward_zero[:-1] - kept)
    # and it still fits the calibration rows better than the unrefitted pruned weights
    fitted = x[:, :10] @ toward_kept[:-1] + toward_kept[-1]
    unrefitted = x[:, :10] @ kept
    assert np.linalg.norm(fitted - y) < np.linalg.norm(unrefitted - y)


def test_with_enough_rows_the_prior_does_not_matter():
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((3, 6))
    x = rng.standard_normal((500, 6))
    x[:, 5] = 2 * x[:, 0] - x[:, 1]  # the removed column is a combination of kept ones
    normal = normal_equations(x[:, :5], x @ weight.T)
    prior = np.vstack([weight[:, :5].T, np.zeros((1, 3))])
    theta = solve_ridge(normal, 1e-9, prior)
    np.testing.assert_allclose(x[:, :5] @ theta[:-1] + theta[-1], x @ weight.T, atol=1e-5)
