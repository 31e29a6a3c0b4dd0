import numpy as np
from onnx import helper, numpy_helper

from onnxprune.passes import preprocess
from tests.passes.helpers import check_preprocess, constant_node, model, op_types


def _paddle_style_linear():
    """Paddle2ONNX keeps weights in Constant nodes."""
    rng = np.random.default_rng(4)
    nodes = [
        constant_node("w", rng.standard_normal((4, 3))),
        constant_node("b", rng.standard_normal(3)),
        helper.make_node("Constant", [], ["s"], value_float=2.0),
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("Mul", ["a", "s"], ["y"]),
    ]
    return model(nodes, [("x", ["N", 4])], [("y", ["N", 3])])


def test_constant_nodes_become_initializers_with_the_same_values():
    proto = _paddle_style_linear()
    result = check_preprocess(proto, {"x": [5, 4]}, exact=True)
    assert "Constant" not in op_types(result.model)
    values = {i.name: numpy_helper.to_array(i) for i in result.model.graph.initializer}
    expected = numpy_helper.to_array(proto.graph.node[0].attribute[0].t)
    np.testing.assert_array_equal(values["w"], expected)
    assert float(values["s"]) == 2.0


def test_pass_is_idempotent():
    first = preprocess(_paddle_style_linear(), passes=["constants_to_initializers"])
    second = preprocess(first.model, passes=["constants_to_initializers"])
    assert first.applied["constants_to_initializers"] is True
    assert second.applied["constants_to_initializers"] is False


def test_constant_that_is_a_graph_output_stays_a_node():
    nodes = [constant_node("y", np.ones(3)), helper.make_node("Relu", ["x"], ["z"])]
    proto = model(nodes, [("x", [3])], [("y", [3]), ("z", [3])])
    result = preprocess(proto, passes=["constants_to_initializers"])
    assert "Constant" in op_types(result.model)
    assert result.applied["constants_to_initializers"] is False


def test_constant_graph_output_keeps_its_value_through_the_full_pipeline():
    nodes = [constant_node("y", np.ones(3)), helper.make_node("Relu", ["x"], ["z"])]
    proto = model(nodes, [("x", [3])], [("y", [3]), ("z", [3])])
    result = check_preprocess(proto, {"x": [3]}, exact=True)
    assert [o.name for o in result.model.graph.output] == ["y", "z"]
