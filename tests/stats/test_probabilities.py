"""Outputs read as probabilities when a model was exported with its softmax: every KL of the
package takes their logs instead of a second softmax."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.stats.probabilities import is_distribution, log_probability_pair


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_is_distribution_checks_range_sum_and_width():
    rng = np.random.default_rng(0)
    p = softmax(rng.standard_normal((4, 10)), 1)
    assert is_distribution(p, 1) and not is_distribution(p, 0)
    assert not is_distribution(p * 1.01, 1)  # sums off by 1 %
    assert not is_distribution(np.ones((3, 1)), 1)  # one class is no distribution
    assert not is_distribution(rng.standard_normal((4, 10)), 1)


def test_kl_of_exported_probabilities_is_the_kl_of_the_model_not_of_a_second_softmax():
    from onnxprune.evaluate.fidelity import kl_divergence as fidelity_kl
    from onnxprune.sensitivity.metrics import kl_divergence as drop_kl

    rng = np.random.default_rng(1)
    logits = 3.0 * rng.standard_normal((8, 1000))
    moved = logits + rng.standard_normal((8, 1000))
    p, q = softmax(logits, 1), softmax(moved, 1)
    expected = float(np.mean((p * (np.log(p) - np.log(q))).sum(axis=1)))
    assert drop_kl([p], [q]) == pytest.approx(expected, rel=1e-6)
    assert fidelity_kl(q, p) == pytest.approx(expected, rel=1e-4)
    # a second softmax over 1000 probabilities would be nearly uniform: a KL ~1000x smaller
    twice = float(np.mean((softmax(p, 1) * (np.log(softmax(p, 1)) - np.log(softmax(q, 1)))).sum(1)))
    assert twice < expected / 100
    log_p, log_q = log_probability_pair(logits, moved, 1)  # logits: log softmax of each
    assert np.allclose(np.exp(log_p), p) and np.allclose(np.exp(log_q), q)
