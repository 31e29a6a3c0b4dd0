"""unshare_uniform_constants: an exporter's merged zero biases no longer couple unrelated
layers; genuinely shared weights and scalars stay shared."""

from __future__ import annotations

import numpy as np
from onnx import helper

from onnxprune.analysis import analyze
from tests.passes.helpers import check_preprocess, const, model

RNG = np.random.default_rng(0)


def _readers(proto, name: str) -> int:
    return sum(name in node.input for node in proto.graph.node)


def _two_mlps(shared_first_weight: bool = False):
    """x -> MatMul w1 -> Add zero -> Relu -> MatMul w2 -> Add zero -> Relu -> MatMul w3 -> y,
    the two hidden Adds reading one merged zero bias (torch.onnx deduplication)."""
    second = "w1" if shared_first_weight else "w2"
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
        helper.make_node("Add", ["h1", "zero"], ["b1"], name="bias1"),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", second], ["h2"], name="fc2"),
        helper.make_node("Add", ["h2", "zero"], ["b2"], name="bias2"),
        helper.make_node("Relu", ["b2"], ["r2"], name="relu2"),
        helper.make_node("MatMul", ["r2", "w3"], ["y"], name="fc3"),
    ]
    initializers = [
        const("w1", RNG.standard_normal((8, 8))),
        const("w2", RNG.standard_normal((8, 8))),
        const("w3", RNG.standard_normal((8, 3))),
        const("zero", np.zeros(8)),
    ]
    return model(nodes, [("x", ["N", 8])], [("y", ["N", 3])], initializers)


def test_a_merged_zero_bias_is_copied_per_reader_and_decouples_the_layers():
    proto = _two_mlps()
    shapes = {"x": [2, 8]}
    coupled = analyze(check_preprocess(proto, shapes, passes=("cleanup",)).model, shapes)
    assert sum(group.prunable for group in coupled.groups) == 1  # both hidden layers in one
    result = check_preprocess(proto, shapes, exact=True)
    assert result.applied["unshare_uniform_constants"] is True
    assert _readers(result.model, "zero") == 1
    analysis = analyze(result.model, shapes)
    assert sum(group.prunable for group in analysis.groups) == 2


def test_non_uniform_shared_weights_and_scalars_stay_shared():
    proto = _two_mlps(shared_first_weight=True)
    result = check_preprocess(proto, {"x": [2, 8]}, exact=True)
    assert _readers(result.model, "w1") == 2  # genuine weight sharing (ALBERT) is kept
    scalar = model(
        [
            helper.make_node("Mul", ["x", "half"], ["a"], name="m1"),
            helper.make_node("Mul", ["a", "half"], ["y"], name="m2"),
        ],
        [("x", ["N", 4])],
        [("y", ["N", 4])],
        [const("half", np.array(0.5))],
    )
    result = check_preprocess(scalar, {"x": [2, 4]}, exact=True)
    assert _readers(result.model, "half") == 2
