"""``optimize(..., allocation=...)`` and ``--allocation``: the sensitivity order in the loop."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from onnxprune.allocate.schedule import RemovalUnit, uniform_order
from onnxprune.cli import cli
from onnxprune.errors import InputError
from onnxprune.pipeline.api import optimize
from tests.sensitivity.models import calibration, two_branch_model


def _widths(report) -> dict[str, int]:
    return {g.name: g.channels_after for g in report.groups}


def test_sensitivity_allocation_prunes_the_quiet_branch():
    result = optimize(
        two_branch_model(),
        "macs=0.7",
        data=calibration(40),
        allocation="sensitivity",
        max_drop=100,
        steps=2,
        round_to=1,
        measure_latency=False,
    )
    report = result.report
    assert result.ok and report.macs_after <= 0.7 * report.macs_before
    widths = _widths(report)
    assert widths["loud_fc1"] == 16 and widths["quiet_fc1"] < 16
    assert "sensitivity" in report.seconds


def test_uniform_allocation_prunes_both_branches_alike():
    result = optimize(
        two_branch_model(),
        "macs=0.7",
        data=calibration(40),
        allocation="uniform",
        max_drop=100,
        steps=1,
        round_to=1,
        measure_latency=False,
    )
    widths = _widths(result.report)
    assert widths["loud_fc1"] < 16 and abs(widths["loud_fc1"] - widths["quiet_fc1"]) <= 1


def test_bad_allocation_inputs():
    with pytest.raises(InputError, match="allocation must be one of"):
        optimize(two_branch_model(), "macs=0.7", allocation="random", measure_latency=False)
    with pytest.raises(InputError, match="needs calibration data"):
        optimize(
            two_branch_model(),
            "macs=0.7",
            allocation="sensitivity",
            measure_latency=False,
            synthesize="gaussian",  # no calibration data at all (inversion would make some)
        )


def test_uniform_order_interleaves_groups():
    units = [RemovalUnit(0, (c,), 0.1 * c, 1.0, 1.0) for c in range(4)]
    units += [RemovalUnit(1, (c,), 0.0, 1.0, 1.0) for c in range(4, 6)]

    analysis = SimpleNamespace(  # only group sizes are read
        groups=[SimpleNamespace(index=0, size=8), SimpleNamespace(index=1, size=4)]
    )
    order = [(u.group, u.clusters[0]) for u in uniform_order(analysis, units)]
    # shares after each unit: group 0 -> 1/8, 2/8, 3/8, 4/8; group 1 -> 1/4, 2/4;
    # equal shares go lower score first (group 1 scores 0)
    assert order == [(0, 0), (1, 4), (0, 1), (0, 2), (1, 5), (0, 3)]


def test_cli_allocation_flag(tmp_path):
    model, data = tmp_path / "two.onnx", tmp_path / "calib.npz"
    onnx.save(two_branch_model(), model)
    np.savez(data, x=calibration(40)["x"])
    out, report = tmp_path / "out.onnx", tmp_path / "r.json"
    args = ["optimize", model, "-o", out, "--data", data, "--target", "macs=0.7"]
    args += ["--round-to", "1", "--allocation", "sensitivity", "--max-drop", "100"]
    args += ["--report-json", report]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    groups = json.loads(report.read_text())["groups"]
    widths = {g["name"]: g["channels_after"] for g in groups}
    assert widths["loud_fc1"] == 16 and widths["quiet_fc1"] < 16
    for group in groups:  # the removed channels, by index, as many as the widths say
        assert len(group["removed_channels"]) == group["channels_before"] - group["channels_after"]
    bad = CliRunner().invoke(cli, [str(a) for a in [*args[:-2], "--allocation", "nope"]])
    assert bad.exit_code == 2
