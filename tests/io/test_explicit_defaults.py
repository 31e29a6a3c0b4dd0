"""Attributes left to a default that onnx's own inference cannot read are written out at load."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from onnxprune.io.explicit_defaults import write_explicit_defaults
from onnxprune.io.load import load_model


def _mvn_model(opset: int, **attributes) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=(4, 8, 1, 1)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c"], name="conv1"),
        helper.make_node("MeanVarianceNormalization", ["c"], ["n"], name="mvn", **attributes),
        helper.make_node("Conv", ["n", "w2"], ["y"], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 6, 6])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def test_mean_variance_normalization_without_axes_loads_and_computes_the_same(tmp_path):
    """The spec's default axes are (0, 2, 3); onnx's inference of the op's function body fails
    without the attribute, so the loader's strict check rejected a model ONNX Runtime runs."""
    import onnxprune

    model = _mvn_model(13)
    path = tmp_path / "mvn.onnx"
    onnx.save(model, path)
    loaded = load_model(path)
    (node,) = (n for n in loaded.graph.node if n.op_type == "MeanVarianceNormalization")
    assert [a.name for a in node.attribute] == ["axes"] and list(node.attribute[0].ints) == [
        0,
        2,
        3,
    ]
    x = np.random.default_rng(1).normal(size=(2, 3, 8, 8)).astype(np.float32)
    outputs = [
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": x}
        )[0]
        for m in (model, loaded)
    ]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    result = onnxprune.prune(str(path), ratio=0.5, criterion="l1", round_to=1)
    (w1,) = (t for t in result.model.graph.initializer if t.name == "w1")
    assert w1.dims[0] == 4  # MVN normalizes each channel by its own values: prunable


def test_given_attributes_and_older_opsets_are_left_alone():
    given = _mvn_model(13, axes=[0, 1, 2, 3])
    assert write_explicit_defaults(given) == 0
    assert list(given.graph.node[1].attribute[0].ints) == [0, 1, 2, 3]
    old = _mvn_model(8)  # the experimental op: legacy_ops rewrites it, no axes attribute
    assert write_explicit_defaults(old) == 0
