import numpy as np
from onnx import helper

from onnxprune.passes import preprocess
from tests.passes.helpers import check_preprocess, const, model, op_types


def test_dead_nodes_and_unused_initializers_are_removed_and_nodes_sorted():
    nodes = [
        helper.make_node("Sigmoid", ["r"], ["y"]),
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Add", ["x", "unused_w"], ["dead"]),
    ]
    proto = model(
        nodes,
        [("x", [2, 3])],
        [("y", [2, 3])],
        [const("unused_w", np.ones(3)), const("z", 1.0)],
        check=False,
    )
    # the checker refuses unsorted graphs, so build the test model without checking it
    result = preprocess(proto, passes=["cleanup"])
    assert op_types(result.model) == ["Relu", "Sigmoid"]
    assert [i.name for i in result.model.graph.initializer] == []
    assert result.applied["cleanup"] is True
    check_preprocess(result.model, {"x": [2, 3]}, exact=True)
