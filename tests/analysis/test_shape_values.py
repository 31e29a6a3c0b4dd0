"""Partial evaluation of shape vectors, and the TorchScript class-token pattern it unblocks."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from onnxprune.analysis import analyze
from onnxprune.analysis.context import AnalysisContext
from onnxprune.analysis.graph_view import GraphView
from onnxprune.analysis.shape_values import shape_values
from onnxprune.passes import preprocess
from tests.oracle import assert_mask_equivalent, const, make_model, random_feeds, tensor, weights


def int_const(name: str, values) -> TensorProto:
    return const(name, np.asarray(values, dtype=np.int64))


def class_token_model() -> tuple:
    """Conv -> flatten(2) by Shape -> transpose -> Concat(Expand(cls), tokens) -> + pos -> MatMul.

    The Expand target is ``Where(Equal(s, -1), 1, s)`` with ``s = [N, -1, -1]`` (torch's
    ``cls.expand(N, -1, -1)``); N is a dynamic batch.
    """
    nodes = [
        helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["y"], name="conv", strides=[2, 2]),
        helper.make_node("Shape", ["y"], ["y_shape"], name="shape_y"),
        helper.make_node("Slice", ["y_shape", "zero", "two", "zero"], ["lead"], name="lead"),
        helper.make_node("Concat", ["lead", "minus_one"], ["flat_shape"], name="flat", axis=0),
        helper.make_node("Reshape", ["y", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("Transpose", ["flat"], ["tokens"], name="to_tokens", perm=[0, 2, 1]),
        helper.make_node("Shape", ["tokens"], ["t_shape"], name="shape_t"),
        helper.make_node("Gather", ["t_shape", "zero_scalar"], ["batch"], name="batch", axis=0),
        helper.make_node("Unsqueeze", ["batch", "zero"], ["batch1"], name="batch1"),
        helper.make_node(
            "Concat", ["batch1", "minus_one", "minus_one"], ["s"], name="expand_request", axis=0
        ),
        helper.make_node("Equal", ["s", "minus_ones"], ["is_keep"], name="is_keep"),
        helper.make_node(
            "ConstantOfShape",
            ["three"],
            ["ones"],
            name="ones",
            value=helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        ),
        helper.make_node("Where", ["is_keep", "ones", "s"], ["target"], name="target"),
        helper.make_node("Expand", ["cls", "target"], ["cls_all"], name="expand_cls"),
        helper.make_node("Concat", ["cls_all", "tokens"], ["seq"], name="prepend", axis=1),
        helper.make_node("Add", ["seq", "pos"], ["seq_pos"], name="add_pos"),
        helper.make_node("MatMul", ["seq_pos", "proj.w"], ["out"], name="proj"),
    ]
    inits = [
        weights("conv.w", (6, 3, 2, 2), 0),
        weights("conv.b", (6,), 1),
        weights("cls", (1, 1, 6), 2),
        weights("pos", (1, 5, 6), 3),
        weights("proj.w", (6, 3), 4),
        int_const("zero", [0]),
        int_const("two", [2]),
        int_const("minus_one", [-1]),
        int_const("minus_ones", [-1, -1, -1]),
        int_const("three", [3]),
        int_const("zero_scalar", 0),
    ]
    model = make_model(nodes, [tensor("x", ["N", 3, 4, 4])], [tensor("out", ["N", 5, 3])], inits)
    return model


def test_partial_values_of_the_expand_target():
    model = preprocess(class_token_model()).model
    ctx = AnalysisContext(GraphView(model))
    target = next(n for n in model.graph.node if n.op_type == "Expand").input[1]
    assert shape_values(ctx, target) == [None, 1, 1]


def test_unknown_ops_make_the_vector_unknown():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("NonZero", ["s"], ["nz"], name="nonzero"),
    ]
    model = make_model(
        nodes,
        [tensor("x", ["N", 3])],
        [helper.make_tensor_value_info("nz", TensorProto.INT64, None)],
        [],
    )
    ctx = AnalysisContext(GraphView(model))
    assert shape_values(ctx, "s") == [None, 3]
    assert shape_values(ctx, "nz") is None


def test_class_token_pattern_is_prunable_and_mask_equivalent():
    model = preprocess(class_token_model()).model
    analysis = analyze(model, {"x": [1, 3, 4, 4]})
    group = next(g for g in analysis.groups if "conv" in g.sources)
    assert not group.blocked.any(), group.reasons
    removed = {int(c) for c in group.clusters[[1, 4]]}
    feeds = random_feeds(analysis.model, batch=3)
    pruned = assert_mask_equivalent(analysis, removed, feeds)
    cls = next(i for i in pruned.graph.initializer if i.name == "cls")
    assert list(cls.dims) == [1, 1, 4]


def test_a_tensor_read_twice_per_level_is_evaluated_once_per_level():
    """Add(s, s) thirty levels deep: 2^30 evaluations without the memo (a hang)."""
    depth = 30
    nodes = [helper.make_node("Shape", ["x"], ["s0"], name="shape")]
    nodes += [
        helper.make_node("Add", [f"s{i}", f"s{i}"], [f"s{i + 1}"], name=f"add{i}")
        for i in range(depth)
    ]
    model = make_model(
        nodes,
        [tensor("x", ["N", 3])],
        [helper.make_tensor_value_info(f"s{depth}", TensorProto.INT64, None)],
        [],
    )
    ctx = AnalysisContext(GraphView(model))
    values = shape_values(ctx, f"s{depth}")
    assert values == [None, 3 * 2**depth]
    values[1] = -1  # callers may edit what they get without changing the memo
    assert shape_values(ctx, f"s{depth}") == [None, 3 * 2**depth]
