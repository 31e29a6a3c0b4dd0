"""Data-free criteria against hand-computed values."""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from onnxprune.analysis import analyze
from onnxprune.importance import score_clusters
from tests.analysis.test_rules import build, chain, conv, head


def _analysis():
    nodes, inits = chain(conv("c1", "x", "a", 3, 4), conv("c2", "a", "b", 4, 6, seed=1))
    h_nodes, h_inits = head("b", 6, 8)
    model = build(nodes + h_nodes, inits + h_inits)
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return analyze(model), weights


def test_l1_sums_producer_rows_and_consumer_columns_normalized_per_layer():
    analysis, w = _analysis()
    group = next(g for g in analysis.groups if g.sources == ["c1"])
    rows = np.abs(w["c1.w"].astype(np.float64)).reshape(4, -1).sum(axis=1)
    cols = np.abs(w["c2.w"].astype(np.float64)).transpose(1, 0, 2, 3).reshape(4, -1).sum(axis=1)
    expected = rows / rows.mean() + cols / cols.mean()
    scores = score_clusters(analysis, "l1")
    np.testing.assert_allclose(scores[group.clusters], expected, rtol=1e-9)


def test_l2_without_normalization_max_aggregate():
    analysis, w = _analysis()
    group = next(g for g in analysis.groups if g.sources == ["c1"])
    rows = np.sqrt((w["c1.w"].astype(np.float64) ** 2).reshape(4, -1).sum(axis=1))
    cols = np.sqrt(
        (w["c2.w"].astype(np.float64) ** 2).transpose(1, 0, 2, 3).reshape(4, -1).sum(axis=1)
    )
    scores = score_clusters(analysis, "l2", normalize=False, aggregate="max")
    np.testing.assert_allclose(scores[group.clusters], np.maximum(rows, cols), rtol=1e-9)


def test_bn_scale_reads_gamma_of_the_original_model():
    nodes, inits = chain(conv("c1", "x", "a", 3, 4))
    gamma = np.array([0.5, -3.0, 1.0, 0.1], dtype=np.float32)
    from tests.oracle import const

    nodes.append(
        helper.make_node("BatchNormalization", ["a", "g", "be", "mu", "var"], ["n"], name="bn")
    )
    inits += [
        const("g", gamma),
        const("be", np.zeros(4, np.float32)),
        const("mu", np.zeros(4, np.float32)),
        const("var", np.ones(4, np.float32)),
    ]
    h_nodes, h_inits = head("n", 4, 8)
    model = build(nodes + h_nodes, inits + h_inits)
    analysis = analyze(model)
    group = next(g for g in analysis.groups if g.sources == ["c1"])
    scores = score_clusters(analysis, "bn", original=model)
    np.testing.assert_allclose(scores[group.clusters], np.abs(gamma), rtol=1e-6)


def test_random_is_seeded_and_unknown_criterion_is_an_input_error():
    analysis, _ = _analysis()
    np.testing.assert_array_equal(
        score_clusters(analysis, "random", seed=3), score_clusters(analysis, "random", seed=3)
    )
    import pytest

    from onnxprune.errors import InputError

    with pytest.raises(InputError):
        score_clusters(analysis, "nope")
