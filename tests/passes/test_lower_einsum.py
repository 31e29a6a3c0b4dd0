"""lower_einsum: every Einsum (three or more operands pairwise from the left) becomes ReduceSum/Transpose/Reshape/
Unsqueeze/MatMul/Squeeze with the same outputs in ONNX Runtime (opset 12 with axes attributes
and 17 with axes inputs; constant and run-time operands); equations it cannot lower stay
Einsum with a note saying why."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.passes import preprocess
from tests.passes.helpers import op_types, run

LAYOUT_OPS = {"ReduceSum", "Transpose", "Reshape", "Unsqueeze", "MatMul", "Squeeze", "Identity"}

# (equation, operand shapes, index of a constant operand or None)
CASES = [
    ("bthd,bshd->bhts", [(2, 5, 3, 4), (2, 6, 3, 4)], None),  # attention scores
    ("bhts,bshd->bthd", [(2, 3, 5, 6), (2, 6, 3, 4)], None),  # attention context
    ("btd,df->btf", [(2, 5, 4), (4, 7)], 1),  # dense layer
    ("abc,cde->abde", [(2, 5, 3), (3, 4, 6)], 1),  # Keras-style projection to heads
    ("abcd,cde->abe", [(2, 5, 3, 4), (3, 4, 6)], 1),  # output projection from heads
    ("abcd,cde->abe", [(2, 5, 3, 4), (3, 4, 6)], None),  # two contracted letters, run time
    ("ijk,jkl->il", [(2, 3, 4), (3, 4, 5)], 0),  # a constant left operand
    ("ijk,jk->i", [(2, 3, 4), (3, 4)], None),  # no free letter in B
    ("ij,jk", [(3, 4), (4, 5)], None),  # implicit output
    ("ij,ij->i", [(3, 4), (3, 4)], None),  # batched dot product
    ("i,j->ij", [(3,), (4,)], None),  # outer product
    ("ab,cd->abcd", [(2, 3), (4, 5)], None),  # outer product, several free letters
    ("abc,cd->", [(2, 3, 4), (4, 5)], None),  # letters summed alone, scalar output
    ("bij,bjk->bki", [(2, 3, 4), (2, 4, 5)], None),  # transposed output
    ("abcd,adbe->acbe", [(2, 3, 4, 5), (2, 5, 3, 6)], None),
    ("xay,yzb->bxza", [(2, 3, 4), (4, 5, 6)], None),
    ("nchw,oc->nohw", [(2, 3, 4, 5), (6, 3)], 1),  # a 1×1 convolution
    ("bqd,bkd->bqk", [(2, 3, 4), (1, 5, 4)], None),  # a broadcast batch axis
    ("...ij,...jk->...ik", [(2, 3, 4, 5), (2, 3, 5, 6)], None),
    ("b...d,bd->b...", [(2, 3, 4, 5), (2, 5)], None),
    ("btd,dhk->bthk", [(2, 5, 4), (4, 3, 2)], 1),  # dense layer split into heads
    ("oc,nchw->nohw", [(6, 3), (2, 3, 4, 5)], 0),  # constant first operand
    ("abc,c->ab", [(2, 3, 4), (4,)], 1),  # dense layer to one unit
    ("btd,dz->bt", [(2, 5, 4), (4, 3)], 1),  # a weight letter summed alone
    ("btd,hk->bthk", [(2, 5, 4), (3, 2)], 1),  # nothing contracted
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)], None),  # three operands, left to right
    ("bij,jk,bk->bi", [(2, 3, 4), (4, 5), (2, 5)], 1),  # a constant in the middle
    ("i,i,i->", [(4,), (4,), (4,)], None),
    ("ij->ji", [(3, 4)], None),
    ("ijk->j", [(3, 4, 5)], None),
]


def _output_shape(equation: str, arrays) -> list[int] | None:
    try:
        return list(np.einsum(equation, *arrays).shape)
    except ValueError:  # an equation numpy reads differently (ONNX Runtime decides)
        return None


def _einsum_model(equation: str, shapes, constant: int | None, opset: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    names = [f"x{i}" for i in range(len(shapes))]
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, list(array.shape))
        for i, (name, array) in enumerate(zip(names, arrays, strict=True))
        if i != constant
    ]
    initializers = (
        [numpy_helper.from_array(arrays[constant], names[constant])] if constant is not None else []
    )
    graph = helper.make_graph(
        [helper.make_node("Einsum", names, ["y"], equation=equation, name="einsum")],
        "einsum",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, _output_shape(equation, arrays))],
        initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    feeds = {
        name: array
        for i, (name, array) in enumerate(zip(names, arrays, strict=True))
        if i != constant
    }
    return proto, feeds


@pytest.mark.parametrize("opset", [12, 17])
@pytest.mark.parametrize(("equation", "shapes", "constant"), CASES)
def test_lowered_einsum_computes_the_same(equation, shapes, constant, opset):
    proto, feeds = _einsum_model(equation, shapes, constant, opset)
    (expected,) = run(proto, feeds)
    result = preprocess(proto)
    ops = set(op_types(result.model))
    assert "Einsum" not in ops and ops <= LAYOUT_OPS, ops
    onnx.checker.check_model(result.model, full_check=True)
    (actual,) = run(result.model, feeds)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    assert [o.name for o in result.model.graph.output] == ["y"]


@pytest.mark.parametrize(
    ("equation", "shapes", "reason"),
    [
        ("ii->i", [(3, 3)], "repeats within one term"),
        ("iJ,Jk", [(2, 3), (3, 4)], "mixed-case"),
    ],
)
def test_equations_it_cannot_lower_stay_einsum_with_a_note(equation, shapes, reason):
    proto, feeds = _einsum_model(equation, shapes, None, 17)
    result = preprocess(proto)
    assert "Einsum" in op_types(result.model)
    assert any("Einsum left as it is" in note and reason in note for note in result.notes)
    np.testing.assert_allclose(run(result.model, feeds)[0], run(proto, feeds)[0], rtol=1e-6)


def test_the_input_model_is_not_modified():
    proto, _ = _einsum_model("btd,df->btf", [(2, 5, 4), (4, 7)], 1, 17)
    before = proto.SerializeToString()
    preprocess(proto)
    assert proto.SerializeToString() == before


@pytest.mark.parametrize(
    ("equation", "bias_shape", "absorbed"),
    [
        ("btd,dhk->bthk", (3, 2), True),  # Keras EinsumDense / Flax DenseGeneral + bias
        ("btd,dhk->bthk", (1, 1, 3, 1), True),  # broadcast over head_dim
        ("btd,dhk->bhtk", (3, 1, 2), True),  # units apart in the output
        ("btd,dhk->bthk", (5, 1, 1), False),  # varies along the tokens: stays an Add after
        ("btd,df->btf", (7,), False),  # one unit letter: the Add already follows a MatMul
    ],
)
def test_a_bias_over_several_unit_letters_is_added_before_the_split(equation, bias_shape, absorbed):
    rng = np.random.default_rng(1)
    weight_shape = (4, 3, 2) if "dhk" in equation else (4, 7)
    nodes = [
        helper.make_node("Einsum", ["x", "w"], ["e"], equation=equation, name="einsum"),
        helper.make_node("Add", ["e", "b"], ["y"], name="bias"),
    ]
    graph = helper.make_graph(
        nodes,
        "bias",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(rng.standard_normal(weight_shape).astype(np.float32), "w"),
            numpy_helper.from_array(rng.standard_normal(bias_shape).astype(np.float32), "b"),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    feeds = {"x": rng.standard_normal((2, 5, 4)).astype(np.float32)}
    result = preprocess(proto).model
    ops = op_types(result)
    np.testing.assert_allclose(run(result, feeds)[0], run(proto, feeds)[0], rtol=1e-5, atol=1e-5)
    if absorbed:  # MatMul, Add of one vector per unit, then the split
        assert ops.index("MatMul") < ops.index("Add") < ops.index("Reshape")
        add = next(n for n in result.graph.node if n.op_type == "Add")
        bias = next(i for i in result.graph.initializer if i.name in add.input)
        assert list(bias.dims) == [6]
    else:
        assert ops[-1] == "Add"
