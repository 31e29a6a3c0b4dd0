"""Drop metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.sensitivity.metrics import (
    SMOOTH_DROP_METRICS,
    kl_divergence,
    relative_squared_error,
    resolve_drop_metric,
    standardized_squared_error,
    top1_disagreement,
)


def test_kl_hand_computed():
    ref = np.log(np.array([[0.5, 0.25, 0.25]], dtype=np.float32))  # logits -> p = .5 .25 .25
    out = np.log(np.array([[0.25, 0.5, 0.25]], dtype=np.float32))
    expected = 0.5 * math.log(0.5 / 0.25) + 0.25 * math.log(0.25 / 0.5)  # = 0.25 ln 2
    assert kl_divergence([ref], [out]) == pytest.approx(expected, rel=1e-6)
    assert kl_divergence([ref], [ref + 3.0]) == pytest.approx(0.0, abs=1e-12)  # shift-invariant


def test_kl_reads_the_channel_axis_of_maps():
    ref = np.zeros((1, 2, 1, 1), np.float32)  # two classes, one position: p = .5 .5
    out = np.array([np.log([0.75, 0.25])], np.float32).reshape(1, 2, 1, 1)
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert kl_divergence([ref], [out]) == pytest.approx(expected, rel=1e-6)


def test_top1_and_relative_error():
    ref = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.float32)
    out = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], np.float32)
    assert top1_disagreement([ref], [out]) == pytest.approx(25.0)
    assert relative_squared_error([ref], [out]) == pytest.approx(2 / 4)
    ints = [np.array([1, 2])]
    assert top1_disagreement(ints, ints) == 0.0  # integer outputs are not compared


def test_mismatches_and_registry():
    with pytest.raises(InputError, match="shape"):
        kl_divergence([np.zeros((2, 3))], [np.zeros((2, 4))])
    with pytest.raises(InputError, match="outputs"):
        kl_divergence([np.zeros((2, 3))], [])
    assert resolve_drop_metric("kl") == ("kl", kl_divergence)
    with pytest.raises(InputError, match="known: kl, kl_last_axis, rel_mse, std_mse, top1"):
        resolve_drop_metric("accuracy")


def test_standardized_error_hand_computed():
    """Channel c of axis 1: Σ error² over Σ (reference − its mean)²; mean over channels."""
    ref = np.array([[[0.0, 2.0]], [[2.0, 4.0]]])  # [N=2, C=1, 2]: mean 2, spread 4+0+0+4 = 8
    out = ref + np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # error 2
    assert standardized_squared_error([ref], [out]) == pytest.approx(2 / 8)
    assert standardized_squared_error([ref], [ref]) == 0.0


def test_standardized_error_weighs_channels_of_any_scale_alike():
    """A head with pixel coordinates beside scores in [0, 1]: the same relative change of
    either channel costs the same, where the relative squared error sees the pixels only."""
    rng = np.random.default_rng(0)
    ref = np.stack([rng.uniform(0, 320, (8, 50)), rng.uniform(0, 1, (8, 50))], axis=1)
    noise = rng.normal(size=(8, 50)) * 0.1
    score_moved, box_moved = ref.copy(), ref.copy()
    score_moved[:, 1] += noise * ref[:, 1].std()
    box_moved[:, 0] += noise * ref[:, 0].std()
    assert standardized_squared_error([ref], [score_moved]) == pytest.approx(
        standardized_squared_error([ref], [box_moved]), rel=1e-9
    )
    assert relative_squared_error([ref], [score_moved]) < 1e-4 * relative_squared_error(
        [ref], [box_moved]
    )


def test_standardized_error_of_a_constant_channel_uses_the_mean_spread():
    ref = np.array([[1.0, 0.0], [3.0, 0.0]])  # column 0 spread 2, column 1 constant
    assert standardized_squared_error([ref], [ref]) == 0.0
    out = ref + np.array([[0.0, 1.0], [0.0, 0.0]])
    # the mean spread of the channels is (2 + 0) / 2 = 1
    assert standardized_squared_error([ref], [out]) == pytest.approx((0 + 1 / 1) / 2)
    zeros = np.zeros((2, 2))
    assert standardized_squared_error([zeros], [zeros]) == 0.0
    assert standardized_squared_error([zeros], [zeros + 1]) == math.inf


def test_smooth_drop_metrics_are_marked():
    assert {"kl", "kl_last_axis", "rel_mse", "std_mse"} <= SMOOTH_DROP_METRICS
    assert "top1" not in SMOOTH_DROP_METRICS


def test_gain_metrics_must_be_smooth():
    from onnxprune.sensitivity.metrics import resolve_smooth_drop_metric

    assert resolve_smooth_drop_metric("std_mse")[0] == "std_mse"
    with pytest.raises(InputError, match="gain metric 'top1' is not smooth"):
        resolve_smooth_drop_metric("top1")
