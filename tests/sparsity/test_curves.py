"""Error curves and output gains measured on calibration data."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from onnxprune.sparsity.criteria import resolve_criterion
from onnxprune.sparsity.curves import error_curves, fold_grams, layer_curve
from onnxprune.sparsity.targets import find_layers
from tests.sparsity.tiny import calibration, weight_zoo


@pytest.fixture(scope="module")
def setup():
    model = weight_zoo()
    layers = find_layers(model, min_size=0).layers
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return model, layers, weights, calibration(32)


def test_folds_split_the_rows_by_sample(setup):
    model, layers, _, data = setup
    mm = [layer for layer in layers if layer.node == "mm"]
    folds = fold_grams(model, mm, data, positions=None, batch_size=5, max_samples=None, seed=0)
    (g0, n0), (g1, n1) = folds["mm"]
    assert (n0, n1) == (16, 16)  # one row per sample, even and odd samples across batches
    assert not np.allclose(g0, g1)


@pytest.mark.parametrize("criterion", ["obs", "wanda"])
def test_curves_start_at_zero_and_grow(setup, criterion):
    model, layers, weights, data = setup
    curves = error_curves(model, layers, weights, data, resolve_criterion(criterion))
    assert set(curves) == {"a", "fc", "mm"}  # grouped conv and ConvTranspose have none
    for curve in curves.values():
        assert curve.levels[0] == 0.0 and curve.errors[0] == 0.0
        assert curve.errors[-1] > curve.errors[1] > 0


def test_obs_curve_is_below_the_mask_only_curve():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))
    w = rng.normal(size=(8, 12))
    half = (x[::2].T @ x[::2], 200), (x[1::2].T @ x[1::2], 200)
    obs = layer_curve(w, half, resolve_criterion("obs"))
    mask = layer_curve(w, half, resolve_criterion("magnitude"))
    assert all(o <= m + 1e-9 for o, m in zip(obs.errors[1:], mask.errors[1:], strict=True))


def test_the_last_linear_layer_passes_its_error_on_with_gain_one(setup):
    """mm produces the model output: a relative error e of its output is a relative error e of
    the model output, so its output-scaled curve equals its own curve."""
    model, layers, weights, data = setup
    criterion = resolve_criterion("obs")
    plain = error_curves(model, layers, weights, data, criterion, positions=None)
    scaled = error_curves(
        model, layers, weights, data, criterion, positions=None, output_gain=True,
        gain_samples=32,
    )  # fmt: skip
    np.testing.assert_allclose(scaled["mm"].errors, plain["mm"].errors, rtol=1e-3)


def _two_scale_head() -> onnx.ModelProto:
    """x (N, 8) -> MatMul box (8x4) -> ×1000 ┐
                 -> MatMul cls (8x4) -> Sigmoid ┴ Concat(axis 1) -> y (N, 8): pixel-sized
    coordinates beside scores in [0, 1], as in a raw YOLO head."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "wbox"),
        numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "wcls"),
        numpy_helper.from_array(np.array(1000.0, np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "wbox"], ["b0"], name="box"),
        helper.make_node("Mul", ["b0", "scale"], ["b"], name="pixels"),
        helper.make_node("MatMul", ["x", "wcls"], ["c0"], name="cls"),
        helper.make_node("Sigmoid", ["c0"], ["c"], name="score"),
        helper.make_node("Concat", ["b", "c"], ["y"], name="head", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "two_scale_head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_gains_by_a_standardized_measure_see_the_score_branch():
    """The default gain (‖Δy‖²/‖y‖² over the outputs) reads the score branch as free next to
    pixel coordinates; ``std_mse`` gives both branches gains of the same order."""
    from onnxprune.sensitivity.metrics import standardized_squared_error
    from onnxprune.sparsity.curves import fold_grams, output_gains

    model = _two_scale_head()
    layers = find_layers(model, min_size=0).layers
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    data = {"x": np.random.default_rng(4).normal(size=(64, 8)).astype(np.float32)}
    folds = fold_grams(model, layers, data, positions=None, batch_size=32, max_samples=None, seed=0)
    hessians = {node: (g0 + g1) / (n0 + n1) for node, ((g0, n0), (g1, n1)) in folds.items()}
    raw = output_gains(model, layers, weights, hessians, data, samples=64)
    standardized = output_gains(
        model, layers, weights, hessians, data, samples=64, gain_metric=standardized_squared_error
    )
    assert raw["cls"] < 1e-6 * raw["box"]
    assert 0.05 < standardized["cls"] / standardized["box"] < 20
