"""hoist_split_constants: an element-wise op with a constant over the axes a Reshape split from
the last axis moves before the Reshape (one value per unit of the layer), each reader on its own;
outputs are unchanged, and the dense layer's units become prunable."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from onnxprune.analysis import analyze
from onnxprune.passes import DEFAULT_PASSES, preprocess
from onnxprune.passes.hoist_split_constants import flat_constant
from tests.oracle import prove_random_removals
from tests.passes.helpers import const, model, op_types, run

TOKENS, HEADS, HEAD_DIM, DIM = 3, 2, 4, 6
RNG = np.random.default_rng(0)


def _heads_model(first: np.ndarray, second: np.ndarray, second_op: str = "Mul"):
    """x [N, T, D] · W -> Reshape [0, 0, n, d] read by Add(first) and `second_op`(second),
    each followed by a Reshape back and a projection to the output."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["p"], name="proj"),
        helper.make_node("Reshape", ["p", "split"], ["heads"], name="to_heads"),
        helper.make_node("Add", ["heads", "c1"], ["a"], name="bias_a"),
        helper.make_node(second_op, ["c2", "heads"], ["b"], name="bias_b"),
        helper.make_node("Add", ["a", "b"], ["s"], name="sum"),
        helper.make_node("Reshape", ["s", "merge"], ["m"], name="merge"),
        helper.make_node("MatMul", ["m", "o"], ["y"], name="out"),
    ]
    inits = [
        const("w", RNG.standard_normal((DIM, HEADS * HEAD_DIM))),
        const("split", np.array([0, 0, HEADS, HEAD_DIM], np.int64)),
        const("merge", np.array([0, 0, HEADS * HEAD_DIM], np.int64)),
        const("o", RNG.standard_normal((HEADS * HEAD_DIM, DIM))),
        const("c1", first),
        const("c2", second),
    ]
    return model(nodes, [("x", ["N", TOKENS, DIM])], [("y", ["N", TOKENS, DIM])], inits)


@pytest.mark.parametrize("second_op", ["Mul", "Sub", "Div"])
def test_both_readers_move_and_the_units_become_prunable(second_op):
    proto = _heads_model(
        RNG.standard_normal((HEADS, HEAD_DIM)),
        RNG.uniform(0.5, 1.5, (1, 1, HEADS, HEAD_DIM)),
        second_op,
    )
    feeds = {"x": RNG.standard_normal((2, TOKENS, DIM)).astype(np.float32)}
    without = tuple(p for p in DEFAULT_PASSES if p != "hoist_split_constants")
    before = analyze(preprocess(proto, passes=without).model)
    assert not any(g.prunable for g in before.groups if g.sources == ["proj"])
    result = preprocess(proto)
    assert any("moved 2 element-wise" in note for note in result.notes)
    np.testing.assert_allclose(run(result.model, feeds)[0], run(proto, feeds)[0], rtol=1e-5)
    after = analyze(result.model)
    assert [g.prunable for g in after.groups if g.sources == ["proj"]] == [True]
    assert prove_random_removals(after, seeds=2) == "ok"


def test_a_constant_along_another_axis_stays_after_the_split():
    proto = _heads_model(RNG.standard_normal((TOKENS, 1, 1)), RNG.standard_normal((HEADS, 1)))
    result = preprocess(proto)
    assert not any("hoist_split_constants" in note for note in result.notes)
    assert op_types(result.model).count("Reshape") == 2


def test_flat_constant_follows_row_major_order():
    c = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(flat_constant(c, ["N", 6], ["N", 1, 2, 3]), np.arange(6))
    # broadcast along the second split axis: one value per (head, position) pair
    np.testing.assert_array_equal(
        flat_constant(np.array([[1.0], [2.0]]), ["N", "T", 6], ["N", "T", 2, 3]),
        [1, 1, 1, 2, 2, 2],
    )
    assert flat_constant(c, ["N", 5], ["N", 2, 3]) is None  # not a split of the last axis
    assert flat_constant(c, ["N", 6], ["N", "h", 3]) is None  # a split axis of unknown size
    assert flat_constant(np.ones((4, 1, 1)), ["N", 6], ["N", 4, 2, 3]) is None  # tokens vary
