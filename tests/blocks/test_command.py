"""``onnxprune prune --blocks N`` and ``onnxprune inspect --blocks`` through the CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from onnxprune.cli import cli
from onnxprune.io import save_model
from tests.blocks.graphs import residual_model


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def model_path(tmp_path):
    return save_model(residual_model(second_unit=True, small_second=True), tmp_path / "m.onnx")


def test_inspect_blocks_table_and_json(model_path):
    result = invoke("inspect", model_path, "--blocks")
    assert result.exit_code == 0, result.output
    assert "residual units" in result.output
    assert "2 removable unit(s)" in result.output
    result = invoke("inspect", model_path, "--blocks", "--json")
    assert result.exit_code == 0, result.output
    blocks = json.loads(result.output)["blocks"]
    assert [u["add"] for u in blocks["units"]] == ["add", "add2"]
    assert 0 < blocks["removable_mac_share"] < 1
    assert blocks["stages"] == [[0, 1]]


def test_prune_blocks_writes_a_valid_model(model_path, tmp_path):
    data = tmp_path / "calib.npz"
    np.savez(data, input=np.random.default_rng(0).standard_normal((8, 8, 6, 6)).astype("f4"))
    out = tmp_path / "out.onnx"
    result = invoke(
        "prune", model_path, "--blocks", 1, "--blocks-data", data, "-o", out, "--json", "-"
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["removed_units"] == ["add2"] and plan["criterion"] == "influence"
    written = onnx.load(out)
    onnx.checker.check_model(written, full_check=True)
    assert [o.name for o in written.graph.output] == ["out"]


def test_prune_blocks_more_than_units_exits_2_with_one_line(model_path, tmp_path):
    result = invoke("prune", model_path, "--blocks", 3, "-o", tmp_path / "out.onnx")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "exceeds the 2 removable unit" in lines[0]
    assert not (tmp_path / "out.onnx").exists()
