"""Per-op-type times from ONNX Runtime's profiler trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxprune.runtime.profile import op_type_times, parse_trace
from tests.runtime.tiny import conv_model


def node(name: str, op: str, ts: float, dur: float) -> dict:
    return {
        "cat": "Node",
        "name": f"{name}_kernel_time",
        "ts": ts,
        "dur": dur,
        "args": {"op_name": op},
    }


def run(ts: float, dur: float) -> dict:
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur, "args": {}}


def test_parse_trace_sums_per_op_type_and_skips_warmup() -> None:
    events = [
        {"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 50},
        node("c1", "Conv", 101, 30),
        node("r1", "Relu", 132, 5),
        run(100, 40),
        node("c1", "Conv", 201, 20),
        node("c2", "Conv", 222, 10),
        node("r1", "Relu", 233, 4),
        {
            "cat": "Node",
            "name": "c1_fence_before",
            "ts": 200,
            "dur": 0,
            "args": {"op_name": "Conv"},
        },
        run(200, 40),
        node("c1", "Conv", 301, 22),
        node("r1", "Relu", 324, 6),
        run(300, 40),
    ]
    assert parse_trace(events) == ({"Conv": 82.0, "Relu": 15.0}, 3)
    assert parse_trace(events, skip_runs=1) == ({"Conv": 52.0, "Relu": 10.0}, 2)


def test_op_type_times_of_a_real_session(tmp_path: Path) -> None:
    path = tmp_path / "conv.onnx"
    onnx.save_model(conv_model(8), str(path))
    times = op_type_times(path, {"x": np.ones((2, 3, 16, 16), np.float32)}, runs=3, warmup=1)
    assert "Conv" in times and "GlobalAveragePool" in times
    assert all(value > 0 for value in times.values())
    assert sum(times.values()) < 1000.0  # ms per run of a 3x3 conv on 2x3x16x16: far below 1 s


@pytest.mark.parametrize("skip", [0, 5])
def test_empty_trace(skip: int) -> None:
    assert parse_trace([], skip_runs=skip) == ({}, 0)
