"""Model inversion: eligibility, the smoothness prior, standardization, the synthesized inputs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from onnxprune.evaluate.inversion import (
    InversionPlan,
    InversionSettings,
    InversionTooSlow,
    estimated_cost,
    inversion_plan,
    invert,
    smoothness_prior,
    standardize,
)
from tests.evaluate.tiny import conv_classifier, linear_model

IMAGE = ("x", np.float32, ["batch", 1, 12, 12])


def test_an_image_classifier_is_eligible_with_its_spatial_axes_and_classes():
    plan = inversion_plan(conv_classifier(classes=5), [IMAGE])
    assert plan == InversionPlan("x", (1, 12, 12), (1, 2), "logits", 5)


@pytest.mark.parametrize(
    ("specs", "reason"),
    [
        ([IMAGE, ("y", np.float32, ["batch", 3])], "2 inputs"),
        ([("x", np.int64, ["batch", 1, 12, 12])], "not floating point"),
        ([("x", np.float32, ["batch", 1, "h", 12])], "no fixed sample shape"),
        ([("x", np.float32, ["batch", 3, 4])], "no spatial axis"),
    ],
)
def test_ineligible_inputs_say_why(specs, reason):
    result = inversion_plan(conv_classifier(), specs)
    assert isinstance(result, str) and reason in result


def test_an_output_that_is_not_class_scores_is_not_inverted():
    model = conv_classifier()
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "c"
    assert "not class scores" in inversion_plan(model, [IMAGE])
    assert isinstance(inversion_plan(linear_model(np.eye(3)), [("x", np.float32, ["b", 3])]), str)


def test_smoothness_prior_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 5, 6))
    value, grad = smoothness_prior(x, (1, 2))
    step = 1e-6
    for index in [(0, 0, 0, 0), (1, 1, 2, 3), (0, 1, 4, 5), (1, 0, 3, 0)]:
        shifted = x.copy()
        shifted[index] += step
        numeric = (smoothness_prior(shifted, (1, 2))[0] - value) / step
        assert numeric[index[0]] == pytest.approx(grad[index], rel=1e-4, abs=1e-7)


def test_a_constant_image_has_no_roughness():
    value, grad = smoothness_prior(np.ones((1, 1, 4, 4)), (1, 2))
    assert value[0] == 0 and not grad.any()


def test_standardize_gives_each_sample_and_channel_zero_mean_and_unit_variance():
    rng = np.random.default_rng(1)
    x = standardize(3 + 5 * rng.standard_normal((4, 3, 8, 8)), (1, 2))
    assert np.allclose(x.mean(axis=(2, 3)), 0, atol=1e-9)
    assert np.allclose(x.std(axis=(2, 3)), 1)
    assert not standardize(np.ones((1, 1, 3, 3)), (1, 2)).any()


def test_estimated_cost_counts_forward_and_backward_of_every_sample_and_step():
    assert estimated_cost(1e6, 10, InversionSettings(steps=5)) == 3 * 1e6 * 10 * 5


def _scores(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _agreement(model, x, classes):
    return float((_scores(model, x).argmax(axis=1) == classes).mean())


def _target_probability(model, x, classes):
    scores = _scores(model, x)
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return float(p[np.arange(len(x)), classes].mean())


def test_inverted_inputs_are_standardized_deterministic_and_pulled_to_their_class():
    model = conv_classifier(classes=3)
    plan = inversion_plan(model, [IMAGE])
    settings = InversionSettings(steps=60, batch_size=8, tv_weight=1.0)
    x, classes = invert(model, plan, 12, seed=3, settings=settings)
    assert x.shape == (12, 1, 12, 12) and x.dtype == np.float32
    assert classes.tolist() == [0, 1, 2] * 4
    assert np.allclose(x.std(axis=(2, 3)), 1, atol=1e-4)
    again, _ = invert(model, plan, 12, seed=3, settings=settings)
    assert np.array_equal(x, again)
    start, _ = invert(model, plan, 12, seed=3, settings=InversionSettings(steps=0, batch_size=8))
    assert _agreement(model, x, classes) > _agreement(model, start, classes)
    assert _target_probability(model, x, classes) > _target_probability(model, start, classes) + 0.1


def test_a_model_with_a_fixed_batch_is_inverted_in_batches_of_that_size():
    model = conv_classifier(batch=4)
    plan = inversion_plan(model, [("x", np.float32, [4, 1, 12, 12])])
    x, classes = invert(model, plan, 6, settings=InversionSettings(steps=3), fixed_batch=4)
    assert x.shape == (6, 1, 12, 12) and len(classes) == 6


def test_an_inversion_whose_extrapolated_time_exceeds_its_budget_stops_early():
    model = conv_classifier()
    plan = inversion_plan(model, [IMAGE])
    with pytest.raises(InversionTooSlow, match="over the budget"):
        invert(model, plan, 8, settings=InversionSettings(steps=50, budget_seconds=1e-9))
    x, _ = invert(model, plan, 8, settings=InversionSettings(steps=5, budget_seconds=None))
    assert x.shape == (8, 1, 12, 12)


def test_a_float16_model_is_inverted_in_float32() -> None:
    from tests.half import to_float16

    model = to_float16(conv_classifier(classes=3))
    plan = inversion_plan(model, [("x", np.float16, ["batch", 1, 12, 12])])
    x, classes = invert(model, plan, 6, seed=1, settings=InversionSettings(steps=5, batch_size=6))
    assert x.shape == (6, 1, 12, 12) and np.isfinite(x).all() and len(classes) == 6
