"""Grouped ridge solves against brute force (numpy lstsq) and the never-worse guard."""

from __future__ import annotations

import numpy as np

from onnxprune.recover.grouped import (
    GroupedNormal,
    correct_statistics,
    cross_validated_ridge,
    keep_better,
    solve_grouped,
)


def _problem(seed: int, groups: int = 3, columns: int = 4, outputs: int = 2, rows: int = 50):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, groups * columns))
    y = rng.standard_normal((rows, groups * outputs))
    prior = rng.standard_normal((groups, columns + 1, outputs))
    normal = GroupedNormal.empty(groups, columns, outputs)
    normal.add(x[:20], y[:20])  # streamed in two chunks
    normal.add(x[20:], y[20:])
    return x, y, prior, normal


def _brute_force(x, y, prior, ridge, groups, columns, outputs):
    """Per group: lstsq of [X_g, 1] θ ≈ Y_g stacked with √λ (θ_w − θ₀_w) ≈ 0 (intercept free)."""
    solutions = []
    for g in range(groups):
        xg = np.hstack([x[:, g * columns : (g + 1) * columns], np.ones((len(x), 1))])
        yg = y[:, g * outputs : (g + 1) * outputs]
        lam = ridge * np.trace(xg[:, :columns].T @ xg[:, :columns]) / columns
        penalty = np.sqrt(lam) * np.hstack([np.eye(columns), np.zeros((columns, 1))])
        a = np.vstack([xg, penalty])
        b = np.vstack([yg, penalty @ prior[g]])
        solutions.append(np.linalg.lstsq(a, b, rcond=None)[0])
    return np.stack(solutions)


def test_grouped_solve_equals_brute_force_least_squares():
    x, y, prior, normal = _problem(0)
    for ridge in (0.0, 0.05, 1.0):
        theta = solve_grouped(normal, ridge, prior)
        np.testing.assert_allclose(theta, _brute_force(x, y, prior, ridge, 3, 4, 2), atol=1e-8)


def test_errors_equal_the_squared_residuals():
    x, y, prior, normal = _problem(1)
    for g in range(3):
        xg = np.hstack([x[:, g * 4 : (g + 1) * 4], np.ones((len(x), 1))])
        residual = y[:, g * 2 : (g + 1) * 2] - xg @ prior[g]
        np.testing.assert_allclose(normal.errors(prior)[g], (residual**2).sum(0), rtol=1e-9)


def test_refit_never_increases_the_calibration_error():
    for seed in range(5):
        _, _, prior, normal = _problem(seed, rows=8)  # few rows: the ridge matters
        for ridge in (1e-6, 1e-2, 10.0):
            theta = keep_better(normal, solve_grouped(normal, ridge, prior), prior)
            assert np.all(normal.errors(theta) <= normal.errors(prior) + 1e-9)


def test_keep_better_restores_the_prior_where_a_solution_is_worse():
    _, _, prior, normal = _problem(2)
    worse = prior.copy()
    worse[1, :, 0] += 100.0
    kept = keep_better(normal, worse, prior)
    np.testing.assert_array_equal(kept[1, :, 0], prior[1, :, 0])
    np.testing.assert_array_equal(kept[0], worse[0])


def _folds(x, y):
    folds = []
    for part in (slice(0, None, 2), slice(1, None, 2)):
        normal = GroupedNormal.empty(1, x.shape[1], y.shape[1])
        normal.add(x[part], y[part])
        folds.append(normal)
    return tuple(folds)


def test_cross_validation_keeps_a_correct_prior_against_noise_and_fits_clean_data():
    rng = np.random.default_rng(4)
    weight = rng.standard_normal((6, 2))
    prior = np.vstack([weight, np.zeros((1, 2))])[None]
    x = rng.standard_normal((10, 6))  # few rows, pure noise around the prior's output
    noisy = x @ weight + 3.0 * rng.standard_normal((10, 2))
    assert cross_validated_ridge(_folds(x, noisy), prior, (1e-3, 1e-1, 10.0)) in (None, 10.0)
    x = rng.standard_normal((400, 6))
    better = rng.standard_normal((6, 2))  # the data follow other weights exactly
    assert cross_validated_ridge(_folds(x, x @ better), prior, (1e-3, 1e-1, 10.0)) == 1e-3


def test_statistics_correction_matches_each_groups_target_mean_and_std():
    x, y, prior, normal = _problem(5, groups=2, columns=3, outputs=2, rows=200)
    theta = correct_statistics(normal, solve_grouped(normal, 10.0, prior))  # shrunk fit
    for g in range(2):
        xg = np.hstack([x[:, g * 3 : (g + 1) * 3], np.ones((200, 1))])
        fitted, target = xg @ theta[g], y[:, g * 2 : (g + 1) * 2]
        np.testing.assert_allclose(fitted.mean(0), target.mean(0), atol=1e-9)
        np.testing.assert_allclose(fitted.std(0), target.std(0), rtol=1e-9)
