"""OBS criterion: Schur-complement oracle, dead channels rank lowest, data required."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.importance import score_clusters
from onnxprune.importance.obs import damped_inverse, obs_deltas
from tests.calibrate.tiny import analysed, conv_chain, gemm_chain, source_clusters


def _schur_delta(w, h, block):
    """Error increase of removing columns ``block`` and refitting the rest: W_S (H/H_KK) W_Sᵀ."""
    kept = np.setdiff1d(np.arange(h.shape[0]), block)
    schur = h[np.ix_(block, block)] - h[np.ix_(block, kept)] @ np.linalg.solve(
        h[np.ix_(kept, kept)], h[np.ix_(kept, block)]
    )
    w_s = w[:, block]
    return np.trace(w_s @ schur @ w_s.T)


def test_obs_deltas_equal_schur_complement_oracle():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6))
    h = x.T @ x / 50
    w = rng.normal(size=(4, 6))
    blocks = [np.array([0]), np.array([2, 3]), np.array([5]), np.array([1, 4])]
    deltas = obs_deltas(w, damped_inverse(h, 0.0), blocks)
    expected = [_schur_delta(w, h, b) for b in blocks]
    np.testing.assert_allclose(deltas, expected, rtol=1e-8)


def test_gemm_obs_score_equals_oracle_with_damping():
    rng = np.random.default_rng(1)
    w1, b1, w2 = rng.normal(size=(5, 4)), rng.normal(size=5), rng.normal(size=(5, 3))
    analysis = analysed(gemm_chain(w1, b1, w2), {"x": [1, 4]})
    x = rng.normal(size=(40, 4)).astype(np.float32)
    scores = score_clusters(analysis, "obs", calibration={"x": x}, normalize=False, damp=0.1)
    h = x.astype(np.float64) @ w1.T + b1
    gram = h.T @ h / 40
    damped = gram + 0.1 * np.mean(np.diag(gram)) * np.eye(5)
    expected = [_schur_delta(w2.T, damped, np.array([c])) for c in range(5)]
    np.testing.assert_allclose(scores[source_clusters(analysis, "a")], expected, rtol=1e-4)


def test_obs_ranks_an_all_zero_channel_lowest():
    rng = np.random.default_rng(2)
    w1, b1 = rng.normal(size=(6, 2, 3, 3)), rng.normal(size=6)
    w1[4], b1[4] = 0.0, -1.0  # channel 4 is zero everywhere after ReLU
    w2 = rng.normal(size=(3, 6, 3, 3))
    w2[:, 4] *= 50
    analysis = analysed(conv_chain(w1, b1, w2), {"x": [1, 2, 8, 8]})
    x = rng.normal(size=(8, 2, 8, 8)).astype(np.float32)
    scores = score_clusters(analysis, "obs", calibration={"x": x})[source_clusters(analysis, "a")]
    assert np.argmin(scores) == 4
    assert scores[4] == 0.0 < np.sort(scores)[1]


def test_obs_without_calibration_is_an_input_error():
    rng = np.random.default_rng(3)
    analysis = analysed(
        gemm_chain(rng.normal(size=(5, 4)), rng.normal(size=5), rng.normal(size=(5, 3))),
        {"x": [1, 4]},
    )
    with pytest.raises(InputError, match="obs"):
        score_clusters(analysis, "obs")


def test_layers_wider_than_max_columns_use_a_diagonal_hessian():
    rng = np.random.default_rng(5)
    w1, b1, w2 = rng.normal(size=(5, 4)), rng.normal(size=5), rng.normal(size=(5, 3))
    analysis = analysed(gemm_chain(w1, b1, w2), {"x": [1, 4]})
    x = rng.normal(size=(30, 4)).astype(np.float32)
    scores = score_clusters(analysis, "obs", calibration={"x": x}, normalize=False, max_columns=4)
    h = x.astype(np.float64) @ w1.T + b1
    expected = (h**2).mean(axis=0) * (w2**2).sum(axis=1)
    np.testing.assert_allclose(scores[source_clusters(analysis, "a")], expected, rtol=1e-4)
