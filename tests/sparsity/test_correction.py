"""Bias correction: the shift never increases a layer's calibration error, and through
``sparsify`` it matches the dense layer's mean output on the calibration rows."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from onnxprune.calibrate.session import ExposedRunner
from onnxprune.errors import InputError
from onnxprune.sparsity import sparsify
from onnxprune.sparsity.calibration import LayerStats
from onnxprune.sparsity.correction import add_zero_biases, bias_shift
from onnxprune.sparsity.targets import find_layers
from tests.sparsity.tiny import calibration, run, weight_zoo


def _stats(current: np.ndarray, reference: np.ndarray) -> LayerStats:
    return LayerStats(
        rows=len(current),
        column_sq=np.sum(current**2, axis=0)[None, :],
        gram=current.T @ current,
        row_sum=current.sum(axis=0),
        reference_sum=reference.sum(axis=0),
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 40), st.integers(1, 6), st.integers(1, 8))
def test_shift_zeroes_the_mean_error_and_never_increases_the_squared_error(seed, n, d, k):
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=(n, d)) + rng.normal(size=d)
    current = reference + 0.3 * rng.normal(size=(n, d)) + rng.normal(size=d)
    dense = rng.normal(size=(k, d))
    sparse = np.where(rng.random((k, d)) < 0.5, 0.0, dense)
    residual = reference @ dense.T - current @ sparse.T  # dense minus sparse output, per row
    shift = bias_shift(dense, sparse, _stats(current, reference))
    corrected = residual - shift
    np.testing.assert_allclose(corrected.mean(axis=0), 0.0, atol=1e-9)
    assert np.sum(corrected**2) <= np.sum(residual**2) + 1e-9
    np.testing.assert_allclose(
        np.sum(residual**2) - np.sum(corrected**2), n * np.sum(shift**2), rtol=1e-7, atol=1e-9
    )


@pytest.fixture(scope="module")
def zoo():
    return weight_zoo(), calibration(32)


def _layer_outputs(model, feeds, names):
    elem = {name: TensorProto.FLOAT for name in names}
    return ExposedRunner(model, names, elem)(feeds)


@pytest.mark.parametrize("tensor", ["a", "h"])
def test_sparsify_bias_correction_lowers_the_layer_mean_error(zoo, tensor):
    model, data = zoo
    kwargs = dict(
        criterion="obs", data=data, min_size=0, positions=None, allocation="uniform",
        sparsity=0.6,
    )  # fmt: skip
    plain = sparsify(model, bias_correction=False, **kwargs)
    fixed = sparsify(model, bias_correction=True, **kwargs)
    assert plain.total_zeros == fixed.total_zeros
    dense = _layer_outputs(model, data, [tensor])[tensor]
    axes = (0, 2, 3) if dense.ndim == 4 else 0

    def mean_error(result):
        out = _layer_outputs(result.model, data, [tensor])[tensor]
        return np.abs((out - dense).mean(axis=axes)).max()

    assert mean_error(fixed) <= mean_error(plain) + 1e-6
    if tensor == "a":  # first layer: same input rows, every position used -> exact match
        assert mean_error(fixed) < 1e-4
    onnx.checker.check_model(fixed.model, full_check=True)


def test_bias_correction_needs_a_reconstructing_criterion(zoo):
    model, data = zoo
    with pytest.raises(InputError, match="bias correction"):
        sparsify(model, criterion="wanda", data=data, bias_correction=True)


def test_zero_bias_is_added_without_changing_outputs():
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(8, 4, 1, 1)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="c")],
        "nobias",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8, 3, 3])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    layers = find_layers(model, min_size=0).layers
    biased = add_zero_biases(model, layers)
    onnx.checker.check_model(biased, full_check=True)
    assert len(biased.graph.node[0].input) == 3
    feeds = {"x": rng.normal(size=(2, 4, 3, 3)).astype(np.float32)}
    np.testing.assert_array_equal(run(biased, feeds), run(model, feeds))
