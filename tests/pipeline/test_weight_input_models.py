"""Models whose weights are also listed as graph inputs: IR 3 (the ONNX Model Zoo's opset 7-8
files) and later exports that keep initializers as inputs (PyTorch's
``keep_initializers_as_inputs=True``).

The doors lift them (weights are constants, not inputs; IR 3 becomes IR 4); every command then
writes a valid model without weight inputs that ONNX Runtime runs, and the input file is never
modified.
"""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from onnxprune.analysis import analyze
from onnxprune.cli import cli
from onnxprune.passes import preprocess
from tests.oracle import assert_mask_equivalent, random_feeds, random_removal


@pytest.fixture(scope="module")
def ir3_resnet(zoo_onnx):
    """The zoo ResNet-18 exported at opset 8 with its BatchNormalization nodes: IR 3."""
    path = zoo_onnx("resnet18", opset=8, keep_batchnorm=True)
    model = onnx.load(str(path))
    weights = {tensor.name for tensor in model.graph.initializer}
    assert model.ir_version == 3 and weights <= {value.name for value in model.graph.input}
    return path


@pytest.fixture(scope="module")
def kept_inputs_mobilenet(zoo_onnx, tmp_path_factory):
    """The zoo MobileNetV2 at opset 17 (IR 8) with every weight also listed as a graph input."""
    model = onnx.load(str(zoo_onnx("mobilenetv2")))
    for tensor in model.graph.initializer:
        model.graph.input.append(
            onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
        )
    assert model.ir_version >= 8
    path = tmp_path_factory.mktemp("kept_inputs") / "mobilenetv2-kept-inputs.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(params=["ir3_resnet", "kept_inputs_mobilenet"])
def weight_input_model(request):
    return request.getfixturevalue(request.param)


def _weight_inputs(model: onnx.ModelProto) -> set[str]:
    weights = {tensor.name for tensor in model.graph.initializer}
    return weights & {value.name for value in model.graph.input}


def test_preprocess_lifts_ir3_to_ir4_and_stays_mask_equivalent(ir3_resnet):
    model = onnx.load(str(ir3_resnet))
    result = preprocess(model)
    assert model.ir_version == 3  # the argument is not modified
    assert result.model.ir_version == 4 and not _weight_inputs(result.model)
    assert [v.name for v in result.model.graph.input] == ["input"]
    assert any("also listed as graph inputs" in note for note in result.notes)
    analysis = analyze(result.model, allow_norm_stats=False)
    assert analysis.prunable_macs() == analysis.total_macs > 0
    assert_mask_equivalent(
        analysis, random_removal(analysis, seed=0),
        feeds=random_feeds(analysis.model, 2, 0), tol=1e-4,
    )  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [
        ["prune", "--ratio", "0.3"],
        ["sparsify", "--sparsity", "0.5", "--min-size", "0"],
        ["sparsify", "--sparsity", "0.5", "--criterion", "obs", "--data", "{data}"],
    ],
    ids=["prune", "sparsify", "sparsify-obs"],
)
def test_commands_write_a_runnable_model_without_weight_inputs(
    weight_input_model, tmp_path, command
):
    """The OBS reconstruction runs sub-models of the graph: with the weights still inputs they
    asked to be fed them (an internal error before the lift covered every IR version)."""
    source = onnx.load(str(weight_input_model))
    data = tmp_path / "calib.npz"
    shape = [d.dim_value for d in source.graph.input[0].type.tensor_type.shape.dim][1:]
    rng = np.random.default_rng(0)
    np.savez(data, input=rng.standard_normal((16, *shape)).astype(np.float32))
    before = hashlib.sha256(weight_input_model.read_bytes()).hexdigest()
    out = tmp_path / "out.onnx"
    args = [part.format(data=data) for part in command[1:]]
    result = CliRunner().invoke(cli, [command[0], str(weight_input_model), *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert hashlib.sha256(weight_input_model.read_bytes()).hexdigest() == before
    written = onnx.load(str(out))
    onnx.checker.check_model(written, full_check=True)
    assert written.ir_version == max(4, source.ir_version) and not _weight_inputs(written)
    assert [v.name for v in written.graph.input] == ["input"]
    feeds = random_feeds(written, 2, 0)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds)
    assert outputs[0].shape[0] == 2 and np.isfinite(outputs[0]).all()


def test_optimize_with_gradient_methods_on_an_ir3_model(ir3_resnet, tmp_path):
    """Taylor scores and distillation differentiate a converted copy (autodiff.prepare); the
    written model is the IR-4 lift of the input's own graph."""
    data = tmp_path / "calib.npz"
    rng = np.random.default_rng(0)
    np.savez(data, input=rng.standard_normal((48, 3, 32, 32)).astype(np.float32))
    out = tmp_path / "out.onnx"
    args = ["optimize", str(ir3_resnet), "--target", "macs=0.8", "--data", str(data)]
    args += ["--criterion", "taylor", "--recover", "lsq+distill", "--allocation", "global"]
    args += ["--steps", "1", "--max-drop", "100", "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    written = onnx.load(str(out))
    onnx.checker.check_model(written, full_check=True)
    assert written.ir_version == 4 and written.opset_import[0].version == 8
    assert not _weight_inputs(written)
