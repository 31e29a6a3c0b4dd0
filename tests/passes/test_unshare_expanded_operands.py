"""unshare_expanded_operands: a run-time broadcast (Expand of a computed tensor, then layout ops)
read by several nodes gets one copy per reader, so the channel analysis can shrink each copy
with the heads of its own reader; Expands of constants and private broadcasts are left alone."""

from __future__ import annotations

import numpy as np
from onnx import helper

from onnxprune.analysis import analyze
from tests.oracle import prove_random_removals
from tests.passes.helpers import check_preprocess, const, model

RNG = np.random.default_rng(0)
HEADS, TOKENS, DIM = 2, 3, 4


def _two_layers_sharing_a_mask(expand_constant: bool = False):
    """Two attention-score stand-ins [N, H, T, T] (x @ Wq_i reshaped to heads, times itself
    transposed) each plus one mask: m [N, T] -> Reshape [N, 1, 1, T] -> Expand [N, H, 1, T]
    -> Reshape [N·H, 1, T] -> Reshape [N, H, 1, T], computed once (the dynamo export)."""
    mask_source = "mask_const" if expand_constant else "m4"
    nodes = [
        helper.make_node("Reshape", ["m", "m_shape"], ["m4"], name="mask_view"),
        helper.make_node("Expand", [mask_source, "heads_shape"], ["me"], name="mask_expand"),
        helper.make_node("Reshape", ["me", "flat_shape"], ["mf"], name="mask_flat"),
        helper.make_node("Reshape", ["mf", "back_shape"], ["mask"], name="mask_heads"),
    ]
    for layer in (0, 1):
        p = f"l{layer}_"
        nodes += [
            helper.make_node("MatMul", ["x", f"{p}w"], [f"{p}q"], name=f"{p}proj"),
            helper.make_node("Reshape", [f"{p}q", "split_shape"], [f"{p}qh"], name=f"{p}split"),
            helper.make_node("Transpose", [f"{p}qh"], [f"{p}qt"], name=f"{p}qt", perm=[0, 2, 1, 3]),
            helper.make_node("Transpose", [f"{p}qt"], [f"{p}kt"], name=f"{p}kt", perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", [f"{p}qt", f"{p}kt"], [f"{p}s"], name=f"{p}scores"),
            helper.make_node("Add", [f"{p}s", "mask"], [f"{p}sm"], name=f"{p}masked"),
            helper.make_node("Softmax", [f"{p}sm"], [f"{p}a"], name=f"{p}softmax", axis=-1),
            helper.make_node("MatMul", [f"{p}a", f"{p}qt"], [f"{p}c"], name=f"{p}context"),
            helper.make_node("Transpose", [f"{p}c"], [f"{p}ct"], name=f"{p}ct", perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", [f"{p}ct", "merge_shape"], [f"{p}m"], name=f"{p}merge"),
            helper.make_node("MatMul", [f"{p}m", f"{p}o"], [f"y{layer}"], name=f"{p}out"),
        ]
    inits = [
        const("m_shape", np.array([0, 1, 1, TOKENS], np.int64)),
        const("heads_shape", np.array([1, HEADS, 1, 1], np.int64)),
        const("flat_shape", np.array([-1, 1, TOKENS], np.int64)),
        const("back_shape", np.array([-1, HEADS, 1, TOKENS], np.int64)),
        const("split_shape", np.array([0, TOKENS, HEADS, DIM], np.int64)),
        const("merge_shape", np.array([0, TOKENS, HEADS * DIM], np.int64)),
        const("mask_const", RNG.standard_normal((1, 1, 1, TOKENS))),
        *(const(f"l{i}_w", RNG.standard_normal((DIM, HEADS * DIM))) for i in (0, 1)),
        *(const(f"l{i}_o", RNG.standard_normal((HEADS * DIM, DIM))) for i in (0, 1)),
    ]
    return model(
        nodes,
        [("x", ["N", TOKENS, DIM]), ("m", ["N", TOKENS])],
        [("y0", ["N", TOKENS, DIM]), ("y1", ["N", TOKENS, DIM])],
        inits,
    )


SHAPES = {"x": [2, TOKENS, DIM], "m": [2, TOKENS]}


def test_a_shared_mask_broadcast_is_copied_per_reader_and_frees_both_layers_heads():
    proto = _two_layers_sharing_a_mask()
    shared = check_preprocess(proto, SHAPES, passes=("cleanup",)).model
    blocked = analyze(shared, SHAPES)
    assert not any(g.prunable for g in blocked.groups if g.sources[0].endswith("proj"))
    result = check_preprocess(proto, SHAPES, exact=True)
    assert result.applied["unshare_expanded_operands"] is True
    expands = [n for n in result.model.graph.node if n.op_type == "Expand"]
    assert len(expands) == 2  # one copy of the Expand and its two Reshapes for layer 1
    assert sum(n.op_type == "Reshape" for n in result.model.graph.node) == 3 + 2 + 4
    analysis = analyze(result.model, SHAPES)
    heads = [g for g in analysis.groups if g.sources[0].endswith("proj")]
    assert len(heads) == 2 and all(g.prunable and g.size == HEADS for g in heads)
    assert prove_random_removals(analysis, seeds=2) == "ok"


def test_expands_of_constants_and_private_broadcasts_stay():
    result = check_preprocess(_two_layers_sharing_a_mask(expand_constant=True), SHAPES, exact=True)
    assert result.applied["unshare_expanded_operands"] is False
