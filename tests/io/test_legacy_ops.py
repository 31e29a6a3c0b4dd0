"""Experimental ops of ONNX's first opsets are rewritten at load to standard ops that give the
same outputs as ONNX Runtime's kernels of the experimental ops (which ORT still runs)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.io.legacy_ops import lower_legacy_ops, lowered_op_types
from onnxprune.io.load import load_model

CASES = [
    ("ImageScaler", {"scale": 0.5, "bias": [1.0, -2.0, 3.0]}),
    ("ImageScaler", {"bias": [0.1, 0.2, 0.3]}),
    ("Affine", {"alpha": 2.0, "beta": -0.5}),
    ("Affine", {}),
    ("Scale", {"scale": 3.0}),
    ("ScaledTanh", {"alpha": 2.0, "beta": 0.5}),
    ("ScaledTanh", {"alpha": 1.0, "beta": 1.0}),
    ("ParametricSoftplus", {"alpha": 1.5, "beta": 0.7}),
    ("ThresholdedRelu", {"alpha": 0.3}),
    ("ThresholdedRelu", {}),
    ("Crop", {"border": [1, 2, 1, 1]}),
    ("Crop", {"border": [0, 0, 2, 3]}),
    ("Crop", {"border": [1, 2, 0, 0], "scale": [4, 5]}),
    ("MeanVarianceNormalization", {}),
    ("MeanVarianceNormalization", {"across_channels": 1}),
    ("MeanVarianceNormalization", {"normalize_variance": 0}),
]


def _single(op_type: str, attributes: dict, opset: int, ir_version: int = 4) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 9])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)
    node = helper.make_node(op_type, ["x"], ["y"], name="legacy", **attributes)
    model = helper.make_model(
        helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", opset)]
    )
    model.ir_version = ir_version
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


# MeanVarianceNormalization is a standard op from opset 9 on (not rewritten there)
PER_OPSET = [
    (op_type, attributes, opset)
    for op_type, attributes in CASES
    for opset in (7, 8, 9)
    if not (op_type == "MeanVarianceNormalization" and opset >= 9)
]


@pytest.mark.parametrize(("op_type", "attributes", "opset"), PER_OPSET)
def test_lowering_matches_onnxruntime_kernel(op_type, attributes, opset):
    model = _single(op_type, attributes, opset)
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 9)).astype(np.float32)
    expected = _run(model, x)
    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    assert lower_legacy_ops(lowered) == [f"{op_type} × 1"]
    assert op_type not in {node.op_type for node in lowered.graph.node}
    onnx.checker.check_model(lowered, full_check=True)
    actual = _run(lowered, x)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_crop_at_opset_10_uses_slice_inputs():
    model = _single("Crop", {"border": [1, 2, 1, 1]}, 10)
    x = np.random.default_rng(1).normal(size=(2, 3, 8, 9)).astype(np.float32)
    assert lower_legacy_ops(model) == ["Crop × 1"]
    (node,) = model.graph.node
    assert node.op_type == "Slice" and len(node.input) == 4
    np.testing.assert_array_equal(_run(model, x), x[:, :, 2:-1, 1:-1])


def test_standard_ops_and_known_schemas_are_left_alone():
    model = _single("MeanVarianceNormalization", {}, 9)  # opset 9's standard op
    before = model.SerializeToString()
    assert lower_legacy_ops(model) == []
    assert model.SerializeToString() == before
    relu = _single("Relu", {}, 13)
    assert lower_legacy_ops(relu) == []


def test_declined_lowering_keeps_the_node_for_the_schema_check(tmp_path):
    model = _single("Crop", {"border": [1, 2]}, 8)  # not four borders: declined
    assert lower_legacy_ops(model) == []
    path = tmp_path / "crop.onnx"
    onnx.save(model, path)
    from onnxprune.errors import InputError

    with pytest.raises(InputError, match="unknown op 'Crop'"):
        load_model(path)


def _image_scaler_network(ir_version: int) -> onnx.ModelProto:
    """ImageScaler → Conv → Relu → Conv at opset 8, the way Tiny YOLOv2 starts."""
    rng = np.random.default_rng(2)
    weights = [
        numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(size=(4, 8, 1, 1)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("ImageScaler", ["x"], ["s"], scale=1 / 255, bias=[-0.5, -0.4, -0.3]),
        helper.make_node("Conv", ["s", "w1", "b1"], ["c"], name="conv1"),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 14, 14])
    inputs = [x]
    if ir_version < 4:
        inputs += [
            helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in weights
        ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, [y], weights),
        opset_imports=[helper.make_opsetid("", 8)],
    )
    model.ir_version = ir_version
    return model


@pytest.mark.parametrize("ir_version", [3, 4])
def test_loaded_model_runs_and_prunes(tmp_path, ir_version):
    import onnxprune

    model = _image_scaler_network(ir_version)
    path = tmp_path / "scaler.onnx"
    onnx.save(model, path)
    before = path.read_bytes()
    loaded = load_model(path)
    assert "ImageScaler" not in {node.op_type for node in loaded.graph.node}
    assert path.read_bytes() == before  # the input file is never modified
    x = np.random.default_rng(3).uniform(0, 255, size=(1, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(_run(loaded, x), _run(model, x), rtol=1e-5, atol=1e-5)
    result = onnxprune.prune(str(path), ratio=0.5, criterion="l1", round_to=1)
    kinds = {node.op_type for node in result.model.graph.node}
    assert "ImageScaler" not in kinds
    (conv1,) = (t for t in result.model.graph.initializer if t.name == "w1")
    assert conv1.dims[0] == 4  # half of conv1's 8 channels removed
    # the report says what was rewritten at load; the written model records it
    assert any("rewritten at load" in n and "ImageScaler × 1" in n for n in result.plan.notes)
    assert {e.key: e.value for e in result.model.metadata_props}[
        "onnxprune.legacy_ops_lowered"
    ] == "ImageScaler × 1"


def _dynamic_slice(opset: int, axes: bool) -> onnx.ModelProto:
    names = ["x", "starts", "ends"] + (["axes"] if axes else [])
    constants = [
        numpy_helper.from_array(np.array([1, 2], np.int64), "starts"),
        numpy_helper.from_array(np.array([5, -1], np.int64), "ends"),
    ]
    if axes:
        constants.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 9])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)
    node = helper.make_node("DynamicSlice", names, ["y"], name="slice")
    model = helper.make_model(
        helper.make_graph([node], "g", [x], [y], constants),
        opset_imports=[helper.make_opsetid("", opset)],
    )
    model.ir_version = 4
    return model


@pytest.mark.parametrize("opset", [7, 8, 9])
@pytest.mark.parametrize("axes", [True, False])
def test_dynamic_slice_matches_onnxruntime_kernel(opset, axes):
    model = _dynamic_slice(opset, axes)
    x = np.random.default_rng(4).normal(size=(2, 3, 8, 9)).astype(np.float32)
    expected = _run(model, x)
    assert lower_legacy_ops(model) == ["DynamicSlice × 1"]
    (node,) = model.graph.node
    assert node.op_type == "Slice"
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_array_equal(_run(model, x), expected)


def test_dynamic_slice_of_runtime_bounds_or_at_opset_10_is_declined():
    model = _dynamic_slice(8, axes=True)
    del model.graph.initializer[0]  # starts becomes a graph input: not a constant
    model.graph.input.append(helper.make_tensor_value_info("starts", TensorProto.INT64, [2]))
    assert lower_legacy_ops(model) == []
    assert model.graph.node[0].op_type == "DynamicSlice"
    later = _dynamic_slice(10, axes=True)  # ONNX Runtime does not run it at opset 10 either
    assert lower_legacy_ops(later) == []


def test_every_registered_lowering_is_tested():
    assert {op for op, _ in CASES} | {"DynamicSlice"} == set(lowered_op_types())
