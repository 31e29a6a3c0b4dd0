"""Half-precision (float16) models through the gradient paths and the sparsity curves:
gradients run on a float32 copy, the written model keeps its float16 weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from onnxprune import optimize, sparsify
from onnxprune.analysis import analyze
from onnxprune.importance import score_clusters
from onnxprune.passes.prepare import prepare
from tests.half import to_float16

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


@pytest.fixture(scope="module")
def half(tmp_path_factory):
    folder = tmp_path_factory.mktemp("half")
    path = folder / "vgg16.onnx"
    onnx.save(to_float16(onnx.load(str(DIGITS / "digits_vgg.onnx"))), str(path))
    calib = dict(np.load(DIGITS / "digits_calib.npz"))
    test = dict(np.load(DIGITS / "digits_test.npz"))
    data = {"input": calib["input"][:96].astype(np.float16)}
    evaluation = {"input": test["input"][:96].astype(np.float16), "labels": test["labels"][:96]}
    return path, data, evaluation


def _initializer_types(model) -> set[int]:
    return {init.data_type for init in model.graph.initializer}


def test_sparsity_with_measured_error_curves(half) -> None:
    path, data, _ = half
    result = sparsify(str(path), 0.5, criterion="wanda", data=data)  # output allocation
    assert result.allocation == "output" and result.sparsity >= 0.5
    assert TensorProto.FLOAT16 in _initializer_types(result.model)
    onnx.checker.check_model(result.model, full_check=True)


@pytest.mark.parametrize("criterion", ["taylor", "fisher"])
def test_gradient_channel_scores(half, criterion) -> None:
    path, data, _ = half
    shapes = {"input": [1, 1, 32, 32]}
    _, prepared, _ = prepare(path, shapes)
    scores = score_clusters(analyze(prepared, shapes), criterion, calibration=data)
    assert np.isfinite(scores).all() and scores.max() > 0


def test_distillation_writes_float16_values(half) -> None:
    path, data, evaluation = half
    result = optimize(
        str(path), "macs=0.7", data=data, eval_data=evaluation, recover="distill", steps=1,
        max_drop=100, measure_latency=False,
    )  # fmt: skip
    assert any("distill" in note for note in result.report.notes)
    assert _initializer_types(result.model) == {TensorProto.FLOAT16}
    assert result.report.metric_after > 50
