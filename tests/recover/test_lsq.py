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


def test_fallback_chain_never_raises():
    """NaN sums (activations that overflowed) fall back to bias compensation, then the prior."""
    from onnxprune.recover.lsq import solve_with_fallback

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4))
    w = rng.standard_normal((3, 4))
    prior = np.vstack([w.T, np.zeros((1, 3))])
    normal = normal_equations(x, x @ w.T)
    theta, note = solve_with_fallback(normal, 1e-3, prior)
    assert note == "" and np.allclose(theta[:-1], w.T, atol=1e-2)

    normal.gram[0, 1] = np.nan  # the Gram matrix is broken, the means are not
    theta, note = solve_with_fallback(normal, 1e-3, prior)
    assert "bias compensation" in note and np.all(np.isfinite(theta))
    assert np.allclose(theta[:-1], prior[:-1])

    normal.sum_y[:] = np.inf
    theta, note = solve_with_fallback(normal, 1e-3, prior)
    assert "kept weights" in note and np.array_equal(theta, prior)


def test_failed_solve_retries_with_a_larger_ridge(monkeypatch):
    import onnxprune.recover.lsq as lsq

    calls = []
    real = lsq.solve_ridge

    def flaky(normal, ridge, prior=None):
        calls.append(ridge)
        if len(calls) == 1:
            raise np.linalg.LinAlgError("SVD did not converge")
        return real(normal, ridge, prior)

    monkeypatch.setattr(lsq, "solve_ridge", flaky)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 3))
    normal = normal_equations(x, x[:, :2])
    theta, note = lsq.solve_with_fallback(normal, 1e-3, np.zeros((4, 2)))
    assert calls == [1e-3, 1e-2] and "ridge 0.01" in note and np.all(np.isfinite(theta))
