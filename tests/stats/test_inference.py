"""shape_skeleton / infer_static_shapes: weights left out, shapes unchanged."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from onnxprune.stats.inference import infer_static_shapes, shape_skeleton
from tests.io.tiny_models import make_model, weight


def _model():
    return make_model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Mul", ["h", "scale"], ["m"]),
            helper.make_node("Reshape", ["m", "shape"], ["y"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            weight("w", (16, 12)),
            weight("scale", (12,)),
            numpy_helper.from_array(np.array([-1, 3, 4], np.int64), "shape"),
        ],
    )


def test_skeleton_moves_only_large_float_weights_to_inputs():
    skeleton = shape_skeleton(_model())
    assert [t.name for t in skeleton.graph.initializer] == ["scale", "shape"]
    assert [v.name for v in skeleton.graph.input] == ["x", "w"]
    dims = [d.dim_value for d in skeleton.graph.input[1].type.tensor_type.shape.dim]
    assert dims == [16, 12]


def test_inferred_shapes_at_given_batch():
    inferred = infer_static_shapes(_model(), {"x": [5, 16]})
    assert inferred.shapes["h"] == (5, 12)
    assert inferred.shapes["y"] == (5, 3, 4)
    assert inferred.input_shapes == {"x": [5, 16]}
    assert inferred.notes == []
