"""float32 copies of half-precision models for differentiation (autodiff.precision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from onnxprune.autodiff.precision import float32_copy, float32_feeds, has_half_precision
from tests.half import to_float16

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


def _run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _types(model) -> set[int]:
    graph = model.graph
    found = {init.data_type for init in graph.initializer}
    found |= {v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]}
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                found.add(attribute.t.data_type)
            if attribute.name in ("to", "dtype") and attribute.type == onnx.AttributeProto.INT:
                found.add(attribute.i)
    return found


def test_a_float16_model_gets_a_float32_copy_that_computes_the_same() -> None:
    half = to_float16(onnx.load(str(DIGITS / "digits_mbv2.onnx")))
    snapshot = half.SerializeToString()
    assert has_half_precision(half)
    copy = float32_copy(half)
    assert half.SerializeToString() == snapshot  # the input model is not modified
    assert TensorProto.FLOAT16 not in _types(copy)
    assert [i.name for i in copy.graph.initializer] == [i.name for i in half.graph.initializer]
    x = np.load(DIGITS / "digits_calib.npz")["input"][:8].astype(np.float16)
    expected = _run(half, {"input": x}).astype(np.float32)
    got = _run(copy, float32_feeds({"input": x}))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=0.05 * np.abs(expected).max())


def test_casts_constants_and_subgraphs_are_upcast() -> None:
    two = numpy_helper.from_array(np.array([2.0], np.float16), "c")
    then = helper.make_graph(
        [helper.make_node("Constant", [], ["t"], value=two)],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT16, [1])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
            helper.make_node("If", ["flag"], ["k"], then_branch=then, else_branch=then),
            helper.make_node("Mul", ["h", "k"], ["y"]),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    copy = float32_copy(model)
    assert TensorProto.FLOAT16 not in _types(copy)
    assert TensorProto.FLOAT16 not in _types(
        helper.make_model(copy.graph.node[1].attribute[0].g, ir_version=8)
    )
    feeds = {"x": np.array([1.5], np.float32), "flag": np.array(True)}
    assert _run(copy, feeds).tolist() == [3.0]


def test_a_float32_model_is_returned_as_it_is() -> None:
    model = onnx.load(str(DIGITS / "digits_vgg.onnx"))
    assert not has_half_precision(model)
    assert float32_copy(model) is model
