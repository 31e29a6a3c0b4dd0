from onnx import helper

from tests.passes.helpers import check_preprocess, model, op_types


def test_inner_identities_are_removed():
    nodes = [
        helper.make_node("Identity", ["x"], ["i1"]),
        helper.make_node("Relu", ["i1"], ["r"]),
        helper.make_node("Identity", ["r"], ["i2"]),
        helper.make_node("Sigmoid", ["i2"], ["y"]),
    ]
    proto = model(nodes, [("x", ["N", 4])], [("y", ["N", 4])])
    result = check_preprocess(proto, {"x": [3, 4]}, exact=True)
    assert op_types(result.model) == ["Relu", "Sigmoid"]
    assert result.applied["eliminate_identity"] is True


def test_identity_into_graph_output_keeps_the_output_name():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Identity", ["r"], ["y"]),
    ]
    proto = model(nodes, [("x", [2, 4])], [("y", [2, 4])])
    result = check_preprocess(proto, {"x": [2, 4]}, exact=True)
    assert op_types(result.model) == ["Relu"]
    assert result.model.graph.node[0].output[0] == "y"


def test_identity_between_input_and_output_stays():
    nodes = [helper.make_node("Identity", ["x"], ["y"])]
    proto = model(nodes, [("x", [2, 4])], [("y", [2, 4])])
    result = check_preprocess(proto, {"x": [2, 4]}, exact=True)
    assert op_types(result.model) == ["Identity"]


def test_identity_of_a_tensor_that_is_also_an_output_stays():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Identity", ["r"], ["y"]),
    ]
    proto = model(nodes, [("x", [2, 4])], [("r", [2, 4]), ("y", [2, 4])])
    result = check_preprocess(proto, {"x": [2, 4]}, exact=True)
    assert op_types(result.model) == ["Relu", "Identity"]
