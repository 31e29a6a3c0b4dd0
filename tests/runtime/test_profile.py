"""Per-op-type times from ONNX Runtime's profiler trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from onnxprune.runtime.profile import (
    OUTSIDE,
    conv_kind_label,
    interleaved_op_type_times,
    median_times,
    op_type_times,
    parse_trace,
)
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
    assert parse_trace(events) == [
        {"Conv": 30.0, "Relu": 5.0, OUTSIDE: 5.0},
        {"Conv": 30.0, "Relu": 4.0, OUTSIDE: 6.0},
        {"Conv": 22.0, "Relu": 6.0, OUTSIDE: 12.0},
    ]
    per_run = parse_trace(events, skip_runs=1)
    assert len(per_run) == 2 and per_run[0]["Conv"] == 30.0
    # medians per op type, in ms: Conv (30, 22) -> 26 us, Relu (4, 6) -> 5 us
    assert median_times(per_run) == {"Conv": 0.026, "Relu": 0.005, OUTSIDE: 0.009}


def test_op_type_times_of_a_real_session(tmp_path: Path) -> None:
    path = tmp_path / "conv.onnx"
    onnx.save_model(conv_model(8), str(path))
    times = op_type_times(path, {"x": np.ones((2, 3, 16, 16), np.float32)}, runs=3, warmup=1)
    assert "Conv" in times and "GlobalAveragePool" in times and OUTSIDE in times
    assert times["Conv"] > 0 and times["GlobalAveragePool"] > 0
    assert sum(times.values()) < 1000.0  # ms per run of a 3x3 conv on 2x3x16x16: far below 1 s


@pytest.mark.parametrize("skip", [0, 5])
def test_empty_trace(skip: int) -> None:
    assert parse_trace([], skip_runs=skip) == []
    assert median_times([]) == {}


def conv_event(weight: list[int], op: str = "Conv") -> dict:
    shapes = [{"float": [1, 32, 8, 8]}, {"float": weight}]
    return {"args": {"op_name": op, "input_type_shape": shapes}}


def test_conv_kind_label() -> None:
    assert conv_kind_label(conv_event([32, 1, 3, 3])) == "Conv[dw]"
    assert conv_kind_label(conv_event([64, 32, 1, 1])) == "Conv[1x1]"
    assert conv_kind_label(conv_event([64, 32, 3, 3], op="FusedConv")) == "Conv[kxk]"
    assert conv_kind_label({"args": {"op_name": "Conv"}}) == "Conv"
    assert conv_kind_label({"args": {"op_name": "Relu"}}) == "Relu"


def test_conv_kinds_in_a_real_trace(tmp_path: Path) -> None:
    path = tmp_path / "conv.onnx"
    onnx.save_model(conv_model(8), str(path))
    feeds = {"x": np.ones((1, 3, 16, 16), np.float32)}
    times = op_type_times(path, feeds, runs=2, warmup=1, label=conv_kind_label)
    assert "Conv[kxk]" in times and "Conv" not in times


def test_interleaved_profiles_one_dict_per_model(tmp_path: Path) -> None:
    wide, narrow = tmp_path / "wide.onnx", tmp_path / "narrow.onnx"
    onnx.save_model(conv_model(16), str(wide))
    onnx.save_model(conv_model(4), str(narrow))
    feeds = {"x": np.ones((1, 3, 16, 16), np.float32)}
    results = interleaved_op_type_times([wide, narrow], [feeds, feeds], runs=2, warmup=1)
    assert len(results) == 2
    assert all(result["Conv"] > 0 for result in results)
