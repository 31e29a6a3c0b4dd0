"""Dynamic input dimensions in every spelling exporters use: named, empty, 0 and -1."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.evaluate.data import model_input_specs
from onnxprune.graph.shapes import fix_input_shapes, graph_input_shapes


def _gemm(first_dim) -> object:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    dim = x.type.tensor_type.shape.dim[0]
    if isinstance(first_dim, str):
        dim.dim_param = first_dim
    elif first_dim is not None:
        dim.dim_value = first_dim
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    w = numpy_helper.from_array(np.ones((3, 4), np.float32), "w")
    node = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)
    graph = helper.make_graph([node], "g", [x], [y], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("first_dim", [-1, 0, None, "batch"])
def test_every_dynamic_spelling_is_dynamic_and_settable(first_dim):
    model = _gemm(first_dim)
    assert model_input_specs(model)[0][2][0] in (None, "batch")
    fixed = fix_input_shapes(model, {"x": [8, 4]})
    assert graph_input_shapes(fixed)["x"] == (8, 4)
    assert graph_input_shapes(fix_input_shapes(model))["x"] == (1, 4)


def test_a_fixed_dimension_still_refuses_another_size():
    from onnxprune.errors import InputError

    with pytest.raises(InputError, match=r"input_shapes\['x'\]: dimension 0 is fixed to 2"):
        fix_input_shapes(_gemm(2), {"x": [8, 4]})
