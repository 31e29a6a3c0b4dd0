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
