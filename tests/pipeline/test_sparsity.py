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
    assert report.plan["sparsity"]["criterion"] == "wanda"
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
