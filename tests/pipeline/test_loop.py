"""The guarded loop with injected hooks: kept steps, rollback, halving, protection, stops."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import ModelProto

from onnxprune.allocate.schedule import RemovalUnit, Schedule, removal_order
from onnxprune.pipeline.loop import GuardedPruning, LoopHooks, LoopSettings, Measured
from onnxprune.report.schema import (
    STATUS_GUARD_NOT_MET,
    STATUS_OK,
    STATUS_TARGET_NOT_REACHED,
)
from tests.allocate.chain import chain_analysis, group


@pytest.fixture(scope="module")
def analysis():
    return chain_analysis()


def run_loop(analysis, metric, *, total, steps=4, max_drop=1.0, scores=None):
    """Loop over cluster counts with a fake metric(removed) -> float."""
    scores = np.arange(analysis.n_clusters, dtype=float) + 1 if scores is None else scores
    schedule = Schedule(analysis, removal_order(analysis, scores))
    hooks = LoopHooks(
        build=lambda removed: ModelProto(),
        count=lambda model: (0, 0),
        metric=lambda model, quick: None,
        gap=lambda measured: total - len(measured.removed),
    )
    # The fake model carries nothing: the metric reads the removed set of the candidate.
    loop = GuardedPruning(
        schedule,
        hooks,
        LoopSettings(measure="clusters", total=total, steps=steps, max_drop=max_drop),
        Measured(frozenset(), ModelProto(), 0, 0, 0, metric(frozenset())),
        {g.index: g.name for g in analysis.groups},
        macs_of=lambda removed: 0,
    )
    original_measure = loop._measure

    def measure(removed, quick=False):
        result = original_measure(removed, quick)
        result.metric = metric(removed)
        return result

    loop._measure = measure
    return loop.run()


def test_every_step_kept_when_the_metric_holds(analysis):
    outcome = run_loop(analysis, lambda removed: 90.0, total=20, steps=4)
    assert outcome.status == STATUS_OK
    assert [r.status for r in outcome.records] == ["kept"] * 4
    assert [r.removed_clusters for r in outcome.records] == [5, 10, 15, 20]
    assert len(outcome.best.removed) == 20


def test_sensitive_group_is_rolled_back_then_protected(analysis):
    c1 = set(int(c) for c in group(analysis, "c1").clusters)

    def metric(removed):  # any c1 channel costs 5 points; c2 channels are free
        return 90.0 - 5.0 * len(removed & c1)

    outcome = run_loop(analysis, metric, total=12, steps=2)
    assert outcome.status == STATUS_OK
    statuses = [r.status for r in outcome.records]
    assert "rolled_back" in statuses and statuses[-1] == "kept"
    assert [r.kind for r in outcome.records if r.status == "rolled_back"][:2] == ["full", "halved"]
    assert group(analysis, "c1").index in outcome.protected
    assert not outcome.best.removed & c1
    assert len(outcome.best.removed) == 12
    rolled = next(r for r in outcome.records if r.status == "rolled_back")
    assert rolled.drop > 1.0 and "guard" in rolled.reason


def test_guard_not_met_keeps_the_best_state(analysis):
    def metric(removed):  # the first 4 clusters are free, every further one costs 2 points
        return 90.0 - 2.0 * max(0, len(removed) - 4)

    outcome = run_loop(analysis, metric, total=30, steps=2)
    assert outcome.status == STATUS_GUARD_NOT_MET
    assert len(outcome.best.removed) == 4  # 15 -> 7.5 -> 3.75: 4 units fit
    assert outcome.best.metric == 90.0
    assert outcome.records[-1].status == "rolled_back"
    assert "guard" in outcome.reason


def test_target_beyond_the_prunable_channels_is_not_reached(analysis):
    outcome = run_loop(analysis, lambda removed: 90.0, total=1000, steps=2)
    assert outcome.status == STATUS_TARGET_NOT_REACHED
    assert len(outcome.best.removed) == 12 + 25  # every cluster the caps allow


def test_the_diagnosis_of_a_failed_step_builds_without_repair(analysis):
    """Full candidates are built with repair; the per-group diagnosis uses build_quick."""
    c1 = set(int(c) for c in group(analysis, "c1").clusters)
    built = []
    schedule = Schedule(analysis, removal_order(analysis, np.arange(analysis.n_clusters) + 1.0))

    def make(kind):
        def build(removed):
            built.append(kind)
            model = ModelProto()
            model.doc_string = ",".join(map(str, sorted(removed)))
            return model

        return build

    def metric(model, quick):
        removed = {int(c) for c in model.doc_string.split(",") if c}
        return 90.0 - 5.0 * len(removed & c1)

    hooks = LoopHooks(
        build=make("repaired"),
        build_quick=make("quick"),
        count=lambda model: (0, 0),
        metric=metric,
        gap=lambda measured: 12 - len(measured.removed),
    )
    loop = GuardedPruning(
        schedule,
        hooks,
        LoopSettings(measure="clusters", total=12, steps=2),
        Measured(frozenset(), ModelProto(), 0, 0, 0, 90.0),
        {g.index: g.name for g in analysis.groups},
        macs_of=lambda removed: 0,
    )
    outcome = loop.run()
    assert "quick" in built and "repaired" in built
    assert outcome.sensitivity[group(analysis, "c1").index] > 1.0


def test_a_removal_measured_and_rejected_before_is_not_rebuilt(analysis):
    """Build and metric are deterministic: the same rejected removed set is answered from
    memory (full and quick alike), a new set is built."""
    built: list[frozenset] = []
    schedule = Schedule(analysis, removal_order(analysis, np.arange(analysis.n_clusters) + 1.0))
    messages: list[str] = []

    def build(removed):
        built.append(frozenset(removed))
        model = ModelProto()
        model.doc_string = str(len(removed))
        return model

    hooks = LoopHooks(
        build=build,
        build_quick=build,
        count=lambda model: (0, 0),
        metric=lambda model, quick: 90.0 - int(model.doc_string),  # every cluster costs 1 point
        gap=lambda measured: 1,
        progress=messages.append,
    )
    loop = GuardedPruning(
        schedule,
        hooks,
        LoopSettings(measure="clusters", total=12, steps=2, max_drop=1.0),
        Measured(frozenset(), ModelProto(), 0, 0, 0, 90.0),
        {g.index: g.name for g in analysis.groups},
        macs_of=lambda removed: 0,
    )
    units = schedule.take(set(), 4, "clusters", set())
    first, _ = loop._attempt(1, 1, "full", units)
    again, record = loop._attempt(2, 1, "full", units)
    assert not first and not again
    assert len(built) == 1 and loop.reused == 1
    assert record.metric == 86.0 and loop.records[-1].status == "rolled_back"
    assert "not rebuilt" in messages[-1]
    loop._measure(built[0], quick=True)
    loop._measure(built[0], quick=True)
    assert len(built) == 2 and loop.reused == 2  # quick is a separate measurement, once
    kept, _ = loop._attempt(3, 1, "full", schedule.take(set(), 1, "clusters", set()))
    assert kept and len(built) == 3


def _counted_loop(analysis, *, counted: bool, total: float = 16.0) -> GuardedPruning:
    """A loop whose units' estimates (1 per cluster) overstate the counted amount (0.8 per
    cluster, as a per-cluster MAC estimate double-counts a layer shrinking on both sides)."""
    scores = np.arange(analysis.n_clusters, dtype=float) + 1
    schedule = Schedule(analysis, removal_order(analysis, scores))
    hooks = LoopHooks(
        build=lambda removed: ModelProto(),
        count=lambda model: (0, 0),
        metric=lambda model, quick: 90.0,
        gap=lambda measured: max(0.0, total - 0.8 * len(measured.removed)),
        removed_amount=(lambda removed: 0.8 * len(removed)) if counted else None,
    )
    return GuardedPruning(
        schedule,
        hooks,
        LoopSettings(measure="clusters", total=total, steps=1, max_drop=1.0),
        Measured(frozenset(), ModelProto(), 0, 0, 0, 90.0),
        {g.index: g.name for g in analysis.groups},
        macs_of=lambda removed: 0,
    )


def test_steps_sized_on_estimates_need_a_correction(analysis):
    outcome = _counted_loop(analysis, counted=False).run()
    assert outcome.status == STATUS_OK
    assert [r.kind for r in outcome.records] == ["full", "correction"]
    assert outcome.records[0].removed_clusters == 16  # 12.8 counted: short of 16


def test_steps_sized_on_counted_amounts_meet_the_target_in_one_build(analysis):
    outcome = _counted_loop(analysis, counted=True).run()
    assert outcome.status == STATUS_OK
    assert [r.kind for r in outcome.records] == ["full"]
    assert outcome.records[0].removed_clusters == 20  # the shortest prefix counting 16


def test_counted_take_returns_everything_when_nothing_reaches(analysis):
    loop = _counted_loop(analysis, counted=True, total=1e6)
    available = loop.schedule.available(set(), set())
    assert loop._take(1e6) == available


def test_a_coarse_unit_is_swapped_for_finer_ones_that_fit_the_step(analysis):
    # One 50-MAC unit of c1 ranks first, c2's 5-MAC units after it: a 20-MAC target on a
    # 100-MAC model takes four c2 units (0.80 kept), not the c1 unit (0.50 kept).
    c1, c2 = group(analysis, "c1"), group(analysis, "c2")
    units = [
        RemovalUnit(group=c1.index, items=(int(c1.clusters[0]),), score=0.0, macs=50.0, params=0)
    ] + [
        RemovalUnit(group=c2.index, items=(int(c),), score=1.0, macs=5.0, params=0)
        for c in c2.clusters[:8]
    ]
    macs = {int(c1.clusters[0]): 50.0, **{int(c): 5.0 for c in c2.clusters}}

    def removed_by(fit_tolerance: float) -> frozenset:
        loop = GuardedPruning(
            Schedule(analysis, units),
            LoopHooks(
                build=lambda removed: ModelProto(),
                count=lambda model: (0, 0),
                metric=lambda model, quick: 90.0,
                gap=lambda measured: 20.0 - sum(macs[c] for c in measured.removed),
            ),
            LoopSettings(
                measure="macs", total=20.0, steps=1, whole=100.0, fit_tolerance=fit_tolerance
            ),
            Measured(frozenset(), ModelProto(), 100, 100, 0, 90.0),
            {g.index: g.name for g in analysis.groups},
            macs_of=lambda removed: 0,
        )
        outcome = loop.run()
        assert outcome.status == STATUS_OK
        return outcome.best.removed

    assert removed_by(0.01) == frozenset(int(c) for c in c2.clusters[:4])
    assert removed_by(0.0) == frozenset({int(c1.clusters[0])})  # the check switched off
