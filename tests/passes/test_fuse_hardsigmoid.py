import pytest
from onnx import helper

from tests.passes.helpers import check_preprocess, const, model, op_types

SHAPE = [2, 8, 5, 5]


def _attrs(proto, op):
    node = next(n for n in proto.graph.node if n.op_type == op)
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def test_clip_plus_three_over_six_becomes_hardsigmoid():
    nodes = [
        helper.make_node("Add", ["x", "three"], ["a"]),
        helper.make_node("Clip", ["a", "zero", "six"], ["c"]),
        helper.make_node("Div", ["c", "six"], ["y"]),
    ]
    inits = [const("three", 3.0), const("zero", 0.0), const("six", 6.0)]
    proto = model(nodes, [("x", ["N", 8, 5, 5])], [("y", ["N", 8, 5, 5])], inits)
    result = check_preprocess(proto, {"x": SHAPE}, input_scale=4.0)
    assert op_types(result.model) == ["HardSigmoid"]
    attrs = _attrs(result.model, "HardSigmoid")
    assert attrs["alpha"] == pytest.approx(1 / 6)
    assert attrs["beta"] == pytest.approx(0.5)


def test_scaled_plus_offset_clipped_to_unit_becomes_hardsigmoid():
    nodes = [
        helper.make_node("Mul", ["x", "slope"], ["m"]),
        helper.make_node("Add", ["m", "offset"], ["a"]),
        helper.make_node("Clip", ["a", "zero", "one"], ["y"]),
    ]
    inits = [const("slope", 0.2), const("offset", 0.5), const("zero", 0.0), const("one", 1.0)]
    proto = model(nodes, [("x", SHAPE)], [("y", SHAPE)], inits)
    result = check_preprocess(proto, {"x": SHAPE}, input_scale=4.0)
    assert op_types(result.model) == ["HardSigmoid"]
    assert _attrs(result.model, "HardSigmoid")["alpha"] == pytest.approx(0.2)


def test_relu6_as_max_min_then_times_one_sixth():
    nodes = [
        helper.make_node("Add", ["x", "three"], ["a"]),
        helper.make_node("Max", ["a", "zero"], ["lo"]),
        helper.make_node("Min", ["lo", "six"], ["hi"]),
        helper.make_node("Mul", ["hi", "sixth"], ["y"]),
    ]
    inits = [const("three", 3.0), const("zero", 0.0), const("six", 6.0), const("sixth", 1 / 6)]
    proto = model(nodes, [("x", SHAPE)], [("y", SHAPE)], inits)
    result = check_preprocess(proto, {"x": SHAPE}, input_scale=4.0)
    assert op_types(result.model) == ["HardSigmoid"]


def test_clip_not_onto_unit_interval_is_kept():
    nodes = [
        helper.make_node("Add", ["x", "three"], ["a"]),
        helper.make_node("Clip", ["a", "zero", "six"], ["c"]),
        helper.make_node("Div", ["c", "three"], ["y"]),
    ]
    inits = [const("three", 3.0), const("zero", 0.0), const("six", 6.0)]
    proto = model(nodes, [("x", SHAPE)], [("y", SHAPE)], inits)
    result = check_preprocess(proto, {"x": SHAPE}, exact=True, input_scale=4.0)
    assert op_types(result.model) == ["Add", "Clip", "Div"]
    assert result.applied["fuse_hardsigmoid"] is False


def test_shared_intermediate_keeps_its_other_consumer_correct():
    nodes = [
        helper.make_node("Add", ["x", "three"], ["a"]),
        helper.make_node("Clip", ["a", "zero", "six"], ["c"]),
        helper.make_node("Div", ["c", "six"], ["y"]),
        helper.make_node("Relu", ["c"], ["z"]),
    ]
    inits = [const("three", 3.0), const("zero", 0.0), const("six", 6.0)]
    proto = model(nodes, [("x", SHAPE)], [("y", SHAPE), ("z", SHAPE)], inits)
    result = check_preprocess(proto, {"x": SHAPE}, input_scale=4.0)
    assert "Relu" in op_types(result.model)
