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
