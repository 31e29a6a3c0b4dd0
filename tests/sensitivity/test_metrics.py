"""Drop metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.sensitivity.metrics import (
    kl_divergence,
    relative_squared_error,
    resolve_drop_metric,
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
    with pytest.raises(InputError, match="known: kl, kl_last_axis, rel_mse, top1"):
        resolve_drop_metric("accuracy")
