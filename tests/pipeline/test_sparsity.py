"""Weight masks as a kind of the one plan: optimize --target sparsity=S under the guard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnxprune.errors import InputError
from onnxprune.pipeline.api import optimize

DIGITS = Path(__file__).resolve().parents[2] / "models" / "digits"


@pytest.fixture(scope="module")
def digits():
    calib = np.load(DIGITS / "digits_calib.npz")
    test = np.load(DIGITS / "digits_test.npz")
    return (
        onnx.load(DIGITS / "digits_vgg.onnx"),
        {"input": calib["input"][:128]},
        {"input": test["input"][:150], "labels": test["labels"][:150]},
    )


def _sparsity(model: onnx.ModelProto) -> float:
    weights = [
        numpy_helper.to_array(i)
        for i in model.graph.initializer
        if len(i.dims) >= 2 and np.prod(i.dims) >= 1024
    ]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.size for w in weights)


def test_optimize_reaches_a_sparsity_target_under_the_guard(digits):
    model, calib, evaluation = digits
    result = optimize(
        model,
        "sparsity=0.5",
        data=calib,
        eval_data=evaluation,
        steps=2,
        measure_latency=False,
    )
    report = result.report
    assert result.ok, report.reason
    assert report.steps and all(s.removed_items.keys() <= {"sparsity"} for s in report.steps)
    assert report.plan["sparsity"]["criterion"] == "obs"  # OBS rebuild (data, default recovery)
    assert _sparsity(result.model) >= 0.45
    assert report.macs_after == report.macs_before  # masks change no shapes
    assert report.metric_drop <= report.max_drop
    # per-layer sparsity measured on the written model, in the JSON, terminal and HTML reports
    summary = report.plan["sparsity"]
    layers = {row["node"]: row for row in summary["per_layer"]}
    for node, share in summary["layers"].items():
        assert layers[node]["before"] == 0.0 and layers[node]["after"] >= share - 0.01
    written = {
        node.name: numpy_helper.to_array(
            next(i for i in result.model.graph.initializer if i.name == node.input[1])
        )
        for node in result.model.graph.node
        if node.name in layers
    }
    for node, weight in written.items():
        assert layers[node]["after"] == pytest.approx(float((weight == 0).mean()), abs=1e-4)
    assert summary["sparsity_after"] > summary["sparsity_before"] == 0.0
    from rich.console import Console

    from onnxprune.report.html import render_html
    from onnxprune.report.terminal import print_summary

    console = Console(record=True, width=200)
    print_summary(report, console)
    text = console.export_text()
    assert "weight sparsity per layer" in text and f"all {len(layers)} weight layers" in text
    page = render_html(report)
    assert "Weight sparsity per layer" in page and page.count("data:image/png") >= 3
    assert "sparsity" in json.loads(report.to_json())["plan"]


def test_sparsity_is_optimized_alone(digits):
    model, calib, _ = digits
    with pytest.raises(InputError, match="sparsity is optimized alone"):
        optimize(model, "sparsity=0.5", data=calib, units="channels,sparsity")


def test_sparsity_recovery_rebuilds_each_layer_at_its_zero_count(digits):
    """Any recovery but none rebuilds the candidate by sequential OBS at the zero count of each
    layer (the quick build's counts: the masks alone), and the report names what ran: the
    sparsity criterion, not the channel methods."""
    model, calib, evaluation = digits
    options = dict(data=calib, eval_data=evaluation, max_drop=100.0, steps=1)
    options["plan_options"] = {"sparsity_ranking": "criterion"}  # the same counts in both runs
    runs = {
        recover: optimize(model, "sparsity=0.7", recover=recover, measure_latency=False, **options)
        for recover in ("none", "lsq")
    }
    plain, refitted = runs["none"], runs["lsq"]
    assert plain.report.criterion == "wanda"
    assert refitted.report.criterion == "obs"  # the written zeros are the OBS sweep's
    assert any("sparsity recovery: none" in note for note in plain.report.notes)
    assert any("sequential OBS reconstruction" in note for note in refitted.report.notes)
    assert not any(note.startswith("criterion ") for note in refitted.report.notes)
    layers = [row["node"] for row in refitted.report.plan["sparsity"]["per_layer"]]
    weight_of = {n.name: n.input[1] for n in model.graph.node if n.name in layers}
    before, after = (
        {i.name: numpy_helper.to_array(i) for i in run.model.graph.initializer}
        for run in (plain, refitted)
    )
    changed = 0
    for name in weight_of.values():
        assert np.count_nonzero(before[name] == 0) == np.count_nonzero(after[name] == 0)
        changed += not np.array_equal(before[name], after[name])
    assert changed >= 3
    assert refitted.report.metric_after > plain.report.metric_after


def test_a_sparsity_run_takes_its_criterion_and_refuses_an_allocation(digits):
    model, calib, _ = digits
    result = optimize(
        model, "sparsity=0.3", data=calib, criterion="magnitude", recover="none", steps=1,
        measure_latency=False,
    )  # fmt: skip
    assert result.report.plan["sparsity"]["criterion"] == "magnitude"
    gradient = optimize(
        model, "sparsity=0.3", data=calib, criterion="taylor", recover="none", steps=1,
        measure_latency=False,
    )  # fmt: skip
    assert gradient.report.plan["sparsity"]["criterion"] == "taylor"
    assert gradient.report.plan["sparsity"]["sparsity_after"] >= 0.29
    with pytest.raises(InputError, match="unknown sparsity criterion 'l1'"):
        optimize(model, "sparsity=0.3", data=calib, criterion="l1", measure_latency=False)
    with pytest.raises(InputError, match="allocation orders channel removal"):
        optimize(model, "sparsity=0.3", data=calib, allocation="global", measure_latency=False)
    with pytest.raises(InputError, match="criterion 'l1' scores channels"):
        optimize(model, "macs=0.8", data=calib, units="blocks", criterion="l1")


def test_measured_ranking_orders_increments_by_error_per_weight() -> None:
    from onnxprune.allocate.schedule import RemovalUnit
    from onnxprune.pipeline.sparsity import _ranked_by_measure

    def unit(node, k, score):
        return RemovalUnit(("sparsity", node), (("sparsity", node, k),), score, 0.0, 0.0)

    units = [unit("a", 1, 0.1), unit("a", 2, 0.2), unit("b", 1, 0.3), unit("c", 1, 0.05)]
    measured = {("a", 1): 4.0, ("a", 2): 6.0, ("b", 1): 1.0}  # c has no curve
    ranked = _ranked_by_measure(units, measured)
    assert [u.items[0][1:] for u in ranked] == [("b", 1), ("c", 1), ("a", 1), ("a", 2)]
    assert ranked[1].score == pytest.approx(2.5)  # mean of the measured first increments


def test_a_refitting_sparsity_run_ranks_by_measured_curves(digits):
    model, calib, _ = digits
    options = dict(data=calib, max_drop=100.0, steps=1, measure_latency=False)
    measured = optimize(model, "sparsity=0.5", recover="lsq", **options)
    assert any("sparsity ranking: measured" in note for note in measured.report.notes)
    # a top-1 guard: the gains are the relative squared error of the outputs
    assert any("output gain, measured by rel_mse)" in note for note in measured.report.notes)
    assert measured.report.seconds["sparsity_curves"] > 0
    plain = optimize(
        model, "sparsity=0.5", recover="lsq", plan_options={"sparsity_ranking": "criterion"},
        **options,
    )  # fmt: skip
    assert "sparsity_curves" not in plain.report.seconds
    assert any("normalised wanda score" in note for note in plain.report.notes)
    with pytest.raises(InputError, match="sparsity_ranking must be"):
        optimize(model, "sparsity=0.5", plan_options={"sparsity_ranking": "best"}, **options)
