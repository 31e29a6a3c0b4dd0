"""A real > 2 GB model through save, load and summarize (opt-in: ONNXPRUNE_BIG_TESTS=1).

Needs about 10 GB of RAM and 2.3 GB of disk, so it does not run in the default suite.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.io import load_model, save_model
from onnxprune.stats import count_params, summarize
from tests.io.tiny_models import make_model

ROWS = 1100 * 2**20 // (4 * 256)  # two float32 [ROWS, 256] tensors of 1.1 GiB each


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ONNXPRUNE_BIG_TESTS"), reason="set ONNXPRUNE_BIG_TESTS=1")
def test_model_over_2gb_round_trip(tmp_path):
    tensors = []
    for index in range(2):
        tensor = TensorProto(name=f"w{index}", data_type=TensorProto.FLOAT, dims=[ROWS, 256])
        row = np.arange(256, dtype=np.float32) + index
        tensor.raw_data = np.broadcast_to(row, (ROWS, 256)).tobytes()
        tensors.append(tensor)
    model = make_model(
        [
            helper.make_node("Gather", ["w0", "idx"], ["y0"]),
            helper.make_node("Gather", ["w1", "idx"], ["y1"]),
        ],
        [helper.make_tensor_value_info("idx", TensorProto.INT64, [1])],
        [
            helper.make_tensor_value_info("y0", TensorProto.FLOAT, [1, 256]),
            helper.make_tensor_value_info("y1", TensorProto.FLOAT, [1, 256]),
        ],
        tensors,
    )
    del tensors
    path = save_model(model, tmp_path / "big.onnx")  # external data chosen automatically
    assert (tmp_path / "big.onnx.data").stat().st_size >= 2 * ROWS * 256 * 4
    assert path.stat().st_size < 2**20
    del model
    loaded = load_model(path)
    assert count_params(loaded) == (2 * ROWS * 256, 2 * ROWS * 256 * 4)
    assert summarize(loaded).ops == {"Gather": 2}
    last = numpy_helper.to_array(loaded.graph.initializer[1])[-1]
    np.testing.assert_array_equal(last, np.arange(256, dtype=np.float32) + 1)
    again = save_model(loaded, tmp_path / "again.onnx", input_path=path)
    assert (tmp_path / "again.onnx.data").stat().st_size == (
        tmp_path / "big.onnx.data"
    ).stat().st_size
    assert again.is_file()
