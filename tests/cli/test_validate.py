"""``onnxprune validate`` end to end on the shipped digits models and tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from PIL import Image

from onnxprune.cli import cli
from tests.evaluate.tiny import linear_model

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"
VGG = DIGITS / "digits_vgg.onnx"
MBV2 = DIGITS / "digits_mbv2.onnx"
TEST = DIGITS / "digits_test.npz"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_digits_accuracy_matches_the_training_script(tmp_path):
    trained = json.loads((DIGITS / "metrics.json").read_text())["models"]
    out = tmp_path / "v.json"
    result = invoke("validate", VGG, MBV2, "--data", TEST, "--json", out)
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "fidelity" in result.output
    data = json.loads(out.read_text())
    accuracy = data["accuracy"]
    assert accuracy["reference"]["top1"] == pytest.approx(
        100 * trained["digits_vgg"]["test_accuracy"], abs=1e-6
    )
    assert accuracy["candidate"]["top1"] == pytest.approx(
        100 * trained["digits_mbv2"]["test_accuracy"], abs=1e-6
    )
    assert set(accuracy["reference"]) == {"top1", "top5", "precision", "recall", "f1"}
    fidelity = data["fidelity"]["logits"]
    assert 90 <= fidelity["top1_agreement"] <= 100 and fidelity["kl"] > 0
    assert data["data"]["samples"] == 450 and data["provider"] == "CPUExecutionProvider"


def test_identical_models_and_json_on_stdout():
    result = invoke(
        "validate",
        VGG,
        VGG,
        "--data",
        TEST,
        "--max-samples",
        "50",
        "--metric",
        "agreement",
        "--metric",
        "max_abs_error",
        "--json",
        "-",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["fidelity"]["logits"] == {"top1_agreement": 100.0, "max_abs_error": 0.0}
    assert data["data"]["samples"] == 50


def test_image_folder_with_preprocessing_flags(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for index in range(2):
            pixels = rng.integers(0, 255, (40, 40), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{index}.png")
    result = invoke(
        "validate",
        VGG,
        VGG,
        "--data",
        tmp_path,
        "--resize",
        "36",
        "--crop",
        "32",
        "--mean",
        "0.305",
        "--std",
        "0.324",
        "--json",
        "-",
        "--metric",
        "top1",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["data"]["samples"] == 4 and data["data"]["has_labels"]
    assert data["accuracy"]["reference"]["top1"] == data["accuracy"]["candidate"]["top1"]


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.onnx"
    onnx.save(linear_model(np.eye(3, dtype=np.float32)), path)
    return path


def test_labels_key_and_custom_metric_file(tiny, tmp_path):
    data = tmp_path / "d.npz"
    x = np.eye(3, dtype=np.float32)
    np.savez(data, x=x, y=np.array([0, 1, 0]))
    metric = tmp_path / "m.py"
    metric.write_text("def first(outputs, labels):\n    return float(outputs[0][0, 0])\n")
    result = invoke(
        "validate",
        tiny,
        tiny,
        "--data",
        data,
        "--labels",
        "y",
        "--metric",
        "top1",
        "--metric",
        f"{metric}:first",
        "--json",
        "-",
    )
    assert result.exit_code == 0, result.output
    accuracy = json.loads(result.stdout)["accuracy"]["reference"]
    assert accuracy["top1"] == pytest.approx(100 * 2 / 3)
    assert accuracy[f"{metric}:first"] == 1.0


@pytest.mark.parametrize(
    ("arrays", "args", "message"),
    [
        ({"x": np.zeros((2, 4), np.float32)}, (), "axis 1: 4 != 3"),
        ({"x": np.zeros((2, 3), np.int64)}, (), "dtype int64"),
        ({"x": np.zeros((2, 3), np.float32)}, ("--metric", "top1"), "needs labels"),
        ({"x": np.zeros((2, 3), np.float32)}, ("--metric", "nope"), "unknown metric 'nope'"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(tiny, tmp_path, arrays, args, message):
    data = tmp_path / "bad.npz"
    np.savez(data, **arrays)
    result = invoke("validate", tiny, tiny, "--data", data, *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_model_and_unwritable_json(tiny, tmp_path):
    result = invoke("validate", tiny, tmp_path / "none.onnx")
    assert result.exit_code == 2 and "no such file" in result.stderr
    result = invoke("validate", tiny, tiny, "--json", tmp_path / "no" / "dir" / "out.json")
    assert result.exit_code == 2 and "does not exist" in result.stderr
