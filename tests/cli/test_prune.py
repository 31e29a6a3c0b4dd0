"""``onnxprune prune`` end to end through the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from click.testing import CliRunner

from onnxprune.cli import cli
from tests.oracle import random_feeds, session


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def model(zoo_onnx, tmp_path):
    path = tmp_path / "resnet18.onnx"
    shutil.copy(zoo_onnx("resnet18", "torchscript"), path)
    return path


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_prune_writes_a_smaller_valid_model_and_a_plan(model, tmp_path):
    before = sha(model)
    out = tmp_path / "out.onnx"
    result = invoke("prune", model, "-o", out, "--ratio", "0.5", "--round-to", "8", "--json", "-")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["macs_after"] < plan["macs_before"] * 0.5
    assert plan["params_after"] < plan["params_before"]
    assert plan["groups_pruned"] > 0
    assert all(
        g["kept"] * g["width"] % 8 == 0 or g["kept"] == g["clusters"] for g in plan["groups"]
    )
    assert sha(model) == before
    import onnx

    pruned = onnx.load(out)
    outputs = session(pruned).run(None, random_feeds(pruned, batch=2))
    assert outputs[0].shape == (2, 1000)


def test_default_output_name_and_refusal_to_overwrite(model):
    first = invoke("prune", model, "--quiet")
    assert first.exit_code == 0, first.output
    assert (model.parent / "resnet18.pruned.onnx").exists()
    second = invoke("prune", model)
    assert second.exit_code == 2
    assert "exists" in second.output and "Traceback" not in second.output
    assert invoke("prune", model, "--force", "--quiet").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ratio", "1.5"], "ratio"),
        (["--criterion", "nope"], "unknown criterion"),
        (["--ratio-for", "noequals"], "GLOB=RATIO"),
        (["--input-shape", "input:1,x"], "integers"),
        (["--attention-unit", "heads"], "'heads' is not one of 'head', 'head_dim'"),
        (["--no-such-option"], "No such option '--no-such-option'"),
    ],
)
def test_bad_options_exit_2_with_one_line(model, tmp_path, args, message):
    result = invoke("prune", model, "-o", tmp_path / "o.onnx", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_missing_and_corrupt_models_exit_2(tmp_path):
    missing = invoke("prune", tmp_path / "missing.onnx")
    assert missing.exit_code == 2
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx model")
    result = invoke("prune", corrupt, "-o", tmp_path / "o.onnx")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_prune_with_data_uses_a_data_driven_criterion(tmp_path):
    from pathlib import Path

    digits = Path(__file__).resolve().parents[2] / "models" / "digits"
    out = tmp_path / "p.onnx"
    result = CliRunner().invoke(
        cli,
        [
            "prune",
            str(digits / "digits_vgg.onnx"),
            "-o",
            str(out),
            "--criterion",
            "obs",
            "--data",
            str(digits / "digits_calib.npz"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.exists()
    missing = CliRunner().invoke(
        cli,
        [
            "prune",
            str(digits / "digits_vgg.onnx"),
            "-o",
            str(tmp_path / "q.onnx"),
            "--criterion",
            "obs",
        ],
    )
    assert missing.exit_code == 2 and "--data" in missing.stderr


def test_dynamic_spatial_dims_are_warned_about_on_every_run(model, tmp_path):
    import onnx

    proto = onnx.load(model)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    dynamic = tmp_path / "dynamic.onnx"
    onnx.save(proto, dynamic)
    result = invoke("prune", dynamic, "-o", tmp_path / "out.onnx", "--ratio", "0.3")
    assert result.exit_code == 0, result.output
    assert "warning: dynamic input dimensions after the batch axis were set to 1" in result.output
    assert "--input-shape" in result.output
    static = onnx.load(model).graph.input[0].type.tensor_type.shape.dim
    shape = ",".join(["1", *(str(d.dim_value) for d in list(static)[1:])])
    fixed = invoke(
        "prune", dynamic, "-o", tmp_path / "out2.onnx", "--ratio", "0.3", "--force",
        "--input-shape", f"{proto.graph.input[0].name}:{shape}", "--json", "-",
    )  # fmt: skip
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.output)["warnings"] == []


def test_prune_data_may_be_an_image_folder(tmp_path):
    """--data of a folder of photos reaches data-driven criteria (it used to be refused as
    'not an existing .npz file' although the help offers image folders)."""
    import onnx

    from tests.evaluate.tiny import conv_classifier, grey_photos

    model = tmp_path / "conv.onnx"
    onnx.save(conv_classifier(), str(model))
    photos = grey_photos(tmp_path / "photos", 3, seed=5)
    out = tmp_path / "out.onnx"
    result = CliRunner().invoke(
        cli,
        ["prune", str(model), "-o", str(out), "--ratio", "0.5", "--round-to", "1",
         "--criterion", "obs", "--data", str(photos), "--json", str(tmp_path / "plan.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.exists()
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert any("random resized crops" in note for note in plan["notes"])  # the data's own notes
    assert plan["data_notes"] and set(plan["data_notes"]) <= set(plan["notes"])
    # how the folder was read is printed although channels were pruned (no mean/std here)
    assert "no mean/std in the preprocessing spec" in " ".join(result.output.split())
    assert "prune has no accuracy guard" in result.output


@pytest.mark.parametrize("unit", ["head", "head_dim"])
def test_attention_unit_chooses_whole_heads_or_head_dim_positions(zoo_onnx, tmp_path, unit):
    """ViT-Tiny at its small settings (dim 48, 3 heads of 16): whole heads leave the qkv
    projection a multiple of 3 x 16 wide; head_dim positions keep all 3 heads, each narrower."""
    import onnx
    from onnx import numpy_helper

    out = tmp_path / f"{unit}.onnx"
    result = invoke(
        "prune", zoo_onnx("vit_tiny", "torchscript"), "-o", out, "--ratio", "0.5",
        "--round-to", "1", "--attention-unit", unit, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    pruned = onnx.load(out)
    weights = {i.name: numpy_helper.to_array(i) for i in pruned.graph.initializer}
    qkv = [
        weights[name].shape
        for node in pruned.graph.node
        if node.op_type in ("MatMul", "Gemm") and "qkv" in node.name
        for name in node.input[1:2]
    ]
    widths = {shape[-1] if len(shape) == 2 else shape[0] for shape in qkv}
    assert widths and all(width < 144 for width in widths)
    if unit == "head":
        assert all(width % 48 == 0 for width in widths)
    else:
        assert all(width % 9 == 0 and width % 48 != 0 for width in widths)
    session(pruned).run(None, random_feeds(pruned))
