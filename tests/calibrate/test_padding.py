"""Padding tokens are left out of calibration rows (mask input, positions, Gram, lsq)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from onnxprune.calibrate import collect_statistics
from onnxprune.calibrate.im2col import sample_positions
from onnxprune.calibrate.padding import real_positions
from onnxprune.calibrate.session import ExposedRunner
from onnxprune.graph.mask_input import mask_input
from tests.calibrate.tiny import analysed

TOKENS, FEATURES, HIDDEN = 5, 4, 6


def token_model(w1: np.ndarray, w2: np.ndarray, mask_type=TensorProto.INT64) -> onnx.ModelProto:
    """x [n, 5, 4] -> MatMul a -> Relu -> MatMul b -> times the attention mask -> y [n, 5, 3]."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="a"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["z"], name="b"),
        helper.make_node("Cast", ["attention_mask"], ["m"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axis"], ["m3"], name="unsqueeze"),
        helper.make_node("Mul", ["z", "m3"], ["y"], name="masked"),
    ]
    graph = helper.make_graph(
        nodes,
        "tokens",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", TOKENS, FEATURES]),
            helper.make_tensor_value_info("attention_mask", mask_type, ["n", TOKENS]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", TOKENS, 3])],
        [
            numpy_helper.from_array(w1.astype(np.float32), "w1"),
            numpy_helper.from_array(w2.astype(np.float32), "w2"),
            numpy_helper.from_array(np.array([-1], np.int64), "axis"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_mask_input_is_the_one_integer_rank_two_mask() -> None:
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(FEATURES, HIDDEN)), rng.normal(size=(HIDDEN, 3))
    assert mask_input(token_model(w1, w2)) == "attention_mask"
    assert mask_input(token_model(w1, w2, TensorProto.FLOAT)) is None
    image = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        )
    )
    assert mask_input(image) is None


def test_real_positions_only_for_one_row_per_token() -> None:
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(real_positions(mask, 3), mask.astype(bool))
    assert real_positions(mask, 6) is None  # e.g. heads x tokens rows: every row counts
    assert real_positions(None, 3) is None


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 9),
    st.one_of(st.none(), st.integers(1, 12)),
    st.integers(0, 10_000),
)
def test_sample_positions_keep_to_real_tokens_with_equal_weight(n, count, positions, seed):
    rng = np.random.default_rng(seed)
    valid = rng.random((n, count)) < 0.5
    chosen = sample_positions(n, count, positions, rng, valid)
    per_sample = count if positions is None else min(positions, count)
    assert chosen.shape == (n, per_sample)
    for sample in range(n):
        allowed = np.flatnonzero(valid[sample]) if valid[sample].any() else np.arange(count)
        assert set(chosen[sample]) <= set(allowed)
        uses = np.bincount(chosen[sample], minlength=count)[allowed]
        if per_sample >= len(allowed):
            assert uses.min() >= per_sample // len(allowed)  # each real token, evenly repeated
            assert uses.max() - uses.min() <= 1
        else:
            assert uses.max() == 1  # without replacement


def test_exposed_runner_returns_a_requested_graph_input() -> None:
    rng = np.random.default_rng(1)
    model = token_model(rng.normal(size=(FEATURES, HIDDEN)), rng.normal(size=(HIDDEN, 3)))
    batch = {
        "x": rng.normal(size=(2, TOKENS, FEATURES)).astype(np.float32),
        "attention_mask": np.ones((2, TOKENS), np.int64),
    }
    values = ExposedRunner(model, ["r", "attention_mask"], {"r": TensorProto.FLOAT})(batch)
    assert values["attention_mask"] is batch["attention_mask"]
    assert values["r"].shape == (2, TOKENS, HIDDEN)


def test_gram_matrices_leave_padding_rows_out() -> None:
    rng = np.random.default_rng(2)
    w1, w2 = rng.normal(size=(FEATURES, HIDDEN)), rng.normal(size=(HIDDEN, 3))
    analysis = analysed(
        token_model(w1, w2), {"x": [1, TOKENS, FEATURES], "attention_mask": [1, TOKENS]}
    )
    x = rng.normal(size=(6, TOKENS, FEATURES)).astype(np.float32)
    mask = np.zeros((6, TOKENS), np.int64)
    mask[:3] = 1  # three full sentences
    mask[3:, 0] = 1  # three one-token sentences: their token stands for all five rows
    stats = collect_statistics(
        analysis, {"x": x, "attention_mask": mask}, batch_size=4, positions=None
    )
    hidden = np.maximum(x.astype(np.float64) @ w1, 0)
    rows = [hidden[n] for n in range(3)] + [np.repeat(hidden[n, :1], TOKENS, 0) for n in (3, 4, 5)]
    rows = np.concatenate(rows)
    assert stats.grams["b"].rows == 6 * TOKENS
    np.testing.assert_allclose(stats.hessian("b"), rows.T @ rows / len(rows), rtol=1e-4, atol=1e-6)
    everything = hidden.reshape(-1, HIDDEN)
    with pytest.raises(AssertionError):  # not the Gram of every row, padding included
        np.testing.assert_allclose(
            stats.hessian("b"), everything.T @ everything / len(everything), rtol=1e-3
        )


@pytest.mark.parametrize("method", ["lsq", "reconstruct"])
def test_refits_ignore_what_padding_positions_hold(method) -> None:
    """Two data sets equal at real tokens and different at padding give the same refit."""
    from onnxprune.recover import make_recovery
    from onnxprune.rewrite import apply_removal
    from tests.calibrate.tiny import source_clusters

    rng = np.random.default_rng(3)
    w1, w2 = rng.normal(size=(FEATURES, HIDDEN)), rng.normal(size=(HIDDEN, 3))
    shapes = {"x": [1, TOKENS, FEATURES], "attention_mask": [1, TOKENS]}
    analysis = analysed(token_model(w1, w2), shapes)
    clusters = source_clusters(analysis, "a")
    removed = {int(clusters[1]), int(clusters[4])}
    pruned = apply_removal(analysis, removed)
    x = rng.normal(size=(40, TOKENS, FEATURES)).astype(np.float32)
    mask = (np.arange(TOKENS)[None, :] < rng.integers(1, TOKENS + 1, size=(40, 1))).astype(np.int64)
    other = x.copy()
    other[mask == 0] = 50 * rng.normal(size=other[mask == 0].shape)
    refits = []
    for data in (x, other):
        recover = make_recovery(method, analysis, {"x": data, "attention_mask": mask})
        model = recover(analysis, removed, pruned)
        refits.append(_weight_of(model, "b"))
    np.testing.assert_allclose(refits[1], refits[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(refits[0], _weight_of(pruned, "b"))  # the refit did change it


def _weight_of(model: onnx.ModelProto, node_name: str) -> np.ndarray:
    node = next(n for n in model.graph.node if n.name == node_name)
    init = next(i for i in model.graph.initializer if i.name == node.input[1])
    return numpy_helper.to_array(init)
