"""Shapes measured in ONNX Runtime where static inference gives up."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from onnxprune.graph.measured_shapes import (
    fill_unknown_shapes,
    measure_shapes,
    needs_measurement,
    valid_random_feeds,
)
from onnxprune.graph.shapes import fix_input_shapes, infer_shapes, value_shapes
from tests.oracle import const, make_model


def _position_slice_model():
    """out = table[positions[:, :L]] with L = Shape(ids)[1] computed through a Gather of a
    Shape, as BERT's position ids: inference cannot bound the Slice end."""
    nodes = [
        helper.make_node("Shape", ["ids"], ["ids_shape"]),
        helper.make_node("Gather", ["ids_shape", "one"], ["length"]),
        helper.make_node("Unsqueeze", ["length", "zero_axis"], ["end"]),
        helper.make_node("Slice", ["positions", "start", "end", "axis_one"], ["position_ids"]),
        helper.make_node("Gather", ["table", "position_ids"], ["embedded"]),
        helper.make_node("Gather", ["words", "ids"], ["words_out"]),
        helper.make_node("Add", ["embedded", "words_out"], ["out"]),
    ]
    initializers = [
        const("one", np.array(1, np.int64)),
        const("zero_axis", np.array([0], np.int64)),
        const("start", np.array([0], np.int64)),
        const("axis_one", np.array([1], np.int64)),
        const("positions", np.arange(32, dtype=np.int64)[None, :]),
        const("table", np.ones((32, 6), np.float32)),
        const("words", np.ones((11, 6), np.float32)),
    ]
    inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "seq"])]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)]
    return make_model(nodes, inputs, outputs, initializers)


def test_measured_shapes_fill_what_inference_leaves_unknown() -> None:
    model = fix_input_shapes(_position_slice_model(), {"ids": [2, 5]})
    shapes = value_shapes(infer_shapes(model))
    assert needs_measurement(model, shapes)
    feeds = valid_random_feeds(model)
    assert feeds["ids"].shape == (2, 5) and feeds["ids"].max() < 11  # the words table
    measured = measure_shapes(model, feeds)
    assert measured["out"] == (2, 5, 6) and measured["position_ids"] == (1, 5)
    filled = fill_unknown_shapes(shapes, measured)
    assert filled == ["embedded", "position_ids"]
    assert shapes["embedded"] == (1, 5, 6) and shapes["position_ids"] == (1, 5)
    assert not needs_measurement(model, shapes)


def test_fill_keeps_known_shapes_and_rank_mismatches() -> None:
    shapes = {"a": (2, 3), "b": (None, 3), "c": (1,)}
    filled = fill_unknown_shapes(shapes, {"a": (9, 9), "b": (4, 3), "c": (2, 2), "d": (7,)})
    assert filled == ["b", "d"]
    assert shapes == {"a": (2, 3), "b": (4, 3), "c": (1,), "d": (7,)}
