"""Scale and shift through a monotone activation: the closed form, the rules and the guard."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxprune.analysis.graph_view import GraphView
from onnxprune.recover.activation_fit import MONOTONE_RULES, fit_scale_shift, monotone_reader
from onnxprune.recover.reconstruct import plan_fits
from onnxprune.recover.registry import RecoverySettings
from tests.recover.test_reconstruct import KEPT, _error, _recover, block  # noqa: F401


def _relu6():
    graph = helper.make_graph(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [
            numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
            numpy_helper.from_array(np.array(6.0, np.float32), "hi"),
        ],
    )
    return monotone_reader(GraphView(helper.make_model(graph)), "x")


def test_clip_reads_its_constant_bounds():
    relu6 = _relu6()
    assert (relu6.lo, relu6.hi) == (0.0, 6.0)
    np.testing.assert_array_equal(relu6.apply(np.array([-1.0, 3.0, 9.0])), [0.0, 3.0, 6.0])


def test_every_rule_is_monotone_and_flat_outside_its_interval():
    rng = np.random.default_rng(0)
    x = np.sort(rng.normal(scale=4.0, size=400))
    nodes = {
        "Relu": {},
        "LeakyRelu": {"alpha": 0.1},
        "Sigmoid": {},
        "Tanh": {},
        "HardSigmoid": {"alpha": 0.2, "beta": 0.5},
    }
    for op_type, attrs in nodes.items():
        node = helper.make_node(op_type, ["x"], ["y"], **attrs)
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        )
        rule = monotone_reader(GraphView(helper.make_model(graph)), "x")
        assert rule is not None and op_type in MONOTONE_RULES
        y = rule.apply(x)
        assert np.all(np.diff(y) >= 0)
        inside = (x > rule.lo) & (x < rule.hi)
        assert np.all(np.diff(y[inside]) > 0)
        assert np.ptp(y[x <= rule.lo]) == 0 if (x <= rule.lo).any() else True
        assert np.ptp(y[x >= rule.hi]) == 0 if (x >= rule.hi).any() else True


def test_closed_form_equals_least_squares_on_the_active_rows():
    """Without a ridge, (a, c) is the least-squares line through the active rows only."""
    rng = np.random.default_rng(1)
    target = rng.normal(loc=2.0, scale=3.0, size=(500, 3))
    predicted = 0.7 * target + 0.4 + 0.3 * rng.normal(size=target.shape)
    relu6 = _relu6()
    scale, shift = fit_scale_shift(predicted, target, relu6, ridge=0.0)
    for k in range(3):
        active = (target[:, k] > 0) & (target[:, k] < 6)
        design = np.stack([predicted[active, k], np.ones(active.sum())], axis=1)
        expected, *_ = np.linalg.lstsq(design, target[active, k], rcond=None)
        np.testing.assert_allclose([scale[k], shift[k]], expected, rtol=1e-9, atol=1e-9)


def test_the_post_activation_error_never_grows():
    """A channel whose adjustment would raise the error after the activation keeps (1, 0)."""
    rng = np.random.default_rng(2)
    target = rng.normal(loc=1.0, scale=2.0, size=(400, 4))
    predicted = target + 0.2 * rng.normal(size=target.shape)
    predicted[:, 3] = np.where(target[:, 3] > 0, target[:, 3], -5.0 * target[:, 3])  # flat rows
    relu6 = _relu6()
    for ridge in (0.0, 0.1, 10.0):
        scale, shift = fit_scale_shift(predicted, target, relu6, ridge)
        after = np.square(relu6.apply(scale * predicted + shift) - relu6.apply(target)).sum(0)
        before = np.square(relu6.apply(predicted) - relu6.apply(target)).sum(0)
        assert np.all(after <= before + 1e-12)


def test_ridge_pulls_toward_the_identity():
    rng = np.random.default_rng(3)
    target = rng.uniform(0.5, 5.0, size=(300, 2))
    predicted = 0.5 * target
    relu6 = _relu6()
    loose, _ = fit_scale_shift(predicted, target, relu6, 0.0)
    tight, _ = fit_scale_shift(predicted, target, relu6, 100.0)
    assert np.all(np.abs(tight - 1.0) < np.abs(loose - 1.0))


def test_reconstruct_plans_the_fit_only_for_activation_readers(block):  # noqa: F811
    _, analysis, removed, pruned, _ = block
    settings = RecoverySettings(activation_fit=True)
    plans = {p.fit.node: p for p in plan_fits(analysis, removed, pruned, settings, print)}
    assert plans["a"].activation.op_type == "Relu"
    assert plans["dw"].activation.op_type == "Relu"
    assert plans["p"].activation is None  # feeds the residual Add
    assert plans["head"].activation is None  # a graph output
    off = plan_fits(analysis, removed, pruned, RecoverySettings(), print)
    assert all(p.activation is None for p in off)


@pytest.mark.parametrize(("output", "channels"), [("ra", KEPT), ("rd", KEPT)])
def test_activation_fit_does_not_raise_the_post_activation_error(block, output, channels):  # noqa: F811
    """On the calibration data, the activations after the refitted layers are at least as
    close to the unpruned model's with the fit as without it."""
    model, *_, calib = block
    plain = _recover(block, ridge=1.0)
    fitted = _recover(block, ridge=1.0, activation_fit=True)
    onnx.checker.check_model(fitted, full_check=True)
    assert _error(fitted, model, calib, output, channels) <= _error(
        plain, model, calib, output, channels
    ) * (1 + 1e-6)
