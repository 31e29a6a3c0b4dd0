"""Bitmask weight storage: identical outputs, ONNX Runtime folds the decoding, onnxprune reads
it back as dense weights, sizes follow the formula."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from onnxprune.io.bitmask import bitmask_bytes, decode_bitmask, encode_bitmask
from onnxprune.io.normalize import normalize_model
from onnxprune.sparsity import sparsify
from onnxprune.sparsity.storage import model_sizes, to_dense_storage, to_sparse_storage
from tests.sparsity.tiny import calibration, run, weight_zoo

DECODE_OPS = {"BitShift", "CumSum", "Gather", "Mod"}


@pytest.fixture(scope="module")
def sparse_model():
    return sparsify(weight_zoo(), 0.7, min_size=0, skip_depthwise=False).model


def _initializers(model) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def test_outputs_are_identical_and_the_file_is_smaller_than_coo(sparse_model, tmp_path):
    stored, encoded = encode_bitmask(sparse_model, min_sparsity=0.5, min_size=0)
    assert set(encoded) == {"wa", "wdw", "wup", "wg", "wfc", "wmm"}
    path = tmp_path / "bitmask.onnx"
    onnx.save(stored, str(path))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    feeds = calibration(4)
    np.testing.assert_array_equal(run(onnx.load(str(path)), feeds), run(sparse_model, feeds))
    coo, _ = to_sparse_storage(sparse_model, min_sparsity=0.5, min_size=0)
    sizes = [model_sizes(m).bytes for m in (stored, coo, sparse_model)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_onnxruntime_folds_the_decoding_at_load(sparse_model, tmp_path):
    """The optimized graph ONNX Runtime runs has no decode op left: weights are constants."""
    stored, _ = encode_bitmask(sparse_model, min_sparsity=0.5, min_size=0)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(stored.SerializeToString(), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx"))
    assert not {node.op_type for node in optimized.graph.node} & DECODE_OPS
    assert {node.op_type for node in stored.graph.node} & DECODE_OPS


def test_decoding_restores_the_dense_initializers(sparse_model):
    stored, encoded = encode_bitmask(sparse_model, min_sparsity=0.5, min_size=0)
    for restored in (normalize_model(stored), to_dense_storage(stored)):
        arrays, original = _initializers(restored), _initializers(sparse_model)
        assert set(arrays) == set(original)
        for name in encoded:
            np.testing.assert_array_equal(arrays[name], original[name])
            assert arrays[name].dtype == original[name].dtype
        assert [n.op_type for n in restored.graph.node] == [
            n.op_type for n in sparse_model.graph.node
        ]
    graph = onnx.GraphProto()
    graph.CopyFrom(sparse_model.graph)
    assert decode_bitmask(graph) == []  # nothing encoded: unchanged


def test_dense_tensors_graph_inputs_and_old_opsets_stay_as_they_are(sparse_model):
    _, encoded = encode_bitmask(sparse_model, min_sparsity=0.99, min_size=0)
    assert encoded == []
    old = onnx.ModelProto()
    old.CopyFrom(sparse_model)
    old.opset_import[0].version = 10
    stored, encoded = encode_bitmask(old, min_sparsity=0.5, min_size=0)
    assert encoded == [] and stored == old


@pytest.mark.parametrize(("size", "sparsity"), [(4096, 0.7), (1000, 0.5), (37, 0.9)])
def test_encoded_bytes_follow_the_formula(size, sparsity):
    rng = np.random.default_rng(0)
    values = rng.normal(size=size).astype(np.float32)
    values[rng.random(size) < sparsity] = 0
    nonzero = int(np.count_nonzero(values))
    expected = bitmask_bytes(size, nonzero, 4)
    assert expected == (nonzero + 1) * 4 + -(-size // 8)
    packed = np.packbits(values != 0)
    assert packed.nbytes + (nonzero + 1) * 4 == expected


def test_load_model_decodes_and_rejects_an_incomplete_encoding(sparse_model, tmp_path):
    from onnxprune.errors import ModelLoadError
    from onnxprune.io import load_model

    stored, encoded = encode_bitmask(sparse_model, min_sparsity=0.5, min_size=0)
    path = tmp_path / "stored.onnx"
    onnx.save(stored, str(path))
    loaded = _initializers(load_model(path))
    for name in encoded:
        np.testing.assert_array_equal(loaded[name], _initializers(sparse_model)[name])
    broken = onnx.ModelProto()
    broken.CopyFrom(stored)
    kept = [i for i in broken.graph.initializer if i.name != "wa__count"]
    del broken.graph.initializer[:]
    broken.graph.initializer.extend(kept)
    with pytest.raises(ModelLoadError, match="bitmask"):
        load_model(broken)
