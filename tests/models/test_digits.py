"""The shipped digits classifiers: accuracy on the shipped test split, measured with onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from models.digits import ARTIFACT_DIR

METRICS = json.loads((ARTIFACT_DIR / "metrics.json").read_text())


@pytest.mark.parametrize("name", ["digits_vgg", "digits_mbv2"])
def test_shipped_model_reaches_97_percent_and_matches_metrics(name: str) -> None:
    path = ARTIFACT_DIR / f"{name}.onnx"
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    test = np.load(ARTIFACT_DIR / "digits_test.npz")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: test["input"]})[0]
    accuracy = float((logits.argmax(axis=1) == test["labels"]).mean())
    assert accuracy >= 0.97
    assert accuracy == pytest.approx(METRICS["models"][name]["test_accuracy"], abs=1e-9)


def test_calibration_and_test_splits_are_disjoint_and_small() -> None:
    test = np.load(ARTIFACT_DIR / "digits_test.npz")
    calib = np.load(ARTIFACT_DIR / "digits_calib.npz")
    assert test["input"].shape[1:] == (1, 32, 32) and calib["input"].shape[1:] == (1, 32, 32)
    test_rows = {row.tobytes() for row in test["input"]}
    assert not any(row.tobytes() in test_rows for row in calib["input"])
    assert set(np.unique(test["labels"])) == set(range(10))
