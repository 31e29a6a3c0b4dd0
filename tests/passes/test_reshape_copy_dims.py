import numpy as np
from onnx import helper

from onnxprune.passes import preprocess
from tests.passes.helpers import check_preprocess, const, model


def int_const(name, values):
    return const(name, np.asarray(values, dtype=np.int64))


def flatten_model(start: int, end: int, allowzero: int = 0, out=("N", 4, 9)):
    """Reshape(x, Concat(Slice(Shape(x), start, end), [-1])): TorchScript's flatten(2)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "start", "end", "axis"], ["lead"]),
        helper.make_node("Concat", ["lead", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"], allowzero=allowzero),
    ]
    inits = [
        int_const("start", [start]),
        int_const("end", [end]),
        int_const("axis", [0]),
        int_const("minus_one", [-1]),
    ]
    return model(nodes, [("x", ["N", 4, 3, 3])], [("y", list(out))], inits)


def reshape_target(proto):
    reshape = next(n for n in proto.graph.node if n.op_type == "Reshape")
    init = {i.name: i for i in proto.graph.initializer}.get(reshape.input[1])
    return None if init is None else list(np.frombuffer(init.raw_data, dtype=np.int64))


def test_leading_dims_read_from_own_shape_become_zeros():
    result = check_preprocess(flatten_model(0, 2), {"x": [2, 4, 3, 3]}, exact=True)
    assert reshape_target(result.model) == [0, 0, -1]
    assert result.applied["reshape_copy_dims"] is True
    assert [n.op_type for n in result.model.graph.node] == ["Reshape"]


def test_dims_moved_to_another_position_are_kept_dynamic():
    # Shape(x)[1:2] lands at position 0: a 0 there would copy dim 0, not dim 1.
    result = preprocess(flatten_model(1, 2, out=(4, "M")), passes=["reshape_copy_dims"])
    assert result.applied["reshape_copy_dims"] is False


def test_allowzero_reshape_is_left_alone():
    proto = flatten_model(0, 2, allowzero=1)
    proto.opset_import[0].version = 18
    result = preprocess(proto, passes=["reshape_copy_dims"])
    assert result.applied["reshape_copy_dims"] is False


def test_opset_9_slice_with_attribute_bounds():
    """Slice-1 (opsets 1-9) carries starts/ends/axes as attributes: read them, not inputs
    (the pass used to unpack the missing inputs and crash on an opset-9 ViT export)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s"], ["lead"], starts=[0], ends=[2], axes=[0]),
        helper.make_node("Concat", ["lead", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    proto = model(
        nodes, [("x", ["N", 4, 3, 3])], [("y", ["N", 4, 9])], [int_const("minus_one", [-1])],
        opset=9,
    )  # fmt: skip
    result = check_preprocess(proto, {"x": [2, 4, 3, 3]}, exact=True)
    assert reshape_target(result.model) == [0, 0, -1]
    assert result.applied["reshape_copy_dims"] is True


def _batch_read_from(source: str):
    """y = x @ w [N, 4, 6] reshaped to [N(from Shape(source)[0]), 24]."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Shape", [source], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "rest"], ["target"], axis=0),
        helper.make_node("Reshape", ["h", "target"], ["y"]),
    ]
    inits = [
        const("w", np.ones((3, 6), np.float32)),
        int_const("zero", 0),
        int_const("axes", [0]),
        int_const("rest", [24]),
    ]
    inputs = [("x", ["N", 4, 3]), ("z", ["M", 4, 3])]
    return model(nodes, inputs, [("y", ["N", 24])], inits)


def test_a_dim_read_from_another_tensor_with_the_same_symbol_becomes_zero():
    """Shape(x)[0] copies dim 0 of x @ w: inference gives both the symbol N."""
    proto = _batch_read_from("x")
    result = preprocess(proto, passes=["reshape_copy_dims"])
    assert result.applied["reshape_copy_dims"] is True
    assert reshape_target(result.model) == [0, 24]


def test_a_dim_of_an_unrelated_tensor_is_kept_dynamic():
    proto = _batch_read_from("z")  # z's batch M need not equal N
    result = preprocess(proto, passes=["reshape_copy_dims"])
    assert result.applied["reshape_copy_dims"] is False


def _merge_heads(t_dims, x_dims=("B", 5, 2, 4), start=None):
    """Reshape(x [B, 5, 2, 4], Shape(t)): merge heads back to t's shape [B', 5, 8], as ONNX
    Runtime's transformer optimizer writes it (t the attention block's input)."""
    attrs = {} if start is None else {"start": start}
    nodes = [
        helper.make_node("Shape", ["t"], ["s"], **attrs),
        helper.make_node("Reshape", ["x", "s"], ["y"]),
    ]
    inputs = [("x", list(x_dims)), ("t", list(t_dims))]
    return model(nodes, inputs, [("y", [t_dims[0], 5, 8])], opset=17)


def test_a_whole_shape_target_becomes_constant():
    # t's batch symbol differs from x's: one -1 that the element count fixes; 5 equals x's dim 1
    # (0 copies it), 8 is a proved number.
    proto = _merge_heads(("T", 5, 8), start=0)
    result = check_preprocess(proto, {"x": [3, 5, 2, 4], "t": [3, 5, 8]}, exact=True)
    assert reshape_target(result.model) == [-1, 0, 8]
    same = check_preprocess(_merge_heads(("B", 5, 8)), {"x": [3, 5, 2, 4], "t": [3, 5, 8]})
    assert reshape_target(same.model) == [0, 0, 8]


def test_a_whole_shape_target_with_two_unknown_dims_stays():
    proto = _merge_heads(("T", "L", 8), x_dims=("B", "M", 2, 4))
    result = preprocess(proto, passes=["reshape_copy_dims"])
    assert result.applied["reshape_copy_dims"] is False
