"""ZipMap outputs (skl2onnx / onnxmltools classifiers) are measured as the probability tensors
they view, and written as they were."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from onnxprune.cli import cli
from onnxprune.graph.tensor_outputs import non_tensor_sources, tensor_output_model

CLASSES = 6


def zipmap_classifier(zipmap: bool = True) -> onnx.ModelProto:
    """x (N, 32) → MatMul 32×64 → Relu → MatMul 64×6 → Softmax → label (ArgMax) and
    probabilities (a ZipMap of them, or the tensor itself), as skl2onnx writes an MLP."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["logits"], name="fc2"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], name="argmax", axis=1, keepdims=0),
    ]
    outputs = [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])]
    if zipmap:
        nodes.append(
            helper.make_node(
                "ZipMap", ["probabilities"], ["output_probability"], name="zipmap",
                domain="ai.onnx.ml", classlabels_int64s=list(range(CLASSES)),
            )
        )  # fmt: skip
        sequence = helper.make_sequence_type_proto(
            helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(1, []))
        )
        outputs.append(helper.make_value_info("output_probability", sequence))
    else:
        outputs.append(
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", CLASSES])
        )
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
        outputs,
        [
            numpy_helper.from_array(rng.normal(size=(32, 64)).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.normal(size=(64, CLASSES)).astype(np.float32), "w2"),
        ],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def test_the_measured_copy_has_the_probabilities_as_a_tensor():
    model = zipmap_classifier()
    assert non_tensor_sources(model) == {"output_probability": "probabilities"}
    measured = tensor_output_model(model)
    assert [value.name for value in measured.graph.output] == ["label", "probabilities"]
    assert len(measured.graph.output[1].type.tensor_type.shape.dim) == 2  # read as class scores
    assert "ZipMap" not in {node.op_type for node in measured.graph.node}
    plain = zipmap_classifier(zipmap=False)
    assert tensor_output_model(plain) is plain
    x = np.random.default_rng(1).normal(size=(3, 32)).astype(np.float32)
    session = ort.InferenceSession(measured.SerializeToString(), providers=["CPUExecutionProvider"])
    probabilities = session.run(["probabilities"], {"x": x})[0]
    assert probabilities.shape == (3, CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zipmap")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(96, 32)).astype(np.float32)
    np.savez(folder / "calib.npz", x=x[:64])
    np.savez(folder / "eval.npz", x=x[64:])
    for zipmap in (True, False):
        onnx.save(zipmap_classifier(zipmap), str(folder / f"mlp-{zipmap}.onnx"))
    return folder


@pytest.mark.parametrize(
    "command",
    [
        ["prune", "--ratio", "0.3"],
        ["sparsify", "--sparsity", "0.5", "--criterion", "obs", "--data", "{folder}/calib.npz",
         "--min-size", "0"],
        ["optimize", "--target", "macs=0.7", "--data", "{folder}/calib.npz", "--eval",
         "{folder}/eval.npz", "--max-drop", "100"],
        ["optimize", "--target", "macs=0.7", "--data", "{folder}/calib.npz", "--eval",
         "{folder}/eval.npz", "--max-drop", "100", "--criterion", "taylor", "--recover",
         "lsq+distill"],
        ["sparsify", "--sparsity", "0.5", "--criterion", "taylor", "--data",
         "{folder}/calib.npz", "--min-size", "0"],
    ],
    ids=["prune", "sparsify-obs", "optimize", "optimize-taylor-distill", "sparsify-taylor"],
)  # fmt: skip
def test_commands_measure_through_the_zipmap_and_keep_it(files, tmp_path, command):
    """Before: prune stopped with an internal error (the rewrite declared the ZipMap output a
    tensor), optimize refused the model, sparsify measured its output gains on no float
    output (all zero: one layer took 95 % of the zeros), and gradient criteria built their
    loss on the int64 label output (an internal error, with or without the ZipMap)."""
    written = {}
    for zipmap in (True, False):
        out = tmp_path / f"out-{zipmap}.onnx"
        args = [part.format(folder=files) for part in command[1:]]
        model = files / f"mlp-{zipmap}.onnx"
        result = CliRunner().invoke(cli, [command[0], str(model), *args, "-o", str(out)])
        assert result.exit_code == 0, result.output
        written[zipmap] = onnx.load(str(out))
    onnx.checker.check_model(written[True], full_check=True)
    assert "ZipMap" in {node.op_type for node in written[True].graph.node}
    assert written[True].graph.output[1].type.WhichOneof("value") == "sequence_type"
    x = np.load(files / "eval.npz")["x"]  # the same decisions with and without the ZipMap
    outputs = [
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            ["probabilities"], {"x": x}
        )[0]
        for model in (tensor_output_model(written[True]), written[False])
    ]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-6)
