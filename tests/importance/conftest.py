"""Fixtures of the importance tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import numpy_helper


@pytest.fixture
def dense_model(tmp_path) -> Path:
    """Conv → Relu → Conv with a [N, 3, 6, 6] output (no class axis): probe targets."""
    from onnx import TensorProto, helper, save

    rng = np.random.default_rng(3)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 2, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((3, 8, 1, 1)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1"], ["h"], name="conv1", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2"),
        ],
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / "dense.onnx"
    save(model, str(path))
    return path
