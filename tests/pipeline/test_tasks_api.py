"""``onnxprune.optimize`` from Python with a task: a TaskSpec as ``metric`` picks the task's
default metric from the data, a bound task metric is used as given."""

from __future__ import annotations

from pathlib import Path

import pytest

import onnxprune
from onnxprune.evaluate.tasks import TaskSpec, bind_task_metric

SHAPES = Path(__file__).resolve().parents[2] / "models" / "shapes"
FAST = {"criterion": "l1", "recover": "none", "allocation": "global", "measure_latency": False}


@pytest.mark.slow
def test_optimize_segmenter_with_task_spec_uses_miou_against_masks():
    result = onnxprune.optimize(
        str(SHAPES / "shapes_segmenter.onnx"),
        target="macs=0.9",
        data=str(SHAPES / "shapes_calib.npz"),
        eval_data=str(SHAPES / "shapes_test.npz"),
        metric=TaskSpec("segment", "logits"),
        steps=1,
        max_drop=2.0,
        max_eval_samples=32,
        **FAST,
    )
    report = result.report
    assert report.metric_name == "miou" and report.metric_source == "task"
    assert report.metric_before >= 80.0
    assert report.metric_drop is not None and report.metric_drop <= 2.0


def test_bound_metric_keeps_its_spec():
    spec = TaskSpec("detect", "yolov5", score_threshold=0.4)
    metric = bind_task_metric("det_f1_vs_original", spec)
    assert metric.spec is spec and metric.kind == "task" and metric.task == "detect"


@pytest.mark.slow
def test_detector_sparsity_gains_are_standardized_not_the_task_step():
    """The sparsity kind's gains need a smooth measure: a detection guard's drop (100 − mAP
    vs the original) steps, so they are measured by std_mse, and the run says so."""
    result = onnxprune.optimize(
        str(SHAPES / "shapes_detector.onnx"),
        target="sparsity=0.3",
        data=str(SHAPES / "shapes_calib.npz"),
        eval_data=str(SHAPES / "shapes_test.npz"),
        metric=TaskSpec("detect", "yolov8"),
        steps=1,
        max_drop=100.0,
        max_eval_samples=32,
        recover="lsq",
        measure_latency=False,
    )
    notes = result.report.notes
    assert any("output gain, measured by std_mse)" in note for note in notes), notes
    assert result.report.metric_name.startswith("map50")
