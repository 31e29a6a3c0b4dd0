"""The frontier runner gives the same tensors as a run from the graph inputs, cached or not."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from onnxprune.calibrate.frontier import FrontierRunner
from onnxprune.calibrate.session import ExposedRunner
from tests.recover.test_reconstruct import residual_block

LEVELS = [["x"], ["r0"], ["h"], ["ra"], ["rd", "h"], ["s"]]


def _batches(x: np.ndarray, size: int = 5):
    return [{"x": x[start : start + size]} for start in range(0, len(x), size)]


@pytest.mark.parametrize("budget", [0, 1 << 30])
def test_frontier_runs_equal_full_runs(budget):
    model = residual_block()
    x = np.random.default_rng(0).normal(size=(12, 3, 8, 8)).astype(np.float32)
    runner = FrontierRunner(len(x), budget_bytes=budget)
    for wanted in LEVELS:
        got = list(runner.run(model, wanted, _batches(x)))
        types = {name: onnx.TensorProto.FLOAT for name in wanted}
        expected = ExposedRunner(model, wanted, types)({"x": x})
        for name in wanted:
            np.testing.assert_allclose(
                np.concatenate([g[name] for g in got]), expected[name], rtol=1e-5, atol=1e-5
            )
        if budget == 0:  # nothing kept: every level runs from the graph inputs
            assert not runner.cache
    if budget:
        assert set(runner.cache) == {"s"}  # the head still reads s
