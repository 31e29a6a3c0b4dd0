"""The SparseGPT-style OBS sweep against brute-force least squares."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.sparsity.obs import output_energy, sparsegpt
from onnxprune.sparsity.patterns import holds_nm


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))  # correlated inputs
    w = rng.normal(size=(6, 16))
    return x, w, x.T @ x / len(x)


def _least_squares(w, h, removed, damp):
    """Per row: argmin (w − v)ᵀ(H + λI)(w − v) over v with v[removed] = 0."""
    damped = h + damp * np.mean(np.diag(h)) * np.eye(len(h))
    out = np.zeros_like(w)
    for r in range(len(w)):
        kept = np.flatnonzero(~removed[r])
        out[r, kept] = np.linalg.solve(damped[np.ix_(kept, kept)], damped[kept] @ w[r])
    return out


@pytest.mark.parametrize("block", [3, 16])
def test_removing_the_first_columns_equals_least_squares(layer, block):
    _, w, h = layer
    mask = np.zeros_like(w, dtype=bool)
    mask[:, :5] = True
    mask[2, 5] = True
    new, removed = sparsegpt(w, h, mask=mask, block=block, damp=0.01)
    np.testing.assert_array_equal(removed, mask)
    np.testing.assert_allclose(new, _least_squares(w, h, mask, 0.01), rtol=1e-9, atol=1e-9)


def test_adaptive_sweep_beats_magnitude_and_is_bounded_by_least_squares(layer):
    x, w, h = layer
    new, removed = sparsegpt(w, h, count=w.size // 2, block=4, damp=1e-6)
    magnitude = np.abs(w) <= np.sort(np.abs(w).ravel())[w.size // 2 - 1]

    def error(v):
        return float(np.sum((x @ (w - v).T) ** 2))

    assert error(_least_squares(w, h, removed, 1e-6)) <= error(new) * (1 + 1e-9)
    assert error(new) < error(np.where(magnitude, 0.0, w))
    assert np.all(new[removed] == 0)


def test_unstructured_count_is_exact(layer):
    _, w, h = layer
    new, removed = sparsegpt(w, h, count=37, block=5)
    assert removed.sum() == 37 and np.count_nonzero(new == 0) == 37


def test_two_four_holds_in_every_group(layer):
    _, w, h = layer
    new, removed = sparsegpt(w, h, nm=(2, 4), block=8)
    assert holds_nm(new, 2, 4)
    assert removed.sum() == w.size // 2


def test_upstream_target_maps_the_changed_input_back_to_the_original_output(layer):
    from onnxprune.sparsity.calibration import LayerStats
    from onnxprune.sparsity.reconstruct import upstream_target

    x, w, _ = layer
    mix = np.eye(16) + 0.3 * np.random.default_rng(2).normal(size=(16, 16))
    changed = x @ mix  # the sparsified upstream feeds a linear mix of the original input
    stats = LayerStats(len(x), np.zeros((1, 16)), changed.T @ changed, changed.T @ x)
    target = upstream_target(w, stats, damp=1e-9)
    np.testing.assert_allclose(changed @ target.T, x @ w.T, rtol=1e-5, atol=1e-5)
    same = LayerStats(len(x), np.zeros((1, 16)), x.T @ x, x.T @ x)
    np.testing.assert_allclose(upstream_target(w, same, damp=0.01), w, atol=1e-9)


def test_output_energy_is_the_summed_squared_output_of_the_rows():
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((7, 11))
    inputs = rng.standard_normal((50, 11))
    h = inputs.T @ inputs / len(inputs)
    expected = float(np.sum((inputs @ matrix.T) ** 2)) / len(inputs)
    assert output_energy(matrix, h) == pytest.approx(expected, rel=1e-12)
