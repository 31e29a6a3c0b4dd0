"""The op behind a graph output, through ops that only move values."""

from __future__ import annotations

import numpy as np
from onnx import helper

from onnxprune.graph.output_producer import is_embedding_head, output_producer
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
