"""Quantized models are not pruned, and the runs say so instead of reporting success."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune import optimize, sparsify
from onnxprune.errors import InputError
from tests.quantized import DIGITS, quantized_vgg


@pytest.fixture(scope="module")
def calib():
    return {"input": np.load(DIGITS / "digits_calib.npz")["input"][:64]}


@pytest.mark.parametrize("form", ["qdq", "qoperator"])
def test_a_mac_target_on_a_quantized_model_is_not_met_and_says_why(tmp_path, calib, form):
    result = optimize(
        str(quantized_vgg(tmp_path, form)), "macs=0.7", data=calib, measure_latency=False
    )
    report = result.report
    assert report.status == "target_not_reached" and not report.target_met
    assert report.macs_before > 20_000_000 and report.macs_after == report.macs_before
    assert "quantized graph" in report.reason and "prune the float model" in report.reason


@pytest.mark.parametrize(
    ("form", "message"),
    [("qdq", "quantized weight"), ("qoperator", "quantized layers: QLinearConv")],
)
def test_sparsify_refuses_a_model_with_nothing_to_zero(tmp_path, form, message):
    with pytest.raises(InputError, match=message):
        sparsify(str(quantized_vgg(tmp_path, form)), 0.5)
