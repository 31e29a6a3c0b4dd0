"""The masked refit: masks kept exactly, output error lowered, exact least squares where the
OBS sweep is exact."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.sparsity.apply import apply_weights
from onnxprune.sparsity.reconstruct import refit_masked
from onnxprune.sparsity.targets import find_layers
from tests.sparsity.tiny import calibration, run, weight_zoo


def _weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def _masked(model: onnx.ModelProto, names: list[str], share: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = _weights(model)
    masked = {}
    for name in names:
        value = weights[name].copy()
        value[rng.random(value.shape) < share] = 0.0
        masked[name] = value
    return apply_weights(model, masked)


@pytest.mark.parametrize("bias_correction", [True, False])
def test_refit_keeps_every_mask_and_lowers_the_output_error(bias_correction) -> None:
    model = weight_zoo()
    data = calibration(48)
    layers = find_layers(model, min_size=0).layers
    masked = _masked(model, [layer.weight for layer in layers], 0.5)
    refitted, used = refit_masked(
        model, layers, masked, data, bias_correction=bias_correction, damp=0.01
    )
    onnx.checker.check_model(refitted)
    before, after = _weights(masked), _weights(refitted)
    for layer in layers:
        zeros = before[layer.weight] == 0
        assert np.array_equal(after[layer.weight] == 0, zeros), layer.node
        assert used[layer.node][0] in ("obs", "wanda"), used[layer.node]
    reference, x = run(model, data), data
    error_masked = np.mean((run(masked, x) - reference) ** 2)
    error_refitted = np.mean((run(refitted, x) - reference) ** 2)
    assert error_refitted < 0.5 * error_masked


def _gemm(weight: np.ndarray) -> onnx.ModelProto:
    rows, cols = weight.shape
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)],
        "one_gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cols])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", rows])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_refit_is_the_masked_least_squares_solution_when_masked_columns_come_first() -> None:
    """For one Gemm whose mask is the first k columns of every row, the refit equals the
    closed form of min (w − W)(H + λI)(w − W)ᵀ s.t. w_M = 0 per row:
    w_K = W_K + (H + λI)_KK⁻¹ (H + λI)_KM W_M."""
    rng = np.random.default_rng(0)
    rows, cols, k = 6, 16, 8
    dense = rng.normal(size=(rows, cols))
    model = _gemm(dense)
    x = (rng.normal(size=(400, cols)) @ rng.normal(size=(cols, cols))).astype(np.float32)
    weight = dense.copy()
    weight[:, :k] = 0.0
    masked = apply_weights(model, {"w": weight.astype(np.float32)})
    layers = find_layers(model, min_size=0).layers
    damp = 0.05
    refitted, _ = refit_masked(
        model, layers, masked, {"x": x}, damp=damp, bias_correction=False, positions=None,
        max_samples=None,
    )  # fmt: skip
    got = _weights(refitted)["w"]
    rows64 = x.astype(np.float64)
    h = rows64.T @ rows64 / len(rows64)
    damped = h + damp * np.mean(np.diag(h)) * np.eye(cols)
    kept, removed = slice(k, cols), slice(0, k)
    expected = np.zeros_like(dense)
    expected[:, kept] = (
        dense[:, kept]
        + np.linalg.solve(damped[kept, kept], damped[kept, removed] @ dense[:, removed].T).T
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_refit_without_zeros_returns_the_model_unchanged() -> None:
    model = weight_zoo()
    layers = find_layers(model, min_size=0).layers
    refitted, used = refit_masked(model, layers, model, calibration(8))
    assert refitted is model and used == {}


def test_refit_at_the_zero_counts_rechooses_positions_on_every_kind_of_layer() -> None:
    """keep_positions=False: each layer keeps its zero count (plain, grouped and transposed
    convs, Gemm, MatMul), OBS layers move their zeros, and the output error falls below half
    of the masked model's."""
    model = weight_zoo()
    data = calibration(48)
    layers = find_layers(model, min_size=0).layers
    masked = _masked(model, [layer.weight for layer in layers], 0.5, seed=3)
    moved, used = refit_masked(model, layers, masked, data, keep_positions=False, damp=0.01)
    onnx.checker.check_model(moved)
    before, after = _weights(masked), _weights(moved)
    for layer in layers:
        assert np.count_nonzero(after[layer.weight] == 0) == np.count_nonzero(
            before[layer.weight] == 0
        ), layer.node
    obs_layers = [layer for layer in layers if used[layer.node][0] == "obs"]
    assert obs_layers
    assert any(
        not np.array_equal(after[layer.weight] == 0, before[layer.weight] == 0)
        for layer in obs_layers
    )
    reference = run(model, data)
    error_masked = np.mean((run(masked, data) - reference) ** 2)
    assert np.mean((run(moved, data) - reference) ** 2) < 0.5 * error_masked
