"""IR-3 models (every weight also listed as a graph input: the ONNX Model Zoo's opset 7-8 files).

Preprocessing lifts them to IR 4 (weights are constants, not inputs); every command then
writes a valid IR-4 model that ONNX Runtime runs, and the input file is never modified.
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


def _weight_inputs(model: onnx.ModelProto) -> set[str]:
    weights = {tensor.name for tensor in model.graph.initializer}
    return weights & {value.name for value in model.graph.input}


def test_preprocess_lifts_ir3_to_ir4_and_stays_mask_equivalent(ir3_resnet):
    model = onnx.load(str(ir3_resnet))
    result = preprocess(model)
    assert model.ir_version == 3  # the argument is not modified
    assert result.model.ir_version == 4 and not _weight_inputs(result.model)
    assert [v.name for v in result.model.graph.input] == ["input"]
    assert any("IR version 3" in note for note in result.notes)
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
    ],
    ids=["prune", "sparsify"],
)
def test_commands_write_a_runnable_ir4_model(ir3_resnet, tmp_path, command):
    before = hashlib.sha256(ir3_resnet.read_bytes()).hexdigest()
    out = tmp_path / "out.onnx"
    result = CliRunner().invoke(cli, [command[0], str(ir3_resnet), *command[1:], "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert hashlib.sha256(ir3_resnet.read_bytes()).hexdigest() == before
    written = onnx.load(str(out))
    onnx.checker.check_model(written, full_check=True)
    assert written.ir_version == 4 and not _weight_inputs(written)
    feeds = random_feeds(written, 2, 0)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds)
    assert outputs[0].shape == (2, 1000) and np.isfinite(outputs[0]).all()


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
