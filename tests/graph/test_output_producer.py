"""The op behind a graph output, through ops that only move values."""

from __future__ import annotations

import numpy as np
from onnx import helper

from onnxprune.graph.output_producer import (
    is_embedding_head,
    linear_head_width,
    output_producer,
)
from tests.oracle import const, make_model, tensor, weights


def _head(last: str) -> object:
    """x (N, 6) -> Gemm (8) -> [BatchNormalization | Relu] -> Flatten -> Identity -> y (N, 8)."""
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1)]
    inits = [weights("w", (8, 6), 0), weights("b", (8,), 1)]
    if last == "BatchNormalization":
        nodes.append(
            helper.make_node("BatchNormalization", ["h", "s", "o", "m", "v"], ["n"], name="bn")
        )
        inits += [const(n, np.full(8, 0.5, np.float32)) for n in ("s", "o", "m", "v")]
    else:
        nodes.append(helper.make_node(last, ["h"], ["n"], name="last"))
    nodes += [
        helper.make_node("Flatten", ["n"], ["f"], name="flat"),
        helper.make_node("Identity", ["f"], ["y"], name="id"),
    ]
    return make_model(nodes, [tensor("x", ["N", 6])], [tensor("y", ["N", 8])], inits)


def test_producer_is_found_through_moves():
    assert output_producer(_head("BatchNormalization"), "y") == "BatchNormalization"
    assert output_producer(_head("Relu"), "y") == "Relu"
    assert output_producer(_head("Relu"), "x") is None


def test_feature_normalizations_mark_embeddings():
    assert is_embedding_head(_head("BatchNormalization"), "y")
    assert is_embedding_head(_head("LpNormalization"), "y")
    assert not is_embedding_head(_head("Relu"), "y")


def _sequence_head(layer: str, perm: list[int] | None = None, bias: str = "const") -> object:
    """x (T·N, 16) -> [Gemm transB | MatMul + Add] (12) -> Reshape [T, N, 12] [-> Transpose]."""
    inits = [const("shape", np.array([5, 2, 12], np.int64))]
    if layer == "Gemm":
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1)]
        inits += [weights("w", (12, 16), 0), weights("b", (12,), 1)]
    else:
        nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="fc")]
        inits.append(weights("w", (16, 12), 0))
        if bias == "const":
            inits.append(weights("b", (12,), 1))
            nodes.append(helper.make_node("Add", ["m", "b"], ["h"], name="bias"))
        else:  # the "bias" is a run-time tensor: not a linear layer's output any more
            nodes.append(helper.make_node("Add", ["m", "m"], ["h"], name="twice"))
    nodes.append(helper.make_node("Reshape", ["h", "shape"], ["r"], name="to_tnc"))
    out_shape = [5, 2, 12]
    if perm is not None:
        nodes.append(helper.make_node("Transpose", ["r"], ["y"], name="t", perm=perm))
        out_shape = [out_shape[p] for p in perm]
    else:
        nodes.append(helper.make_node("Identity", ["r"], ["y"], name="id"))
    return make_model(nodes, [tensor("x", [10, 16])], [tensor("y", out_shape)], inits)


def test_a_linear_layer_behind_an_output_gives_its_width():
    assert linear_head_width(_sequence_head("Gemm"), "y") == 12  # transB: W is [out, in]
    assert linear_head_width(_sequence_head("MatMul"), "y") == 12
    assert linear_head_width(_sequence_head("MatMul", perm=[1, 0, 2]), "y") == 12


def test_no_width_when_the_last_axis_moves_or_the_layer_is_not_linear():
    assert linear_head_width(_sequence_head("MatMul", perm=[0, 2, 1]), "y") is None
    assert linear_head_width(_sequence_head("MatMul", bias="runtime"), "y") is None
    assert linear_head_width(_head("Relu"), "y") is None
    assert linear_head_width(_head("Relu"), "x") is None
