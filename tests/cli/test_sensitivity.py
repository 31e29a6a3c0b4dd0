"""``onnxprune sensitivity`` end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from onnxprune.cli import cli
from tests.sensitivity.models import calibration, two_branch_model


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "two.onnx"
    onnx.save(two_branch_model(), path)
    return path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_writes_json_and_png(model, tmp_path):
    data = tmp_path / "calib.npz"
    np.savez(data, input=calibration(20)["x"], labels=np.zeros(20, np.int64))
    out, png = tmp_path / "s.json", tmp_path / "s.png"
    result = invoke(
        "sensitivity", model, "--data", data, "--ratios", "0.25,0.5", "--json", out, "--plot", png
    )
    assert result.exit_code == 0, result.output
    table = json.loads(out.read_text())
    assert table["ratios"] == [0.25, 0.5] and table["samples"] == 20
    drops = {g["name"]: [p["drop"] for p in g["points"]] for g in table["groups"]}
    assert set(drops) == {"loud_fc1", "quiet_fc1"}
    assert all(a > b for a, b in zip(drops["loud_fc1"], drops["quiet_fc1"], strict=True))
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "loud_fc1" in result.output


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"a": np.zeros((4, 8), np.float32), "b": np.zeros((4, 8), np.float32)}, "no array"),
        ({"x": np.zeros((4, 9), np.float32)}, "(?, 8)"),
        ({"x": np.zeros((4, 8), np.int64)}, "expects float32"),
    ],
)
def test_bad_data_exits_2(model, tmp_path, arrays, message):
    data = tmp_path / "bad.npz"
    np.savez(data, **arrays)
    result = invoke("sensitivity", model, "--data", data)
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "missing.npz"], "missing.npz"),
        (["--ratios", "0.5,1.5"], "--ratios"),
        (["--metric", "nope"], "unknown sensitivity metric"),
    ],
)
def test_bad_options_exit_2(model, tmp_path, args, message):
    data = tmp_path / "calib.npz"
    np.savez(data, x=calibration(4)["x"])
    if "--data" not in args:
        args = ["--data", data, *args]
    result = invoke("sensitivity", model, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_not_an_npz(model, tmp_path):
    data = tmp_path / "calib.npz"
    data.write_text("not a zip")
    result = invoke("sensitivity", model, "--data", data)
    assert result.exit_code == 2 and "is not an .npz archive" in result.output


@pytest.mark.parametrize(("unit", "sizes"), [("head", [3, 3]), ("head_dim", [16, 16])])
def test_attention_unit_sets_the_attention_groups(zoo_onnx, tmp_path, unit, sizes):
    """ViT-Tiny's small export (3 heads of 16 per block): one attention group per block, of
    whole heads or of head_dim positions."""
    data = tmp_path / "calib.npz"
    np.savez(data, input=np.random.default_rng(0).standard_normal((8, 3, 32, 32), np.float32))
    out = tmp_path / "s.json"
    result = invoke(
        "sensitivity", zoo_onnx("vit_tiny", "torchscript"), "--data", data, "--ratios", "0.5",
        "--max-samples", "8", "--attention-unit", unit, "--json", out, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    groups = json.loads(out.read_text())["groups"]
    attention = sorted(g["size"] for g in groups if "qkv" in g["name"])
    assert attention == sizes, groups


def test_an_image_folder_is_read_as_optimize_reads_it_and_says_how(tmp_path):
    from tests.evaluate.tiny import conv_classifier, grey_photos

    path = tmp_path / "conv.onnx"
    onnx.save(conv_classifier(size=12), path)
    photos = grey_photos(tmp_path / "photos", 4)
    (photos / "preprocess.toml").write_text("crops = 1\n")
    result = invoke("sensitivity", path, "--data", photos, "--ratios", "0.5")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the console wraps long notes
    assert "note: image folder" in text and "no mean/std in the preprocessing spec" in text
