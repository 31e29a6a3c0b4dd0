"""Constants by name: initializers and Constant nodes (every attribute form) alike."""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

from onnxprune.graph.constants import constant_lookup
from tests.oracle import const, make_model, tensor


def test_initializers_and_constant_nodes_are_found_by_name():
    nodes = [
        helper.make_node("Constant", [], ["c"], value_float=2.0),
        helper.make_node(
            "Constant", [], ["v"], value=const("ignored", np.ones((2, 3), np.float32))
        ),
        helper.make_node("Mul", ["x", "c"], ["m"]),
        helper.make_node("Add", ["m", "w"], ["y"]),
    ]
    model = make_model(
        nodes, [tensor("x", [2, 3])], [tensor("y", [2, 3])], [const("w", np.zeros((2, 3)))]
    )
    lookup = constant_lookup(model)
    assert lookup("w").name == "w" and tuple(lookup("w").dims) == (2, 3)
    assert float(numpy_helper.to_array(lookup("c"))) == 2.0
    assert tuple(lookup("v").dims) == (2, 3) and lookup("v").name == "v"
    assert lookup("x") is None and lookup("m") is None
