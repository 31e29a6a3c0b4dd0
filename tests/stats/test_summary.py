"""summarize: metadata, interface with symbolic dims, params, MACs, ops, layers, to_dict."""

from __future__ import annotations

import json

from onnx import TensorProto, helper

from onnxprune.stats import summarize
from tests.io.tiny_models import make_model, weight


def conv_net():
    """x[batch,3,8,8] -> Conv(8,3,3,3,pad 1)+b -> Relu -> GlobalAveragePool -> Flatten -> Gemm."""
    return make_model(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
            helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
            helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="fc"),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        [weight("w", (8, 3, 3, 3)), weight("b", (8,)), weight("fw", (10, 8)), weight("fb", (10,))],
    )


CONV_MACS = 8 * 8 * 8 * 3 * 9
FC_MACS = 10 * 8
PARAMS = 8 * 27 + 8 + 80 + 10


def test_summary_values():
    summary = summarize(conv_net())
    assert summary.producer == {"name": "tiny", "version": "0.1"}
    assert summary.opset == {"ai.onnx": 17}
    assert summary.ir_version == 8
    assert [(t.name, t.dtype, t.shape) for t in summary.inputs] == [
        ("x", "FLOAT", ["batch", 3, 8, 8])
    ]
    assert summary.outputs[0].shape == ["batch", 10]
    assert summary.params == PARAMS and summary.param_bytes == 4 * PARAMS
    assert summary.macs == CONV_MACS + FC_MACS
    assert summary.ops == {"Conv": 1, "Flatten": 1, "Gemm": 1, "GlobalAveragePool": 1, "Relu": 1}
    assert [(layer.name, layer.macs, layer.params) for layer in summary.layers] == [
        ("conv", CONV_MACS, 8 * 27 + 8),
        ("fc", FC_MACS, 90),
    ]
    assert summary.layers[1].output_shape == [1, 10]
    assert summary.input_shapes == {"x": [1, 3, 8, 8]}
    assert [layer.name for layer in summary.top_layers(1)] == ["conv"]


def test_to_dict_is_json_ready():
    data = json.loads(json.dumps(summarize(conv_net(), {"x": [2, 3, 8, 8]}).to_dict()))
    for key in ("params", "macs", "param_bytes", "inputs", "outputs", "ops", "layers"):
        assert key in data
    assert data["macs"] == 2 * (CONV_MACS + FC_MACS)
    assert data["producer"] == {"name": "tiny", "version": "0.1"}
    assert data["opset"] == {"ai.onnx": 17} and data["ir_version"] == 8
    assert data["layers"][0] == {
        "name": "conv",
        "op_type": "Conv",
        "macs": 2 * CONV_MACS,
        "params": 224,
        "output_shape": [2, 8, 8, 8],
    }
