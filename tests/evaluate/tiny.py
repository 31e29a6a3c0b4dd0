"""Tiny ONNX models for evaluation tests (built with onnx.helper, no training)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def linear_model(weight: np.ndarray, batch: int | str = "batch", extra_output: bool = False):
    """``logits = x @ weight`` for x of shape (batch, F); optionally a second output
    ``double = 2 * logits``."""
    features, classes = weight.shape
    nodes = [helper.make_node("MatMul", ["x", "w"], ["logits"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])]
    initializers = [numpy_helper.from_array(weight.astype(np.float32), "w")]
    if extra_output:
        nodes.append(helper.make_node("Mul", ["logits", "two"], ["double"]))
        outputs.append(helper.make_tensor_value_info("double", TensorProto.FLOAT, [batch, classes]))
        initializers.append(numpy_helper.from_array(np.array(2.0, np.float32), "two"))
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, features])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
