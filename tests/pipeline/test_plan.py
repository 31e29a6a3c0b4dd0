"""The pruning plan: items of several kinds, built in order, grown by one guarded loop."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnxprune.allocate.schedule import RemovalUnit
from onnxprune.errors import InputError
from onnxprune.pipeline.api import optimize
from onnxprune.pipeline.plan import (
    KIND_FACTORIES,
    KindSetup,
    Plan,
    PlanKind,
    item_kind,
    merge_units,
    register_kind,
)
from tests.sensitivity.models import calibration, two_branch_model


def _unit(group, items, score, kind="channels"):
    return RemovalUnit(group, tuple(items), score, 1.0, 1.0, kind=kind)


def test_item_kind():
    assert item_kind(3) == "channels"
    assert item_kind(("masks", "fc", 2)) == "masks"


def test_build_applies_kinds_in_order_and_refuses_unknown_items():
    calls = []

    def kind(name, order):
        def apply(model, items):
            calls.append((name, sorted(map(str, items))))
            return model

        return PlanKind(name, apply, order=order)

    base = two_branch_model()
    plan = Plan(base, [kind("late", 20), kind("channels", 0)])
    assert plan.build({("late", 1), 5}) is base
    assert [name for name, _ in calls] == ["channels", "late"]
    assert plan.counts({("late", 1), 5, 6}) == {"late": 1, "channels": 2}
    with pytest.raises(RuntimeError, match="unknown kinds"):
        plan.build({("other", 1)})


def test_quick_build_skips_repair():
    calls = []
    base = two_branch_model()
    kind = PlanKind(
        "channels",
        lambda model, items: calls.append("repaired") or model,
        apply_quick=lambda model, items: calls.append("quick") or model,
    )
    plan = Plan(base, [kind])
    plan.build({1})
    plan.build_quick({1})
    assert calls == ["repaired", "quick"]


def test_merge_keeps_each_order_and_ranks_by_score():
    a = [_unit(0, [1], 0.1), _unit(0, [2], 0.5)]
    b = [_unit(("m", "x"), [("m", 1)], 0.3, "m"), _unit(("m", "x"), [("m", 2)], 0.9, "m")]
    merged = merge_units([a, b])
    assert [u.score for u in merged] == [0.1, 0.3, 0.5, 0.9]
    assert merge_units([a]) == a


def test_unknown_kind_is_bad_input():
    with pytest.raises(InputError, match="unknown kind of pruning 'nope'"):
        optimize(two_branch_model(), "macs=0.7", units="nope", measure_latency=False)


def test_one_loop_grows_items_of_two_kinds():
    """A second kind (zeroing whole rows of the loud branch's first layer, one unit per row,
    registered here as a plug-in would be) shares the loop with channels: kept steps hold
    items of both kinds and the written model realizes both."""

    @register_kind("rowmask")
    def rowmask_setup(context):
        name = "loud_fc1"
        weight = next(i for i in context.prepared.graph.initializer if i.name.startswith("loud_w1"))

        def apply(model, items):
            out = onnx.ModelProto()
            out.CopyFrom(model)
            for init in out.graph.initializer:
                if init.name == weight.name:
                    array = numpy_helper.to_array(init).copy()
                    for _, row in items:
                        array[..., row] = 0.0
                    init.CopyFrom(numpy_helper.from_array(array, init.name))
            return out

        units = [
            RemovalUnit(("rowmask", name), (("rowmask", r),), -1.0 + r * 1e-3, 0.0, 0.0, "rowmask")
            for r in range(4)
        ]
        return KindSetup(
            PlanKind("rowmask", apply, order=20, group_names={("rowmask", name): name}), units
        )

    try:
        result = optimize(
            two_branch_model(),
            "macs=0.8",
            data=calibration(40),
            units=["channels", "rowmask"],
            criterion="l1",
            allocation="sensitivity",
            recover="none",
            max_drop=100,
            steps=2,
            round_to=1,
            measure_latency=False,
        )
    finally:
        KIND_FACTORIES.pop("rowmask")
    kept = [s for s in result.report.steps if s.status == "kept"]
    assert kept and kept[-1].removed_items.get("rowmask") == 4
    assert kept[-1].removed_items.get("channels", 0) > 0
    assert result.report.plan["rowmask"] == {"items": 4}
    weights = {
        i.name: numpy_helper.to_array(i)
        for i in result.model.graph.initializer
        if i.name.startswith("loud_w1")
    }
    assert weights and all(np.all(w[..., :4] == 0) for w in weights.values())


def test_plans_count_quickly_only_when_every_kind_builds_without_repair():
    quick = PlanKind("channels", lambda m, i: m, apply_quick=lambda m, i: m)
    slow = PlanKind("blocks", lambda m, i: m, order=10)
    assert Plan(two_branch_model(), [quick]).counts_quickly
    assert not Plan(two_branch_model(), [quick, slow]).counts_quickly


def _conv_chain():
    """x -> c1 (3→16) -> c2 (16→32) -> c3 (32→32) -> head: c2 shrinks on both sides, so the
    per-cluster estimates of its two groups count the saving of the same weights twice."""
    from tests.analysis.test_rules import build, chain, conv, head

    nodes, inits = chain(
        conv("c1", "x", "a", 3, 16),
        conv("c2", "a", "b", 16, 32, seed=1),
        conv("c3", "b", "c", 32, 32, seed=2),
    )
    head_nodes, head_inits = head("c", 32, 8)
    return build(nodes + head_nodes, inits + head_inits)


@pytest.mark.parametrize("target", ["macs=0.6", "params=0.6"])
def test_one_step_meets_a_counted_target_without_corrections(target):
    """Steps are sized on MACs/parameters counted on the repair-free build, so one planned
    step lands on the target (no correction step) and the written model meets it."""
    rng = np.random.default_rng(0)
    result = optimize(
        _conv_chain(),
        target,
        data={"x": rng.standard_normal((40, 3, 8, 8)).astype(np.float32)},
        criterion="l1",
        allocation="global",
        recover="none",
        max_drop=100,
        steps=1,
        round_to=1,
        measure_latency=False,
    )
    assert result.ok
    assert [s.kind for s in result.report.steps] == ["full"]
    before, after = (
        (result.report.macs_before, result.report.macs_after)
        if target.startswith("macs")
        else (result.report.params_before, result.report.params_after)
    )
    assert after <= 0.6 * before * 1.001


@pytest.mark.parametrize(
    ("table_repair", "recover", "repaired"),
    [("none", None, False), ("bias", None, True), ("bias", "none", False)],
)
def test_sensitivity_table_uses_the_default_samples_and_repair(
    monkeypatch, table_repair, recover, repaired
):
    """The table reads ``defaults.SENSITIVITY_SAMPLES`` samples and repairs its points with
    ``defaults.SENSITIVITY_RECOVERY`` (``none``: unrepaired), never when the run repairs
    nothing."""
    import onnxprune.sensitivity as sensitivity
    from onnxprune import defaults

    monkeypatch.setattr(defaults, "SENSITIVITY_RECOVERY", table_repair)
    seen = {}
    measure = sensitivity.measure_sensitivity

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return measure(*args, **kwargs)

    monkeypatch.setattr(sensitivity, "measure_sensitivity", spy)
    optimize(
        two_branch_model(),
        "macs=0.8",
        data=calibration(40),
        allocation="sensitivity",
        recover=recover,
        max_drop=100,
        steps=1,
        round_to=1,
        measure_latency=False,
    )
    assert seen["max_samples"] == defaults.SENSITIVITY_SAMPLES
    assert (seen["recover"] is not None) == repaired
