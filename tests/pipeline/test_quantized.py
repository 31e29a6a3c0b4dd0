"""Quantized models are not pruned, and the runs say so instead of reporting success."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune import optimize, sparsify
from onnxprune.errors import InputError
from tests.quantized import DIGITS, quantized_vgg


@pytest.fixture(scope="module")
def calib():
    return {"input": np.load(DIGITS / "digits_calib.npz")["input"][:64]}


@pytest.mark.parametrize("form", ["qdq", "qoperator"])
def test_a_mac_target_on_a_quantized_model_is_not_met_and_says_why(tmp_path, calib, form):
    result = optimize(
        str(quantized_vgg(tmp_path, form)), "macs=0.7", data=calib, measure_latency=False
    )
    report = result.report
    assert report.status == "target_not_reached" and not report.target_met
    assert report.macs_before > 20_000_000 and report.macs_after == report.macs_before
    assert "quantized graph" in report.reason and "prune the float model" in report.reason


@pytest.mark.parametrize(
    ("form", "message"),
    [("qdq", "quantized weight"), ("qoperator", "quantized layers: QLinearConv")],
)
def test_sparsify_refuses_a_model_with_nothing_to_zero(tmp_path, form, message):
    with pytest.raises(InputError, match=message):
        sparsify(str(quantized_vgg(tmp_path, form)), 0.5)


def _linear_classifier_model():
    """x (N, 4) → ai.onnx.ml LinearClassifier (coefficients in attributes): no counted MACs."""
    from onnx import TensorProto, helper

    node = helper.make_node(
        "LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml",
        coefficients=list(np.linspace(-1, 1, 12)), intercepts=[0.1, 0.0, -0.1],
        classlabels_ints=[0, 1, 2], post_transform="SOFTMAX",
    )  # fmt: skip
    graph = helper.make_graph(
        [node],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3]),
        ],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


@pytest.mark.parametrize("target", ["macs=0.7", "params=0.7"])
def test_a_share_of_nothing_is_not_met(target):
    """0 <= 0.7 x 0 used to count as met (exit 0 with an unchanged model)."""
    data = {"x": np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)}
    result = optimize(_linear_classifier_model(), target, data=data, measure_latency=False)
    report = result.report
    assert report.status == "target_not_reached" and not report.target_met
    assert "nothing to prune" in report.reason
