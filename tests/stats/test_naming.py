"""node_names: stable unique names for unnamed and repeated node names."""

from __future__ import annotations

from onnx import helper

from onnxprune.stats import node_names


def test_names():
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["a"], ["b"]),
            helper.make_node("Relu", ["b"], ["c"], name="act"),
            helper.make_node("Relu", ["c"], ["d"], name="act"),
            helper.make_node("Relu", ["d"], ["e"], name="Relu_0"),
            helper.make_node("Conv", ["e", "w"], ["f"]),
        ],
        "g",
        [],
        [],
    )
    assert node_names(graph) == ["Relu_0_2", "act", "act_2", "Relu_0", "Conv_4"]
