"""fold_constants stays bounded when ONNX Runtime cannot evaluate a constant partition."""

from __future__ import annotations

import numpy as np
from onnx import helper

from onnxprune.passes import preprocess
from tests.fuzz.runner import alarm
from tests.passes.helpers import const, model


def _failing_constant_chain(length: int):
    """Gather with an out-of-range constant index, then ``length`` constant Adds, then x + it.

    graphsurgeon's basic partitioning re-ran the failing partition recursively without
    shrinking it: minutes of failing sessions, then RecursionError (issue 10).
    """
    nodes = [helper.make_node("Gather", ["c", "idx"], ["g0"])]
    nodes += [helper.make_node("Add", [f"g{i}", "c"], [f"g{i + 1}"]) for i in range(length)]
    nodes.append(helper.make_node("Add", ["x", f"g{length}"], ["y"]))
    initializers = [const("c", np.ones(10)), const("idx", np.full((1, 10), 100, np.int64))]
    return model(nodes, [("x", [1, 10])], [("y", [1, 10])], initializers, check=False)


def test_failing_constant_partition_is_bounded() -> None:
    with alarm(60):
        result = preprocess(_failing_constant_chain(80))
    ops = [node.op_type for node in result.model.graph.node]
    assert "Gather" in ops  # kept for ONNX Runtime to report when the model is run
    assert any("constant folding" in note for note in result.notes)


def test_constant_chain_still_folds() -> None:
    nodes = [helper.make_node("Add", ["c", "c"], ["g"]), helper.make_node("Add", ["x", "g"], ["y"])]
    folded = preprocess(model(nodes, [("x", [1, 10])], [("y", [1, 10])], [const("c", np.ones(10))]))
    assert [node.op_type for node in folded.model.graph.node] == ["Add"]
