"""Peak session memory in a child process: a 40 MB weight must show up, a tiny model must not."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.runtime.memory import measure_session_memory
from tests.runtime.tiny import relu_model

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="peak RSS is read from /proc (Linux only)"
)


def big_matmul(rows: int = 2500, cols: int = 4000) -> onnx.ModelProto:
    weight = np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", cols])],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_weights_show_in_peak_rss(tmp_path: Path) -> None:
    big, tiny = tmp_path / "big.onnx", tmp_path / "tiny.onnx"
    onnx.save_model(big_matmul(), str(big))  # 2500 * 4000 * 4 B = 38.1 MiB of weights
    onnx.save_model(relu_model(), str(tiny))
    big_usage = measure_session_memory(big, {"x": np.ones((1, 2500), np.float32)}, threads=1)
    tiny_usage = measure_session_memory(tiny, {"x": np.ones((1, 3), np.float32)}, threads=1)
    assert big_usage.gpu_mb is None and big_usage.notes == []
    assert big_usage.peak_rss_mb >= 38.1
    assert tiny_usage.peak_rss_mb < 30
    assert big_usage.peak_rss_mb - tiny_usage.peak_rss_mb >= 30


def test_failure_is_a_note(tmp_path: Path) -> None:
    missing = tmp_path / "missing.onnx"
    usage = measure_session_memory(missing, {"x": np.ones((1, 3), np.float32)})
    assert usage.peak_rss_mb is None
    assert usage.notes[0].startswith("memory measurement failed:")
