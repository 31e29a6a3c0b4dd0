"""Running only the changed part of a pruned model gives the whole model's outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from onnxprune.analysis import analyze
from onnxprune.passes.prepare import prepare
from onnxprune.rewrite import apply_removal
from onnxprune.sensitivity import measure_sensitivity
from onnxprune.sensitivity.feeds import run_model
from onnxprune.sensitivity.suffix import (
    changed_nodes,
    select_boundaries,
    suffix_model,
    with_outputs,
)
from tests.oracle import make_model, tensor, weights


def chain_model():
    """x[N,6] -> fc_a(12) -> relu -> fc_b(12) -> relu -> fc_c(5)."""
    nodes = [
        helper.make_node("Gemm", ["x", "wa", "ba"], ["ha"], name="fc_a", transB=1),
        helper.make_node("Relu", ["ha"], ["ra"], name="relu_a"),
        helper.make_node("Gemm", ["ra", "wb", "bb"], ["hb"], name="fc_b", transB=1),
        helper.make_node("Relu", ["hb"], ["rb"], name="relu_b"),
        helper.make_node("Gemm", ["rb", "wc"], ["y"], name="fc_c", transB=1),
    ]
    inits = [
        weights("wa", (12, 6), 1),
        weights("ba", (12,), 2),
        weights("wb", (12, 12), 3),
        weights("bb", (12,), 4),
        weights("wc", (5, 12), 5),
    ]
    return make_model(nodes, [tensor("x", ["N", 6])], [tensor("y", ["N", 5])], inits)


@pytest.fixture(scope="module")
def analysis():
    _, prepared, _ = prepare(chain_model(), {})
    return analyze(prepared, {})


def _group(analysis, name):
    return next(g for g in analysis.groups if g.name == name)


def test_suffix_of_the_second_layer(analysis):
    group = _group(analysis, "fc_b")
    pruned = apply_removal(analysis, set(group.clusters[:5].tolist()))
    assert changed_nodes(analysis.model, pruned) == {"fc_b", "fc_c"}
    x = np.random.default_rng(0).standard_normal((7, 6)).astype(np.float32)
    extended = with_outputs(analysis.model, ["ra"])
    _, ra = run_model(extended, {"x": x})
    plan = suffix_model(pruned, {"fc_b", "fc_c"}, {"ra": ra})
    assert plan is not None
    suffix, names = plan
    assert names == ["ra"] and [n.name for n in suffix.graph.node] == ["fc_b", "relu_b", "fc_c"]
    (got,) = run_model(suffix, {"ra": ra})
    (want,) = run_model(pruned, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert suffix_model(pruned, {"fc_b"}, {}) is None  # boundary not cached: whole model


def test_boundaries_fit_the_budget(analysis):
    groups = [g.index for g in analysis.groups if g.prunable]
    assert select_boundaries(analysis, groups, 1e9, 10) == ["ra"]
    assert select_boundaries(analysis, groups, 12 * 4 * 10 - 1, 10) == []  # 480 bytes needed


def wide_then_narrow_model():
    """x[N,6] -> fc_a(64) -> relu -> fc_b(8) -> relu -> fc_c(8) -> relu -> fc_d(5): the second
    group's boundary (64 wide) costs 8 times the third's (8 wide)."""
    nodes = [
        helper.make_node("Gemm", ["x", "wa", "ba"], ["ha"], name="fc_a", transB=1),
        helper.make_node("Relu", ["ha"], ["ra"], name="relu_a"),
        helper.make_node("Gemm", ["ra", "wb", "bb"], ["hb"], name="fc_b", transB=1),
        helper.make_node("Relu", ["hb"], ["rb"], name="relu_b"),
        helper.make_node("Gemm", ["rb", "wc", "bc"], ["hc"], name="fc_c", transB=1),
        helper.make_node("Relu", ["hc"], ["rc"], name="relu_c"),
        helper.make_node("Gemm", ["rc", "wd"], ["y"], name="fc_d", transB=1),
    ]
    inits = [
        weights("wa", (64, 6), 1), weights("ba", (64,), 2), weights("wb", (8, 64), 3),
        weights("bb", (8,), 4), weights("wc", (8, 8), 5), weights("bc", (8,), 6),
        weights("wd", (5, 8), 7),
    ]  # fmt: skip
    return make_model(nodes, [tensor("x", ["N", 6])], [tensor("y", ["N", 5])], inits)


def test_the_budget_goes_to_the_groups_that_skip_most_per_byte():
    """A group's suffix starts at the layer that produces its channels: fc_b's group reads the
    boundary ra (64 wide, skips fc_a), fc_c's reads rb (8 wide, skips fc_a and fc_b), fc_a's
    only the graph input. With room for 64 values per sample, rb is cached (more skipped per
    byte), not ra, which group order took first and which does not fit beside it."""
    _, prepared, _ = prepare(wide_then_narrow_model(), {})
    analysis = analyze(prepared, {})
    groups = [g.index for g in analysis.groups if g.prunable]
    assert [analysis.groups[i].name for i in groups] == ["fc_a", "fc_b", "fc_c"]
    samples = 10
    assert select_boundaries(analysis, groups, 64 * 4 * samples, samples) == ["rb"]
    assert sorted(select_boundaries(analysis, groups, 1e9, samples)) == ["ra", "rb"]


def test_same_drops_with_and_without_the_cache(analysis):
    data = {"x": np.random.default_rng(1).standard_normal((20, 6)).astype(np.float32)}
    whole = measure_sensitivity(analysis, data, ratios=(0.25, 0.5), cache_mb=0)
    cached = measure_sensitivity(analysis, data, ratios=(0.25, 0.5))
    assert whole.suffix_runs == 0 and cached.suffix_runs == cached.runs == whole.runs == 4
    for a, b in zip(whole.groups, cached.groups, strict=True):
        for p, q in zip(a.points, b.points, strict=True):
            assert q.drop == pytest.approx(p.drop, rel=1e-4, abs=1e-9)


def test_renamed_initializer_of_equal_value_is_unchanged(analysis):
    renamed = onnx.ModelProto()
    renamed.CopyFrom(analysis.model)
    next(t for t in renamed.graph.initializer if t.name == "wa").name = "wa_copy"
    next(n for n in renamed.graph.node if n.name == "fc_a").input[1] = "wa_copy"
    assert changed_nodes(analysis.model, renamed) == set()
    next(t for t in renamed.graph.initializer if t.name == "ba").raw_data = bytes(48)
    assert changed_nodes(analysis.model, renamed) == {"fc_a"}
