"""normalize_model: Constant weights -> initializers, dead nodes and unused weights dropped."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.io import normalize_model
from onnxprune.io.normalize import constant_tensor, lift_initializer_inputs, weight_inputs
from tests.io.tiny_models import make_model, run, weight

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
FEEDS = {"x": np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)}


def paddle_style_model(ir_version: int = 8):
    """Weights in Constant nodes: y = (x @ W) + b, with W and b held by Constant nodes."""
    w = weight("w_value", (4, 3), 3)
    b = weight("b_value", (3,), 4)
    return make_model(
        [
            helper.make_node("Constant", [], ["w"], value=w),
            helper.make_node("Constant", [], ["b"], value=b),
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        [X],
        [Y],
        ir_version=ir_version,
    )


def test_constants_become_initializers_with_same_outputs():
    model = paddle_style_model()
    before = model.SerializeToString()
    normalized = normalize_model(model)
    assert [n.op_type for n in normalized.graph.node] == ["MatMul", "Add"]
    assert sorted(t.name for t in normalized.graph.initializer) == ["b", "w"]
    expected = numpy_helper.to_array(model.graph.node[0].attribute[0].t)
    w = next(t for t in normalized.graph.initializer if t.name == "w")
    np.testing.assert_array_equal(numpy_helper.to_array(w), expected)
    np.testing.assert_allclose(run(normalized, FEEDS)[0], run(model, FEEDS)[0], rtol=1e-6)
    assert model.SerializeToString() == before


def test_ir3_model_becomes_ir4_without_weight_inputs():
    model = paddle_style_model(ir_version=3)
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(2, np.float32), "extra"))
    model.graph.input.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, [2]))
    normalized = normalize_model(model)
    assert normalized.ir_version == 4 and model.ir_version == 3
    assert [v.name for v in normalized.graph.input] == ["x"]
    onnx.checker.check_model(normalized, full_check=True)
    np.testing.assert_allclose(run(normalized, FEEDS)[0], run(model, FEEDS)[0], rtol=1e-6)


def test_weights_kept_as_inputs_at_a_modern_ir_become_constants():
    """PyTorch's keep_initializers_as_inputs=True at IR 8: the weight input goes, IR stays."""
    model = paddle_style_model(ir_version=8)
    model.graph.node[3].output[0] = "sum"
    model.graph.node.append(helper.make_node("Mul", ["sum", "scale"], ["y"]))
    scale = np.full(3, 2.0, np.float32)
    model.graph.initializer.append(numpy_helper.from_array(scale, "scale"))
    model.graph.input.append(helper.make_tensor_value_info("scale", TensorProto.FLOAT, [3]))
    assert weight_inputs(model) == ["scale"]
    normalized = normalize_model(model)
    assert normalized.ir_version == 8 and [v.name for v in normalized.graph.input] == ["x"]
    assert "scale" in {tensor.name for tensor in normalized.graph.initializer}
    assert weight_inputs(model) == ["scale"]  # the argument is not modified
    np.testing.assert_allclose(run(normalized, FEEDS)[0], run(model, FEEDS)[0], rtol=1e-6)
    assert lift_initializer_inputs(paddle_style_model(ir_version=8)) == 0


@pytest.mark.parametrize(
    ("attribute", "value", "dtype", "expected"),
    [
        ("value_float", 1.5, np.float32, 1.5),
        ("value_floats", [1.0, 2.0], np.float32, [1.0, 2.0]),
        ("value_int", 7, np.int64, 7),
        ("value_ints", [3, -1], np.int64, [3, -1]),
    ],
)
def test_scalar_constant_attributes(attribute, value, dtype, expected):
    node = helper.make_node("Constant", [], ["c"], **{attribute: value})
    tensor = constant_tensor(node)
    array = numpy_helper.to_array(tensor)
    assert tensor.name == "c" and array.dtype == dtype
    np.testing.assert_array_equal(array, np.array(expected, dtype=dtype))


def test_constant_that_is_a_graph_output_stays_a_node():
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [3])
    model = make_model(
        [
            helper.make_node("Constant", [], ["c"], value=weight("v", (3,))),
            helper.make_node("MatMul", ["x", "w"], ["y"]),
        ],
        [X],
        [Y, c],
        [weight("w", (4, 3))],
    )
    normalized = normalize_model(model)
    assert [n.op_type for n in normalized.graph.node] == ["Constant", "MatMul"]


def test_dead_nodes_and_unused_initializers_are_dropped():
    model = make_model(
        [
            helper.make_node("MatMul", ["x", "w"], ["y"], name="live"),
            helper.make_node("MatMul", ["x", "w_dead"], ["dead1"], name="dead_a"),
            helper.make_node("Relu", ["dead1"], ["dead2"], name="dead_b"),
            helper.make_node("Constant", [], ["c_dead"], value=weight("v", (3,))),
        ],
        [X],
        [Y],
        [weight("w", (4, 3)), weight("w_dead", (4, 3)), weight("never_used", (5,))],
    )
    model.graph.value_info.append(helper.make_tensor_value_info("dead2", TensorProto.FLOAT, None))
    model.graph.value_info.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]))
    normalized = normalize_model(model)
    assert [n.name for n in normalized.graph.node] == ["live"]
    assert [t.name for t in normalized.graph.initializer] == ["w"]
    assert [v.name for v in normalized.graph.value_info] == ["y"]
    assert [v.name for v in normalized.graph.input] == ["x"]
    assert len(model.graph.node) == 4
    np.testing.assert_array_equal(run(normalized, FEEDS)[0], run(model, FEEDS)[0])


def test_unused_initializer_listed_as_input_is_dropped_with_its_input():
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [X, helper.make_tensor_value_info("unused", TensorProto.FLOAT, [5])],
        [Y],
        [weight("w", (4, 3)), weight("unused", (5,))],
        ir_version=3,
    )
    normalized = normalize_model(model)
    assert [v.name for v in normalized.graph.input] == ["x"]
    assert [t.name for t in normalized.graph.initializer] == ["w"]


def test_tensor_captured_by_a_subgraph_stays_alive():
    """An If branch reading an outer tensor keeps that tensor's producer and weights alive."""
    then_out = helper.make_tensor_value_info("then_y", TensorProto.FLOAT, [2, 3])
    else_out = helper.make_tensor_value_info("else_y", TensorProto.FLOAT, [2, 3])
    then_graph = helper.make_graph(
        [helper.make_node("Identity", ["captured"], ["then_y"])], "then", [], [then_out]
    )
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["captured"], ["else_y"])], "else", [], [else_out]
    )
    model = make_model(
        [
            helper.make_node("MatMul", ["x", "w"], ["captured"], name="producer"),
            helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0, name="cond_sum"),
            helper.make_node("Greater", ["s", "zero"], ["cond"], name="cond"),
            helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph),
        ],
        [X],
        [Y],
        [weight("w", (4, 3)), numpy_helper.from_array(np.float32(0.0), "zero")],
    )
    normalized = normalize_model(model)
    assert [n.op_type for n in normalized.graph.node] == ["MatMul", "ReduceSum", "Greater", "If"]
    assert sorted(t.name for t in normalized.graph.initializer) == ["w", "zero"]
