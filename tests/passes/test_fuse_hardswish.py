import onnx
import pytest
from onnx import helper

from tests.passes.helpers import check_preprocess, const, model, op_types

SHAPE = [2, 8, 5, 5]
INITS = [const("three", 3.0), const("zero", 0.0), const("six", 6.0), const("sixth", 1 / 6)]


def _paddle_hardswish(opset=14, clip_then_mul_first=True):
    """Paddle2ONNX: Add(x, 3) -> Clip(0, 6) -> Mul(x, .) -> Div(., 6)."""
    nodes = [
        helper.make_node("Add", ["x", "three"], ["a"]),
        helper.make_node("Clip", ["a", "zero", "six"], ["c"]),
    ]
    if clip_then_mul_first:
        nodes += [
            helper.make_node("Mul", ["x", "c"], ["m"]),
            helper.make_node("Div", ["m", "six"], ["y"]),
        ]
    else:
        nodes += [
            helper.make_node("Div", ["c", "six"], ["g"]),
            helper.make_node("Mul", ["g", "x"], ["y"]),
        ]
    return model(nodes, [("x", ["N", 8, 5, 5])], [("y", ["N", 8, 5, 5])], INITS, opset=opset)


@pytest.mark.parametrize("mul_first", [True, False])
def test_paddle_hardswish_becomes_hardswish(mul_first):
    proto = _paddle_hardswish(clip_then_mul_first=mul_first)
    result = check_preprocess(proto, {"x": SHAPE}, input_scale=4.0)
    assert op_types(result.model) == ["HardSwish"]


def test_relu6_variant_with_reciprocal_scale():
    nodes = [
        helper.make_node("Add", ["x", "three"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Min", ["r", "six"], ["c"]),
        helper.make_node("Mul", ["c", "x"], ["m"]),
        helper.make_node("Mul", ["m", "sixth"], ["y"]),
    ]
    proto = model(nodes, [("x", SHAPE)], [("y", SHAPE)], INITS)
    result = check_preprocess(proto, {"x": SHAPE}, input_scale=4.0)
    assert op_types(result.model) == ["HardSwish"]


def test_x_times_hardsigmoid_node_becomes_hardswish():
    nodes = [
        helper.make_node("HardSigmoid", ["x"], ["g"], alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["x", "g"], ["y"]),
    ]
    proto = model(nodes, [("x", SHAPE)], [("y", SHAPE)])
    result = check_preprocess(proto, {"x": SHAPE}, input_scale=4.0)
    assert op_types(result.model) == ["HardSwish"]


def test_x_times_hardsigmoid_with_other_slope_is_kept():
    nodes = [
        helper.make_node("HardSigmoid", ["x"], ["g"], alpha=0.2, beta=0.5),
        helper.make_node("Mul", ["x", "g"], ["y"]),
    ]
    proto = model(nodes, [("x", SHAPE)], [("y", SHAPE)])
    result = check_preprocess(proto, {"x": SHAPE}, exact=True, input_scale=4.0)
    assert op_types(result.model) == ["HardSigmoid", "Mul"]


def test_opset_13_is_raised_to_14_when_safe():
    proto = _paddle_hardswish(opset=13)
    result = check_preprocess(proto, {"x": SHAPE}, input_scale=4.0)
    assert op_types(result.model) == ["HardSwish"]
    assert result.model.opset_import[0].version == 14


def test_opset_11_with_softmax_keeps_opset_and_uses_hardsigmoid_gate():
    nodes = [
        helper.make_node("Add", ["x", "three"], ["a"]),
        helper.make_node("Clip", ["a", "zero", "six"], ["c"]),
        helper.make_node("Mul", ["x", "c"], ["m"]),
        helper.make_node("Div", ["m", "six"], ["h"]),
        helper.make_node("Softmax", ["h"], ["y"], axis=1),
    ]
    proto = model(nodes, [("x", SHAPE)], [("y", SHAPE)], INITS, opset=11)
    result = check_preprocess(proto, {"x": SHAPE}, input_scale=4.0)
    assert sorted(op_types(result.model)) == ["HardSigmoid", "Mul", "Softmax"]
    assert result.model.opset_import[0].version == 11
    again = check_preprocess(result.model, {"x": SHAPE}, input_scale=4.0)
    assert again.applied["fuse_hardswish"] is False
    onnx.checker.check_model(again.model, full_check=True)
