import numpy as np
from onnx import helper

from tests.passes.helpers import check_preprocess, const, model, op_types

RNG = np.random.default_rng(3)
TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]


def test_adjacent_inverse_pair_cancels():
    nodes = [
        helper.make_node("Transpose", ["x"], ["t1"], perm=TO_NCHW),
        helper.make_node("Transpose", ["t1"], ["t2"], perm=TO_NHWC),
        helper.make_node("Relu", ["t2"], ["y"]),
    ]
    proto = model(nodes, [("x", ["N", 5, 5, 3])], [("y", ["N", 5, 5, 3])])
    result = check_preprocess(proto, {"x": [2, 5, 5, 3]}, exact=True)
    assert op_types(result.model) == ["Relu"]


def test_identity_transpose_before_graph_output_keeps_output_name():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Transpose", ["r"], ["y"], perm=[0, 1, 2]),
    ]
    proto = model(nodes, [("x", [2, 3, 4])], [("y", [2, 3, 4])])
    result = check_preprocess(proto, {"x": [2, 3, 4]}, exact=True)
    assert op_types(result.model) == ["Relu"]
    assert result.model.graph.node[0].output[0] == "y"


def test_tf2onnx_nhwc_conv_chain_loses_inner_transposes():
    """Input NHWC -> T -> Conv -> T -> Add(bias) -> Relu -> T -> Conv -> T -> output NHWC."""
    inits = [
        const("w1", RNG.standard_normal((4, 3, 3, 3))),
        const("w2", RNG.standard_normal((2, 4, 1, 1))),
        const("bias", RNG.standard_normal(4)),
        const("lo", 0.0),
        const("hi", 6.0),
    ]
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_nchw"], perm=TO_NCHW),
        helper.make_node("Conv", ["x_nchw", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["c1"], ["c1_nhwc"], perm=TO_NHWC),
        helper.make_node("Add", ["c1_nhwc", "bias"], ["b1"]),
        helper.make_node("Clip", ["b1", "lo", "hi"], ["r1"]),
        helper.make_node("Sigmoid", ["r1"], ["s1"]),
        helper.make_node("Transpose", ["s1"], ["s1_nchw"], perm=TO_NCHW),
        helper.make_node("Conv", ["s1_nchw", "w2"], ["c2"]),
        helper.make_node("Transpose", ["c2"], ["y"], perm=TO_NHWC),
    ]
    proto = model(nodes, [("x", ["N", 6, 6, 3])], [("y", ["N", 6, 6, 2])], inits)
    result = check_preprocess(proto, {"x": [2, 6, 6, 3]})
    types = op_types(result.model)
    assert types == ["Transpose", "Conv", "Add", "Clip", "Sigmoid", "Conv", "Transpose"]
    bias = next(i for i in result.model.graph.initializer if i.name.startswith("bias"))
    assert list(bias.dims) == [1, 4, 1, 1]
    assert result.model.graph.node[-1].output[0] == "y"


def test_transpose_feeding_two_consumers_is_not_pushed():
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=TO_NCHW),
        helper.make_node("Relu", ["t"], ["r"]),
        helper.make_node("Transpose", ["r"], ["y"], perm=TO_NHWC),
        helper.make_node("Sigmoid", ["t"], ["z"]),
    ]
    proto = model(nodes, [("x", [1, 4, 4, 3])], [("y", [1, 4, 4, 3]), ("z", [1, 3, 4, 4])])
    result = check_preprocess(proto, {"x": [1, 4, 4, 3]}, exact=True)
    assert op_types(result.model).count("Transpose") == 2
