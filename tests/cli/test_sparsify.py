"""``onnxprune sparsify`` and ``inspect --sparsity`` end to end through the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from onnxprune.cli import cli
from onnxprune.sparsity.obs import DEFAULT_DAMP
from tests.sparsity.tiny import calibration, run, weight_zoo

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sparsify_cli")
    model = folder / "zoo.onnx"
    onnx.save(weight_zoo(), str(model))
    data = folder / "calib.npz"
    np.savez(data, **calibration())
    return model, data


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_sparsify_with_obs_and_sparse_storage_writes_an_equal_model(files, tmp_path):
    model, data = files
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    dense_out, sparse_out = tmp_path / "dense.onnx", tmp_path / "sparse.onnx"
    common = ["--sparsity", "0.8", "--criterion", "obs", "--data", data, "--min-size", "0"]
    common += ["--allocation", "uniform"]  # every layer at the same share (checked below)
    result = invoke("sparsify", model, "-o", dense_out, *common, "--json", "-")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["sparsity"] >= 0.8 and plan["criterion"] == "obs"
    assert {layer["node"] for layer in plan["layers"]} == {"a", "up", "g", "fc", "mm"}
    result = invoke("sparsify", model, "-o", sparse_out, *common, "--sparse-storage", "--json", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["sparse_initializers"]
    feeds = calibration(4)
    np.testing.assert_array_equal(
        run(onnx.load(str(sparse_out)), feeds), run(onnx.load(str(dense_out)), feeds)
    )
    assert sparse_out.stat().st_size < dense_out.stat().st_size
    bitmask_out = tmp_path / "bitmask.onnx"
    result = invoke(
        "sparsify", model, "-o", bitmask_out, *common, "--sparse-storage", "bitmask", "--json", "-"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["sizes"]["storage"] == "bitmask"
    np.testing.assert_array_equal(
        run(onnx.load(str(bitmask_out)), feeds), run(onnx.load(str(dense_out)), feeds)
    )
    assert bitmask_out.stat().st_size < sparse_out.stat().st_size
    # onnxprune reads its own bitmask file back as dense weights
    result = invoke("inspect", bitmask_out, "--sparsity", "--json")
    assert result.exit_code == 0, result.output
    layers = json.loads(result.output)["weight_sparsity"]["layers"]
    assert {row["node"] for row in layers} >= {"a", "up", "g", "fc", "mm"}
    assert all(row["sparsity"] >= 0.79 for row in layers if row["node"] in ("a", "fc", "mm"))
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before


def test_sparsify_two_four_and_inspect_reports_it(files, tmp_path):
    model, _ = files
    out = tmp_path / "nm.onnx"
    result = invoke("sparsify", model, "-o", out, "--pattern", "2:4", "--quiet")
    assert result.exit_code == 0, result.output
    result = invoke("inspect", out, "--sparsity", "--json")
    assert result.exit_code == 0, result.output
    layers = {row["node"]: row for row in json.loads(result.output)["weight_sparsity"]["layers"]}
    assert layers["a"]["holds_nm"] and layers["mm"]["holds_nm"]
    assert layers["dw"]["holds_nm"] is None and layers["dw"]["zeros"] == 0
    table = invoke("inspect", out, "--sparsity")
    assert table.exit_code == 0 and "2:4" in table.output


def test_two_four_reorders_channels_unless_told_not_to(tmp_path):
    """On the digits MobileNetV2 the default 2:4 run reorders channel groups (reported in the
    JSON plan, with a measured output difference); ``--no-permute`` leaves them."""
    model = DIGITS / "digits_mbv2.onnx"
    plans = {}
    for flag in ("--permute", "--no-permute"):
        out = tmp_path / f"{flag}.onnx"
        result = invoke("sparsify", model, "-o", out, "--pattern", "2:4", flag, "--json", "-")
        assert result.exit_code == 0, result.output
        plans[flag] = json.loads(result.output)
    permutation = plans["--permute"]["permutation"]
    assert permutation["max_relative_error"] <= 1e-4
    assert any(group["reordered"] for group in permutation["groups"])
    assert all(g["removed_after"] <= g["removed_before"] for g in permutation["groups"]
               if g["removed_before"] is not None)  # fmt: skip
    assert plans["--no-permute"]["permutation"] is None


def test_error_allocation_and_bias_correction_from_the_cli(files, tmp_path):
    model, data = files
    out = tmp_path / "alloc.onnx"
    result = invoke(
        "sparsify", model, "-o", out, "--sparsity", "0.6", "--criterion", "obs", "--data", data,
        "--min-size", "0", "--allocation", "error", "--bias-correction", "--json", "-",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["allocation"] == "error" and plan["bias_correction"] is True
    assert plan["total_zeros"] == -(-6 * plan["total_weights"] // 10)  # ⌈0.6·total⌉ exactly
    assert len({round(layer["sparsity_after"], 2) for layer in plan["layers"]}) > 1
    assert plan["damp"] == DEFAULT_DAMP


def test_damp_reaches_the_obs_solver(files, tmp_path):
    model, data = files
    common = ["--sparsity", "0.6", "--criterion", "obs", "--data", data, "--min-size", "0"]
    common += ["--allocation", "uniform", "--quiet"]
    outs = {}
    for damp in ("0.001", "10"):
        outs[damp] = tmp_path / f"d{damp}.onnx"
        result = invoke("sparsify", model, "-o", outs[damp], *common, "--damp", damp)
        assert result.exit_code == 0, result.output
    feeds = calibration(8)
    weak, strong = (run(onnx.load(str(outs[d])), feeds) for d in ("0.001", "10"))
    assert not np.allclose(weak, strong)


@pytest.mark.parametrize(
    "args",
    [
        ["--sparsity", "1.0"],
        ["--sparsity", "-0.5"],
        ["--pattern", "3:2"],
        ["--threshold", "0.1", "--global"],
        ["--criterion", "wanda"],
        ["--sparsity-for", "nonsense"],
        ["--allocation", "best"],
        ["--allocation", "error"],
        ["--bias-correction"],
        ["--damp", "0"],
        ["--damp", "-1", "--criterion", "obs"],
        ["--pattern", "2:4", "--nm-coverage", "1.5"],
        ["--nm-coverage", "0.9"],
        ["--pattern", "2:4", "--nm-coverage", "0.9"],
        ["--sparsity", "0.5", "--permute"],
        ["--gain-metric", "top1"],
        ["--gain-metric", "nope"],
    ],
)
def test_bad_inputs_exit_2_with_one_line(files, tmp_path, args):
    model, _ = files
    result = CliRunner().invoke(
        cli, ["sparsify", str(model), "-o", str(tmp_path / "x.onnx"), *args]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")


def test_gain_metric_reaches_the_output_allocation(files, tmp_path):
    """std_mse and rel_mse measure different gains, so the output allocation may split the
    sparsity differently; both runs reach the whole-model count."""
    model, data = files
    common = ["--sparsity", "0.5", "--criterion", "obs", "--data", data, "--min-size", "0"]
    common += ["--allocation", "output", "--quiet", "--json", "-"]
    plans = {}
    for metric in ("rel_mse", "std_mse"):
        out = tmp_path / f"{metric}.onnx"
        result = invoke("sparsify", model, "-o", out, *common, "--gain-metric", metric)
        assert result.exit_code == 0, result.output
        plans[metric] = json.loads(result.output)
    for metric, plan in plans.items():
        assert plan["sparsity"] == pytest.approx(0.5, abs=0.01)
        assert f"output gains measured by {metric}" in plan["notes"]


def test_sparsify_calibrates_on_crops_of_a_few_photos(tmp_path, monkeypatch):
    from onnxprune.sparsity import api
    from tests.evaluate.tiny import conv_classifier, grey_photos

    model = tmp_path / "conv.onnx"
    onnx.save(conv_classifier(), str(model))
    photos = grey_photos(tmp_path / "photos", 4, seed=3)
    seen = {}
    real = api.calibration_data

    def spy(*args, **kwargs):
        loaded = real(*args, **kwargs)
        seen["samples"] = len(loaded)
        return loaded

    monkeypatch.setattr(api, "calibration_data", spy)
    result = invoke(
        "sparsify",
        model,
        "-o",
        tmp_path / "out.onnx",
        "--sparsity",
        "0.5",
        "--criterion",
        "obs",
        "--data",
        photos,
        "--min-size",
        "0",
        "--json",
        tmp_path / "plan.json",
    )
    assert result.exit_code == 0, result.output
    notes = json.loads((tmp_path / "plan.json").read_text())["notes"]
    assert any("random resized crops" in note for note in notes)
    assert seen["samples"] == 4 * 128  # 512 / 4 photos: the photo and 127 crops each
