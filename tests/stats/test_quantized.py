"""MACs and parameters of quantized models: QLinearConv, ConvInteger, MatMulInteger and
QLinearMatMul count like their float forms; integer weights count as parameters."""

from __future__ import annotations

import onnx
import pytest

from onnxprune.stats import count_macs
from onnxprune.stats.params import count_params
from tests.quantized import DIGITS, quantized_vgg

SHAPES = {"input": [1, 1, 32, 32]}


@pytest.fixture(scope="module")
def float_macs():
    return count_macs(onnx.load(str(DIGITS / "digits_vgg.onnx")), SHAPES)


@pytest.mark.parametrize("form", ["qdq", "qoperator", "dynamic"])
def test_quantized_layers_count_their_float_macs(tmp_path, float_macs, form) -> None:
    model = onnx.load(str(quantized_vgg(tmp_path, form)))
    report = count_macs(model, SHAPES)
    assert not report.unresolved
    quantized_types = {node.op_type for node in model.graph.node}
    for entry in report.nodes:
        assert entry.macs == float_macs.per_node.get(entry.name, entry.macs)
    convs = [e.macs for e in report.nodes if e.op_type in ("Conv", "QLinearConv", "ConvInteger")]
    float_convs = [e.macs for e in float_macs.nodes if e.op_type == "Conv"]
    assert sorted(convs) == sorted(float_convs), quantized_types
    original = onnx.load(str(DIGITS / "digits_vgg.onnx"))
    conv_weights = {node.input[1] for node in original.graph.node if node.op_type == "Conv"}
    conv_params = sum(
        int(onnx.numpy_helper.to_array(init).size)
        for init in original.graph.initializer
        if init.name in conv_weights
    )
    assert conv_params > 100_000
    params, _ = count_params(model)
    assert params >= conv_params  # the int8 conv weights count
