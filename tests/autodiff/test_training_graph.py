"""fold_zero_pads: the differentiated graph computes the same values and gradients."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.autodiff import (
    build_gradient_model,
    fold_zero_pads,
    gradient_name,
    mean_squared_error,
    target_name,
)


def _model(pad_value: float = 0.0, second_reader: str = "Conv", mode: str = "constant"):
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "pads"),
        numpy_helper.from_array(np.array(pad_value, np.float32), "value"),
        numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((2, 4, 3, 2)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal(2).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Pad", ["x", "pads", "value"], ["padded"], mode=mode),
        helper.make_node("Conv", ["padded", "w1"], ["y1"], group=4, strides=[2, 1]),
    ]
    if second_reader == "Conv":
        nodes.append(helper.make_node("Conv", ["padded", "w2", "b2"], ["y2"], pads=[1, 0, 0, 1]))
    else:
        nodes.append(helper.make_node(second_reader, ["padded"], ["y2"]))
    graph = helper.make_graph(
        nodes,
        "pads",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 7, 6])],
        [
            helper.make_tensor_value_info("y1", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("y2", TensorProto.FLOAT, None),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return onnx.shape_inference.infer_shapes(model)


def _run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [value.name for value in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((2, 4, 7, 6)).astype(np.float32)


def test_zero_pad_read_by_convs_is_folded(x) -> None:
    model = _model()
    folded = fold_zero_pads(model)
    onnx.checker.check_model(folded, full_check=True)
    assert [n.op_type for n in folded.graph.node] == ["Conv", "Conv"]
    pads = {n.output[0]: list(n.attribute[-1].ints) for n in folded.graph.node}
    assert pads == {"y1": [1, 2, 2, 1], "y2": [2, 2, 2, 2]}
    assert {i.name for i in folded.graph.initializer} == {i.name for i in model.graph.initializer}
    before, after = _run(model, {"x": x}), _run(folded, {"x": x})
    for name in before:
        np.testing.assert_allclose(after[name], before[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "variant",
    [
        {"pad_value": 1.0},  # not a zero pad
        {"second_reader": "Relu"},  # a reader that is not a Conv
        {"mode": "reflect"},
    ],
)
def test_other_pads_stay(variant) -> None:
    model = _model(**variant)
    assert fold_zero_pads(model).graph.node[0].op_type == "Pad"


def test_kept_tensor_stays() -> None:
    model = _model()
    assert fold_zero_pads(model, keep=["padded"]).graph.node[0].op_type == "Pad"


def test_gradients_of_folded_graph_match(x) -> None:
    model = _model()
    loss = mean_squared_error(model, ["y1", "y2"])
    wrt = ["w1", "w2", "b2"]
    feeds = {"x": x}
    outputs = _run(model, feeds)
    rng = np.random.default_rng(2)
    for name in ("y1", "y2"):
        feeds[target_name(name)] = (
            outputs[name] + rng.standard_normal(outputs[name].shape)
        ).astype(np.float32)
    plain = _run(build_gradient_model(model, loss, wrt), feeds)
    folded = _run(build_gradient_model(fold_zero_pads(model), loss, wrt), feeds)
    for name in wrt:
        np.testing.assert_allclose(
            folded[gradient_name(name)], plain[gradient_name(name)], rtol=1e-4, atol=1e-4
        )
