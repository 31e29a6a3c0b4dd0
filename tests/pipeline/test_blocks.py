"""Blocks as a kind of the one plan: optimize removes residual units under the same guard."""

from __future__ import annotations

import pytest

from onnxprune.errors import InputError
from onnxprune.pipeline.api import optimize
from tests.blocks.graphs import calibration_feeds, residual_model


@pytest.fixture(scope="module")
def model():
    return residual_model(second_unit=True, small_second=True)


@pytest.fixture(scope="module")
def calibration():
    return calibration_feeds(24)


def test_optimize_removes_the_quiet_block(model, calibration):
    result = optimize(
        model,
        "macs=0.9",
        data=calibration,
        units="blocks",
        max_drop=100,
        steps=1,
        measure_latency=False,
    )
    report = result.report
    kept = [s for s in report.steps if s.status == "kept"]
    assert kept and kept[0].removed_items == {"blocks": 1}
    assert report.plan["blocks"]["removed"] == ["add2"]
    assert report.macs_after < report.macs_before
    assert "g_conv1" not in {node.name for node in result.model.graph.node}


def test_channels_and_blocks_share_one_ranking(model, calibration):
    result = optimize(
        model,
        "macs=0.6",
        data=calibration,
        units=["channels", "blocks"],
        max_drop=100,
        steps=2,
        round_to=1,
        measure_latency=False,
    )
    kinds = set()
    for step in result.report.steps:
        kinds |= set(step.removed_items)
    assert kinds <= {"channels", "blocks"} and result.report.macs_after < result.report.macs_before
    assert set(result.report.plan) == {"channels", "blocks"}


def test_combining_kinds_needs_measured_scores(model, calibration):
    with pytest.raises(InputError, match="allocation 'sensitivity'"):
        optimize(
            model,
            "macs=0.8",
            data=calibration,
            units="channels,blocks",
            allocation="global",
            measure_latency=False,
        )
    with pytest.raises(InputError, match="needs calibration data"):
        optimize(model, "macs=0.8", units="channels,blocks", measure_latency=False)
