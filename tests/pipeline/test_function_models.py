"""Models whose layers are ONNX local functions (PyTorch's ``export_modules_as_functions``):
the door inlines the calls, so MACs, the channel analysis and sparsity see every Conv; the
result computes what the file computes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from models import build_model
from onnxprune.analysis import analyze
from onnxprune.cli import cli
from onnxprune.io import load_model
from onnxprune.passes import preprocess
from onnxprune.stats import summarize
from tests.oracle import prove_random_removals, random_feeds


def _export(path, functions: bool):
    model = build_model("resnet18", 0.25, None, 0, size=32, depth=1.0).eval()
    kwargs = {"export_modules_as_functions": {torch.nn.Conv2d}} if functions else {}
    torch.onnx.export(
        model, (torch.randn(1, 3, 32, 32),), str(path), opset_version=17, dynamo=False,
        input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}},
        **kwargs,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("functions")
    functions = _export(folder / "functions.onnx", True)
    assert onnx.load(str(functions)).functions  # the exporter still writes them
    return _export(folder / "plain.onnx", False), functions


def test_the_door_inlines_functions_with_the_same_outputs(exports):
    plain, functions = exports
    loaded = load_model(functions)
    assert not loaded.functions and "Conv" in {node.op_type for node in loaded.graph.node}
    feeds = random_feeds(loaded, 2, 0)
    inlined = ort.InferenceSession(loaded.SerializeToString(), providers=["CPUExecutionProvider"])
    original = ort.InferenceSession(str(functions), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        inlined.run(None, feeds)[0], original.run(None, feeds)[0], rtol=1e-5, atol=1e-5
    )
    assert summarize(loaded).macs == summarize(load_model(plain)).macs


def test_analysis_and_commands_see_the_layers_inside(exports, tmp_path):
    plain, functions = exports
    analysis = analyze(preprocess(load_model(functions)).model, allow_norm_stats=False)
    reference = analyze(preprocess(load_model(plain)).model, allow_norm_stats=False)
    assert analysis.prunable_macs() == reference.prunable_macs() > 0
    assert prove_random_removals(analysis, seeds=1) == "ok"
    for command in (["prune", "--ratio", "0.3"], ["sparsify", "--sparsity", "0.5"]):
        out = tmp_path / f"{command[0]}.onnx"
        result = CliRunner().invoke(cli, [command[0], str(functions), *command[1:], "-o", str(out)])
        assert result.exit_code == 0, result.output
        onnx.checker.check_model(onnx.load(str(out)), full_check=True)
