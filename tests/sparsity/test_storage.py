"""sparse_initializer storage: ONNX Runtime loads it and gives identical outputs."""

from __future__ import annotations

import numpy as np
import onnx

from onnxprune.sparsity import sparsify
from onnxprune.sparsity.storage import model_sizes, to_dense_storage, to_sparse_storage
from tests.sparsity.tiny import calibration, run, weight_zoo


def test_sparse_storage_round_trip_is_identical_in_onnxruntime(tmp_path):
    result = sparsify(weight_zoo(), 0.8, min_size=0)
    stored, moved = to_sparse_storage(result.model, min_sparsity=0.7, min_size=0)
    assert moved and not {init.name for init in stored.graph.initializer} & set(moved)
    path = tmp_path / "sparse.onnx"
    onnx.save(stored, str(path))
    onnx.checker.check_model(onnx.load(str(path)))
    feeds = calibration(4)
    np.testing.assert_array_equal(run(onnx.load(str(path)), feeds), run(result.model, feeds))
    assert model_sizes(stored).bytes < model_sizes(result.model).bytes
    dense = to_dense_storage(stored)
    np.testing.assert_array_equal(run(dense, feeds), run(result.model, feeds))


def test_tensors_below_break_even_stay_dense():
    result = sparsify(weight_zoo(), 0.5, min_size=0)
    _, moved = to_sparse_storage(result.model, min_sparsity=0.4, min_size=0)
    assert moved == []  # 50 % zeros: 12 bytes per non-zero would be larger than 4 per value
