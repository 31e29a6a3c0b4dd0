"""A hand-made report shared by the report tests."""

from __future__ import annotations

import pytest

from onnxprune.report import GroupWidth, Report, StepRecord


def make_step(index, status, macs, metric, kind="full"):
    return StepRecord(
        index=index,
        step=index,
        attempt=1,
        kind=kind,
        status=status,
        macs=macs,
        macs_estimated=macs - 10,
        params=500 - index,
        metric=metric,
        drop=95.0 - metric,
        removed_clusters=4 * index,
        groups_changed=["conv1"],
        reason=None if status == "kept" else "drop 3.000 > max-drop 1",
    )


@pytest.fixture
def report() -> Report:
    return Report(
        status="ok",
        reason=None,
        input_model="model.onnx",
        output_model="model.pruned.onnx",
        target="macs=0.5",
        target_kind="macs",
        target_value=0.5,
        target_met=True,
        metric_name="top1",
        metric_source="labels",
        metric_before=95.0,
        metric_after=94.5,
        metric_drop=0.5,
        max_drop=1.0,
        accuracy_measured=True,
        macs_before=1000,
        macs_after=480,
        macs_after_estimated=470,
        params_before=600,
        params_after=300,
        file_bytes_before=4096,
        file_bytes_after=2048,
        latency_ms_before=2.0,
        latency_ms_after=1.2,
        provider="CPUExecutionProvider",
        latency=None,
        criterion="l1",
        data={"evaluation": {"source": "test.npz", "samples": 100}},
        groups=[
            GroupWidth(0, "conv1", ["conv1"], 32, 16, 1, False, False),
            GroupWidth(1, "conv2", ["conv2"], 64, 64, 1, False, True),
            GroupWidth(2, "fc", ["fc"], 10, 10, 1, True, False),
        ],
        steps=[
            make_step(1, "kept", 800, 95.0),
            make_step(2, "rolled_back", 600, 92.0),
            make_step(3, "kept", 700, 94.8, kind="halved"),
            make_step(4, "kept", 480, 94.5, kind="protected"),
        ],
        tool_version="0.0.test",
    )
