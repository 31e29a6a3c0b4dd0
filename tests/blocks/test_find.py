"""Finding residual units on hand-built graphs: both Add orders, layer scale, fail-closed cases."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from onnxprune.blocks import find_units
from tests.blocks.graphs import SHAPE, conv, residual_model
from tests.oracle import const, make_model, tensor


@pytest.mark.parametrize("branch_first", [False, True])
def test_both_add_orders_give_one_unit(branch_first):
    search = find_units(residual_model(branch_first=branch_first))
    assert len(search.units) == 1
    unit = search.units[0]
    assert (unit.identity, unit.branch, unit.output) == ("x", "f2", "y")
    assert unit.nodes == ["f_conv1", "f_relu", "f_conv2"]
    assert unit.kind == "conv"
    assert unit.macs == 2 * 8 * 8 * 9 * 36
    assert unit.params == 2 * (8 * 8 * 9 + 8)
    assert search.rejected == []


def test_layer_scale_mul_is_inside_the_branch():
    unit = find_units(residual_model(layer_scale=True)).units[0]
    assert unit.branch == "f2s"
    assert unit.nodes[-1] == "f_scale"


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"shared_internal": True}, "also read by 'side'"),
        ({"internal_output": True}, "is a graph output"),
        ({"shape_change": True}, "shape change"),
    ],
)
def test_blocking_cases_fail_closed_with_reason(flags, reason):
    search = find_units(residual_model(**flags))
    assert search.units == []
    assert len(search.rejected) == 1
    assert search.rejected[0].add == "add"
    assert reason in search.rejected[0].reason


def test_projection_shortcut_is_not_a_unit():
    search = find_units(residual_model(projection=True))
    assert search.units == []
    assert "projection" in search.rejected[0].reason


def test_consecutive_units_form_one_stage():
    search = find_units(residual_model(second_unit=True))
    assert [u.add for u in search.units] == ["add", "add2"]
    assert search.stages == [[0, 1]]
    assert {u.stage for u in search.units} == {0}
    assert search.removable_macs() == sum(u.macs for u in search.units)


def test_constant_branch_and_subgraph_are_not_units():
    then_graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"], name="t")], "then", [], [tensor("t", SHAPE)]
    )
    nodes = [
        helper.make_node("Relu", ["input"], ["x"], name="r"),
        helper.make_node("Add", ["x", "bias_like"], ["y0"], name="add_const"),
        helper.make_node("Cast", ["cond_f"], ["cond"], name="cast", to=9),
        helper.make_node(
            "If", ["cond"], ["f"], name="if", then_branch=then_graph, else_branch=then_graph
        ),
        helper.make_node("Add", ["y0", "f"], ["y"], name="add"),
    ]
    inits = [const("bias_like", [[[[1.0]]]]), const("cond_f", 1.0)]
    model = make_model(nodes, [tensor("input", SHAPE)], [tensor("y", SHAPE)], inits)
    search = find_units(model)
    assert search.units == []
    assert [r.add for r in search.rejected] == ["add"]
    assert "subgraph" in search.rejected[0].reason


def test_long_chains_need_no_recursion():
    """800 chained units (2,400 nodes): the walk is iterative and every unit is found."""
    nodes, inits, current = [], [], "input"
    for i in range(800):
        node, params = conv(f"c{i}", current, f"f{i}", i)
        nodes.append(node)
        inits += params
        nodes.append(helper.make_node("Relu", [f"f{i}"], [f"r{i}"], name=f"r{i}"))
        nodes.append(helper.make_node("Add", [current, f"r{i}"], [f"y{i}"], name=f"a{i}"))
        current = f"y{i}"
    model = make_model(nodes, [tensor("input", SHAPE)], [tensor(current, SHAPE)], inits)
    search = find_units(model)
    assert len(search.units) == 800
    assert search.stages == [list(range(800))]


def test_integer_additions_are_not_units():
    nodes = [
        helper.make_node("Neg", ["input"], ["x"], name="neg"),
        helper.make_node("Abs", ["x"], ["f"], name="abs"),
        helper.make_node("Add", ["x", "f"], ["y"], name="add"),
    ]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("input", onnx.TensorProto.INT64, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.INT64, [2, 3])],
        [],
    )
    search = find_units(model)
    assert search.units == []
    assert "floating-point" in search.rejected[0].reason


def test_units_joined_by_a_relu_are_one_stage():
    """ResNet-style: relu(x + f(x)) is the next unit's x: one stage through the one-input ReLU."""
    nodes, inits, current = [], [], "input"
    for i in range(3):
        node, params = conv(f"c{i}", current, f"f{i}", i)
        nodes += [node, helper.make_node("Add", [current, f"f{i}"], [f"s{i}"], name=f"a{i}")]
        nodes.append(helper.make_node("Relu", [f"s{i}"], [f"y{i}"], name=f"r{i}"))
        inits += params
        current = f"y{i}"
    model = make_model(nodes, [tensor("input", SHAPE)], [tensor(current, SHAPE)], inits)
    assert find_units(model).stages == [[0, 1, 2]]


def test_units_whose_shapes_static_inference_cannot_see_are_found_on_measured_shapes(zoo_onnx):
    """The zoo BERT slices its position ids from a buffer, so inference leaves every shape
    after the embeddings unknown; the search measures them and finds each layer's attention
    and MLP branch (the attention branches read the mask bias: a side tensor)."""
    from onnxprune.passes import preprocess

    model = preprocess(onnx.load(zoo_onnx("bert", "torchscript"))).model
    shapes = {name: [2, 12] for name in ("input_ids", "attention_mask", "token_type_ids")}
    search = find_units(model, shapes)
    kinds = [u.kind for u in search.units]
    assert kinds.count("mlp") >= 1 and kinds.count("attention") == kinds.count("mlp")
    assert len(kinds) == 2 * kinds.count("mlp")
    assert all(u.macs > 0 for u in search.units)
    assert any("were measured" in note for note in search.notes), search.notes
    assert not any("shape unknown" in r.reason for r in search.rejected), search.rejected


def _masked_branch_model(mask_type: int, embedded: bool = False) -> onnx.ModelProto:
    """y = x + Softmax(x + bias(m)) with bias(m) = (1 − Cast(m)) · −1e4 from a second input m;
    ``embedded``: x is an embedding lookup of integer ids."""
    from onnx import TensorProto

    nodes = [
        helper.make_node("Cast", ["m"], ["mf"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["one", "mf"], ["inv"]),
        helper.make_node("Mul", ["inv", "big"], ["bias"]),
        helper.make_node("Add", ["x", "bias"], ["scores"], name="f_mask"),
        helper.make_node("Softmax", ["scores"], ["o"], name="f_softmax", axis=-1),
        helper.make_node("Add", ["x", "o"], ["y"], name="join"),
    ]
    inputs = [helper.make_tensor_value_info("m", mask_type, [2, 6])]
    inits = [const("one", np.ones(1, np.float32)), const("big", np.full(1, -1e4, np.float32))]
    if embedded:
        nodes.insert(0, helper.make_node("Gather", ["table", "ids"], ["x"], name="embed"))
        inputs.insert(0, helper.make_tensor_value_info("ids", TensorProto.INT64, [2]))
        inits.append(
            const("table", np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32))
        )
    else:
        inputs.insert(0, tensor("x", [2, 6]))
    return make_model(nodes, inputs, [tensor("y", [2, 6])], inits)


@pytest.mark.parametrize("embedded", [False, True])
def test_a_branch_may_read_a_mask_computed_from_an_integer_input(embedded):
    search = find_units(_masked_branch_model(onnx.TensorProto.INT64, embedded))
    assert [u.nodes for u in search.units] == [["f_mask", "f_softmax"]]


def test_a_branch_reading_another_float_input_is_not_a_unit():
    search = find_units(_masked_branch_model(onnx.TensorProto.FLOAT))
    assert search.units == []
    assert "graph input 'm'" in search.rejected[0].reason


def test_eight_bit_image_inputs_carry_features():
    """A uint8 image input is pixels, not a mask: a branch that reads an earlier feature map
    of it besides x is a shortcut, as with a float input."""
    from onnx import TensorProto

    nodes = [
        helper.make_node("Cast", ["img"], ["a"], to=TensorProto.FLOAT),
        helper.make_node("Relu", ["a"], ["e"], name="early"),
        helper.make_node("Mul", ["a", "two"], ["x"], name="stem"),
        helper.make_node("Add", ["x", "e"], ["s"], name="f_skip"),
        helper.make_node("Softmax", ["s"], ["o"], name="f_softmax", axis=-1),
        helper.make_node("Add", ["x", "o"], ["y"], name="join"),
    ]
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("img", TensorProto.UINT8, [2, 6])],
        [tensor("y", [2, 6])],
        [const("two", np.full(1, 2.0, np.float32))],
    )
    search = find_units(model)
    assert search.units == []
    assert "shortcut" in search.rejected[0].reason
