"""GuardEvaluator: held-out split, default metric, quick subset, latency, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate.metrics import top1
from onnxprune.pipeline.evaluation import QUICK_SAMPLES, SYNTHETIC_SAMPLES, GuardEvaluator
from tests.evaluate.tiny import linear_model

W = np.eye(3, dtype=np.float32)


def _labelled(n, seed=0):
    """Random rows (distinct, so splits can be traced); labels = argmax, 20 % shifted."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    labels = x.argmax(axis=1)
    labels[: n // 5] = (labels[: n // 5] + 1) % 3  # 20 % wrong for the identity model
    return x, labels


def test_split_is_disjoint_and_baseline_is_measured_on_held_out_samples():
    x, labels = _labelled(50)
    evaluator = GuardEvaluator.create(
        linear_model(W), data={"x": x, "labels": labels}, eval_split=0.4
    )
    held, calib = evaluator.evaluation, evaluator.calibration
    assert len(held) == 20 and len(calib) == 30
    held_rows = {tuple(r) for r in held.inputs["x"].tolist()}
    calib_rows = {tuple(r) for r in calib.inputs["x"].tolist()}
    assert held_rows.isdisjoint(calib_rows) and len(held_rows | calib_rows) == 50
    assert evaluator.metric_name == "top1" and evaluator.metric_source == "labels"
    assert evaluator.accuracy_measured
    assert evaluator.baseline == pytest.approx(top1([held.inputs["x"]], held.labels))
    assert evaluator.evaluate(linear_model(W)) == pytest.approx(evaluator.baseline)
    described = evaluator.describe()
    assert described["evaluation"]["samples"] == 20 and described["calibration"]["samples"] == 30
    assert "held out" in described["evaluation"]["source"]


def test_eval_data_is_used_whole_and_data_is_calibration():
    x, _ = _labelled(10)
    ex, elabels = _labelled(12, seed=1)
    evaluator = GuardEvaluator.create(
        linear_model(W), data={"x": x}, eval_data={"x": ex, "labels": elabels}
    )
    assert len(evaluator.evaluation) == 12 and len(evaluator.calibration) == 10
    assert evaluator.baseline == pytest.approx(top1([ex], elabels))
    only_eval = GuardEvaluator.create(linear_model(W), eval_data={"x": ex})
    assert only_eval.calibration is None
    assert any("no calibration data" in n for n in only_eval.notes)


def test_no_labels_means_agreement_with_the_original():
    x, _ = _labelled(20)
    evaluator = GuardEvaluator.create(linear_model(W), data={"x": x})
    assert evaluator.metric_name == "top1_agreement" and evaluator.metric_source == "reference"
    assert evaluator.baseline == pytest.approx(100.0)
    swap = W[:, [1, 0, 2]]
    held = evaluator.evaluation.inputs["x"]
    expected = 100 * np.mean((held @ swap).argmax(1) == held.argmax(1))
    assert evaluator.evaluate(linear_model(swap)) == pytest.approx(expected)


def test_no_data_uses_synthetic_inputs_and_says_so():
    evaluator = GuardEvaluator.create(linear_model(W))
    assert len(evaluator.evaluation) == SYNTHETIC_SAMPLES and evaluator.calibration is None
    assert not evaluator.accuracy_measured
    assert evaluator.metric_name == "top1_agreement"
    assert any("accuracy not measured" in n for n in evaluator.notes)
    assert evaluator.describe()["calibration"] == {
        "source": "none",
        "samples": 0,
        "has_labels": False,
    }


def test_quick_subset_reports_the_drop_measured_on_the_subset():
    n = 2 * QUICK_SAMPLES
    x, labels = _labelled(n)
    evaluator = GuardEvaluator.create(
        linear_model(W), eval_data={"x": x, "labels": labels}, max_eval_samples=n
    )
    subset, index = evaluator.quick_set
    assert len(subset) == QUICK_SAMPLES
    assert evaluator.evaluate(linear_model(W), quick=True) == pytest.approx(evaluator.baseline)
    swap = W[:, [1, 0, 2]]
    drop_on_subset = top1([x[index]], labels[index]) - top1([x[index] @ swap], labels[index])
    quick = evaluator.evaluate(linear_model(swap), quick=True)
    assert evaluator.baseline - quick == pytest.approx(drop_on_subset)


def test_max_eval_samples_and_custom_metric():
    x, labels = _labelled(40)
    evaluator = GuardEvaluator.create(
        linear_model(W),
        eval_data={"x": x, "labels": labels},
        max_eval_samples=7,
        metric=lambda outputs, y: float(len(y)),
    )
    assert len(evaluator.evaluation) == 7
    assert evaluator.baseline == 7.0 and evaluator.metric_source == "custom"


def test_latency_and_comparison():
    evaluator = GuardEvaluator.create(linear_model(W))
    assert evaluator.latency_batch() == 1
    assert evaluator.latency(linear_model(W)) > 0
    result = evaluator.compare_latency(linear_model(W), linear_model(2 * W))
    assert result["batch"] == 1 and result["runs"] >= 3
    for side in ("before", "after"):
        assert result[side]["p50_ms"] > 0 and "p90_ms" in result[side]
    assert result["ratio_p50"] == pytest.approx(
        result["after"]["p50_ms"] / result["before"]["p50_ms"]
    )


def test_bad_inputs():
    x, _ = _labelled(10)
    with pytest.raises(InputError, match="needs labels"):
        GuardEvaluator.create(linear_model(W), data={"x": x}, metric="top1")
    with pytest.raises(InputError, match="lower-is-better"):
        GuardEvaluator.create(linear_model(W), data={"x": x}, metric="kl")
    with pytest.raises(InputError, match="unknown metric"):
        GuardEvaluator.create(linear_model(W), data={"x": x}, metric="bogus")
    with pytest.raises(InputError, match="axis 1: 4 != 3"):
        GuardEvaluator.create(linear_model(W), data={"x": np.zeros((5, 4), np.float32)})
    with pytest.raises(InputError, match="between 0 and 1"):
        GuardEvaluator.create(linear_model(W), data={"x": x}, eval_split=0.0)
    with pytest.raises(InputError, match="max-eval-samples"):
        GuardEvaluator.create(linear_model(W), data={"x": x}, max_eval_samples=0)
