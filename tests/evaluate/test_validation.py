"""validate(): accuracy of both models and per-output fidelity on tiny linear models."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate import validate
from onnxprune.evaluate.fidelity import kl_divergence, top1_agreement
from tests.evaluate.tiny import linear_model

W = np.eye(3, dtype=np.float32)


def test_accuracy_and_fidelity_values():
    # inputs are one-hot-ish rows: the reference (identity) predicts the hot position
    x = np.array([[3, 1, 0], [0, 2, 1], [0, 1, 2], [1, 0, 0]], dtype=np.float32)
    labels = np.array([0, 1, 2, 1])  # reference correct on 3 of 4
    swap = W[:, [1, 0, 2]]  # candidate swaps classes 0 and 1
    result = validate(linear_model(W), linear_model(swap), {"x": x, "labels": labels})
    assert result.accuracy["reference"]["top1"] == pytest.approx(75.0)
    # candidate scores are x[:, [1, 0, 2]]: predictions [1, 0, 2, 1] -> samples 3 and 4 right
    assert result.accuracy["candidate"]["top1"] == pytest.approx(50.0)
    fidelity = result.fidelity["logits"]
    assert fidelity["top1_agreement"] == pytest.approx(top1_agreement(x @ swap, x @ W))
    assert fidelity["top1_agreement"] == pytest.approx(25.0)  # [0, 1, 2, 0] vs [1, 0, 2, 1]
    assert fidelity["kl"] == pytest.approx(kl_divergence(x @ swap, x @ W))
    data = result.to_dict()
    assert data["units"]["top1"] == "%" and data["data"]["samples"] == 4


def test_selected_metrics_multiple_outputs_and_synthetic_default():
    a, b = linear_model(W, extra_output=True), linear_model(2 * W, extra_output=True)
    result = validate(a, b, metrics=["max_abs_error", "cosine"], max_samples=10)
    assert set(result.fidelity) == {"logits", "double"}
    assert result.fidelity["logits"]["cosine"] == pytest.approx(1.0)
    assert result.fidelity["double"]["cosine"] == pytest.approx(1.0)
    assert result.accuracy == {"reference": {}, "candidate": {}}
    assert result.data["source"].startswith("first 10 of synthetic")
    assert any("synthetic" in n for n in result.notes)


def test_custom_metric_is_reported_per_model():
    x = np.ones((2, 3), np.float32)
    result = validate(
        linear_model(W), linear_model(3 * W), {"x": x}, metrics=[lambda o, y: float(o[0].sum())]
    )
    assert result.accuracy["reference"]["<lambda>"] == pytest.approx(6.0)
    assert result.accuracy["candidate"]["<lambda>"] == pytest.approx(18.0)


def test_bad_inputs():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(InputError, match="needs labels"):
        validate(linear_model(W), linear_model(W), {"x": x}, metrics=["top1"])
    with pytest.raises(InputError, match="different outputs"):
        validate(linear_model(W), linear_model(W, extra_output=True), {"x": x})
    other = linear_model(np.ones((4, 3), np.float32))
    with pytest.raises(InputError, match="axis 1: 3 != 4"):
        validate(other, other, {"x": x})
    with pytest.raises(InputError, match="failed: ZeroDivisionError"):
        validate(linear_model(W), linear_model(W), {"x": x}, metrics=[lambda o, y: 1 / 0])
    with pytest.raises(InputError, match="not a number"):
        validate(linear_model(W), linear_model(W), {"x": x}, metrics=[lambda o, y: "high"])
