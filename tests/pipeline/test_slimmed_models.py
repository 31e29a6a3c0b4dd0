"""Models run through onnxslim first (ultralytics does it on every export, many users do it by
hand): the door takes them (onnxslim repeats every value_info annotation), the analysis finds
the same prunable share as on the plain export, removal stays mask-equivalent, and prune and
sparsify write models ONNX Runtime runs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import onnxslim
import pytest
from click.testing import CliRunner

from onnxprune.analysis import analyze
from onnxprune.cli import cli
from onnxprune.io import load_model
from onnxprune.passes import preprocess
from tests.oracle import prove_random_removals, random_feeds


@pytest.fixture(scope="module", params=["resnet18", "mobilenetv2", "bert"])
def slimmed(request, zoo_onnx, tmp_path_factory):
    plain = zoo_onnx(request.param)
    path = tmp_path_factory.mktemp("slim") / f"{request.param}-slim.onnx"
    onnx.save(onnxslim.slim(onnx.load(str(plain))), str(path))
    return plain, path


def _analysis(path):
    return analyze(preprocess(load_model(path)).model, allow_norm_stats=False)


def test_same_prunable_share_and_mask_equivalent(slimmed):
    plain, path = slimmed
    analysis, reference = _analysis(path), _analysis(plain)
    assert analysis.prunable_macs() == reference.prunable_macs() > 0
    assert analysis.total_macs == reference.total_macs
    assert prove_random_removals(analysis, seeds=2) == "ok"


@pytest.mark.parametrize(
    "command",
    [["prune", "--ratio", "0.3"], ["sparsify", "--sparsity", "0.5", "--pattern", "2:4"]],
    ids=["prune", "sparsify"],
)
def test_commands_write_a_runnable_model(slimmed, tmp_path, command):
    _, path = slimmed
    out = tmp_path / "out.onnx"
    result = CliRunner().invoke(cli, [command[0], str(path), *command[1:], "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = onnx.load(str(out))
    onnx.checker.check_model(written, full_check=True)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    outputs = session.run(None, random_feeds(written, 2, 0))
    assert all(np.isfinite(output).all() for output in outputs)
