"""count_params: which tensors count and how many bytes they take."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from onnxprune.stats import count_params
from onnxprune.stats.params import param_tensors
from tests.io.tiny_models import make_model, weight


def test_float_initializers_and_constants_count_integers_do_not():
    model = make_model(
        [
            helper.make_node("Constant", [], ["c"], value=weight("cv", (5,), dtype=np.float16)),
            helper.make_node("Reshape", ["x", "shape"], ["r"]),
            helper.make_node("MatMul", ["r", "w"], ["m"]),
            helper.make_node("Add", ["m", "c"], ["y"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])],
        [
            weight("w", (4, 5)),
            numpy_helper.from_array(np.array([2, 4], np.int64), "shape"),
        ],
    )
    assert [t.name for t in param_tensors(model)] == ["w", "cv"]
    assert count_params(model) == (4 * 5 + 5, 4 * 5 * 4 + 5 * 2)


def test_quantized_weights_feeding_dequantize_count():
    model = make_model(
        [
            helper.make_node("DequantizeLinear", ["wq", "scale"], ["w"]),
            helper.make_node("MatMul", ["x", "w"], ["y"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [
            numpy_helper.from_array(np.ones((4, 3), np.int8), "wq"),
            numpy_helper.from_array(np.float32(0.1), "scale"),
        ],
    )
    assert count_params(model) == (12 + 1, 12 * 1 + 4)


def test_external_tensor_counts_from_dims():
    tensor = TensorProto(name="w", data_type=TensorProto.BFLOAT16, dims=[3, 7])
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "w.data"
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [1, 7])],
        [tensor],
    )
    assert count_params(model) == (21, 42)
