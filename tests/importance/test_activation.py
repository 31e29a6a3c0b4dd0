"""Activation criteria against hand-computed statistics of a tiny conv chain."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.importance import score_clusters
from onnxprune.importance.aggregate import aggregate_members
from tests.calibrate.test_collect import _relu_conv
from tests.calibrate.tiny import analysed, conv_chain, source_clusters


@pytest.fixture(scope="module")
def chain():
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(5, 2, 3, 3))
    b1 = rng.normal(size=5)
    w1[3], b1[3] = 0.0, -2.0  # channel 3 is always zero after ReLU
    w2 = rng.normal(size=(3, 5, 3, 3))
    w2[:, 3] *= 100  # large weights on the dead channel: norms would keep it
    model = conv_chain(w1, b1, w2)
    analysis = analysed(model, {"x": [1, 2, 8, 8]})
    x = rng.normal(size=(6, 2, 8, 8)).astype(np.float32)
    h = _relu_conv(x.astype(np.float64), w1, b1)
    return analysis, {"x": x}, h, w2


def test_activation_is_weight_column_norm_times_activation_rms(chain):
    analysis, data, h, w2 = chain
    scores = score_clusters(analysis, "activation", calibration=data)
    clusters = source_clusters(analysis, "a")
    expected = np.abs(w2).sum(axis=(0, 2, 3)) * np.sqrt((h**2).mean(axis=(0, 2, 3)))
    expected /= expected.mean()
    np.testing.assert_allclose(scores[clusters], expected, rtol=1e-4, atol=1e-8)
    assert np.argmin(scores[clusters]) == 3
    assert np.argmax(score_clusters(analysis, "l1")[clusters]) == 3


def test_mean_activation_and_apoz(chain):
    analysis, data, h, _ = chain
    clusters = source_clusters(analysis, "a")
    mean_abs = np.abs(h).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(
        score_clusters(analysis, "mean_activation", calibration=data)[clusters],
        mean_abs / mean_abs.mean(),
        rtol=1e-4,
    )
    nonzero = (h != 0).mean(axis=(0, 2, 3))
    apoz = score_clusters(analysis, "apoz", calibration=data, normalize=False)[clusters]
    np.testing.assert_allclose(apoz, nonzero, atol=0.02)
    assert apoz[3] == 0.0


@pytest.mark.parametrize("name", ["activation", "mean_activation", "apoz"])
def test_without_calibration_data_is_an_input_error(chain, name):
    with pytest.raises(InputError, match="calibration"):
        score_clusters(chain[0], name)


def test_aggregation_and_l1_fallback_for_clusters_without_consumer(chain):
    analysis = chain[0]
    n = analysis.n_clusters
    labels = np.array([0, 1, -1])  # atoms 0 and 1 only
    members = [(labels, np.array([1.0, 3.0, 7.0])), (labels, np.array([2.0, 2.0, 0.0]))]
    clusters = analysis.component_of[[0, 1]]
    summed = aggregate_members(analysis, members)
    np.testing.assert_allclose(summed[clusters], [0.5 + 1.0, 1.5 + 1.0])
    maxed = aggregate_members(analysis, members, aggregate="max", normalize=False)
    np.testing.assert_allclose(maxed[clusters], [2.0, 3.0])
    fallback = np.arange(1.0, n + 1)
    filled = aggregate_members(analysis, members, fallback=lambda: fallback)
    others = np.setdiff1d(np.arange(n), clusters)
    reference = summed[clusters].mean()
    np.testing.assert_allclose(
        filled[others], fallback[others] / fallback[others].mean() * reference
    )
    with pytest.raises(InputError):
        aggregate_members(analysis, members, aggregate="median")
