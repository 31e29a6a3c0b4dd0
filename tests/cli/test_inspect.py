"""``onnxprune inspect``: tables, JSON, and one-line errors with exit code 2 for bad models."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import onnx
import pytest
from click.testing import CliRunner

from onnxprune.cli import cli
from onnxprune.io import save_model
from onnxprune.stats import summarize
from tests.io.tiny_models import mlp_model
from tests.stats.test_summary import CONV_MACS, FC_MACS, PARAMS, conv_net


def invoke(*args):
    return CliRunner().invoke(cli, ["inspect", *[str(a) for a in args]])


@pytest.fixture
def conv_path(tmp_path):
    return save_model(conv_net(), tmp_path / "conv.onnx")


def test_json_output(conv_path):
    result = invoke(conv_path, "--json", "--input-shape", "x:4,3,8,8")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("params", "macs", "param_bytes", "inputs", "outputs", "ops", "layers"):
        assert key in data
    assert data["macs"] == 4 * (CONV_MACS + FC_MACS)
    assert data["params"] == PARAMS and data["param_bytes"] == 4 * PARAMS
    assert data["producer"] == {"name": "tiny", "version": "0.1"}
    assert data["opset"] == {"ai.onnx": 17} and data["ir_version"] == 8
    assert data["inputs"] == [{"name": "x", "dtype": "FLOAT", "shape": ["batch", 3, 8, 8]}]
    assert data["ops"]["Conv"] == 1
    assert [layer["name"] for layer in data["layers"]] == ["conv", "fc"]
    assert data["input_shapes"] == {"x": [4, 3, 8, 8]}
    assert data["file_bytes"] == conv_path.stat().st_size


def test_table_output(conv_path):
    result = invoke(conv_path, "--top", "1")
    assert result.exit_code == 0, result.output
    text = result.stdout
    for expected in ("tiny 0.1", "ai.onnx 17", "[batch, 3, 8, 8]", f"{PARAMS:,}", "Relu"):
        assert expected in text
    total = CONV_MACS + FC_MACS
    assert f"{total:,}" in text
    assert "top 1 of 2" in text
    assert f"{CONV_MACS:,}" in text and f"{CONV_MACS / total:.1%}" in text
    assert re.search(r"│ conv\s+│ Conv", text)
    assert not re.search(r"│ fc\s+│", text)  # second layer not listed with --top 1


def test_external_data_model(tmp_path):
    path = save_model(mlp_model(), tmp_path / "ext.onnx", external_data=True)
    data = json.loads(invoke(path, "--json").stdout)
    assert data["params"] == 32 * 48 + 48 * 16
    assert data["file_bytes"] == path.stat().st_size + (tmp_path / "ext.onnx.data").stat().st_size


def test_zoo_model_json_matches_summary(zoo_onnx):
    path = zoo_onnx("resnet18", "torchscript")
    result = invoke(path, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    summary = summarize(onnx.load_model(path))
    assert data["macs"] == summary.macs > 0
    assert data["params"] == summary.params > 0
    assert data["inputs"][0]["shape"][0] == "batch"
    assert sum(layer["macs"] for layer in data["layers"]) == data["macs"]


def _broken_files(folder):
    """name -> path of a model file that must be refused."""
    files = {}
    files["missing"] = folder / "missing.onnx"
    files["directory"] = folder / "a_directory.onnx"
    files["directory"].mkdir()
    files["empty"] = folder / "empty.onnx"
    files["empty"].write_bytes(b"")
    files["text"] = folder / "text.onnx"
    files["text"].write_text("this is a text file, not a model\n")
    good = mlp_model().SerializeToString()
    files["truncated"] = folder / "truncated.onnx"
    files["truncated"].write_bytes(good[: len(good) // 2])
    files["corrupt"] = folder / "corrupt.onnx"
    files["corrupt"].write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + good[6:])
    future = mlp_model()
    future.ir_version = onnx.IR_VERSION + 1
    files["future_ir"] = folder / "future.onnx"
    files["future_ir"].write_bytes(future.SerializeToString())
    for kind, location in (("absolute", "/etc/hostname"), ("dotdot", "../outside.data")):
        sub = folder / kind
        path = save_model(mlp_model(), sub / "model.onnx", external_data=True)
        skeleton = onnx.load_model(path, load_external_data=False)
        for tensor in skeleton.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        path.write_bytes(skeleton.SerializeToString())
        files[f"escaping_{kind}"] = path
    return files


BROKEN = [
    "missing",
    "directory",
    "empty",
    "text",
    "truncated",
    "corrupt",
    "future_ir",
    "escaping_absolute",
    "escaping_dotdot",
]


@pytest.mark.parametrize("kind", BROKEN)
def test_bad_models_exit_2_with_one_line(tmp_path, kind):
    path = _broken_files(tmp_path)[kind]
    result = invoke(path)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot load model")
    assert path.name in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_input_shape_exits_2(conv_path):
    for args in (["--input-shape", "x:1,3,abc"], ["--input-shape", "image:1,3,8,8"]):
        result = invoke(conv_path, *args)
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("error: --input-shape")


def test_real_process_exit_code_and_stderr(tmp_path):
    path = tmp_path / "truncated.onnx"
    data = mlp_model().SerializeToString()
    path.write_bytes(data[: len(data) // 3])
    process = subprocess.run(
        [sys.executable, "-m", "onnxprune.cli", "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 2
    assert process.stdout == ""
    assert process.stderr.count("\n") == 1
    assert "truncated.onnx" in process.stderr and "Traceback" not in process.stderr


def test_dynamic_spatial_dims_make_macs_unknown_with_a_hint(tmp_path):
    import onnx

    from tests.pipeline.test_api import _dynamic_image_model

    path = tmp_path / "dynamic.onnx"
    onnx.save(_dynamic_image_model(), path)
    result = CliRunner().invoke(cli, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["macs"] is None and all(layer["macs"] is None for layer in payload["layers"])
    # shapes at a 1x1 image would mislead: unknown as well
    assert all(layer["output_shape"] is None for layer in payload["layers"])
    assert "--input-shape x:1,3,H,W" in payload["macs_unknown"]
    fixed = CliRunner().invoke(
        cli, ["inspect", str(path), "--json", "--input-shape", "x:1,3,12,10"]
    )
    assert json.loads(fixed.stdout)["macs"] > 0


def test_text_encoder_without_input_shape(zoo_onnx):
    """No --input-shape: the sequence length is unknown, so MACs are reported as unknown with
    the flag to give; shapes inference cannot resolve are measured (and said so); heads and
    feed-forward groups are listed as prunable."""
    result = invoke(zoo_onnx("bert", "torchscript"), "--json", "--groups")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["macs"] is None and "--input-shape" in data["macs_unknown"]
    assert any("measured by running the model" in note for note in data["notes"])
    assert data["prunable_macs"] > 0
    assert any("measured" in note for note in data["analysis_notes"])
    assert sorted(g["clusters"] for g in data["groups"] if g["prunable"]) == [12, 12, 384, 384]
