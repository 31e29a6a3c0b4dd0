"""The guarded loop with injected hooks: kept steps, rollback, halving, protection, stops."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import ModelProto

from onnxprune.analysis import analyze
from onnxprune.pipeline.loop import GuardedPruning, LoopHooks, LoopSettings, Measured
from onnxprune.pipeline.schedule import Schedule, removal_order
from onnxprune.report.schema import (
    STATUS_GUARD_NOT_MET,
    STATUS_OK,
    STATUS_TARGET_NOT_REACHED,
)
from tests.analysis.test_rules import build, chain, conv, head


@pytest.fixture(scope="module")
def analysis():
    nodes, inits = chain(conv("c1", "x", "a", 3, 16), conv("c2", "a", "b", 16, 32, seed=1))
    h_nodes, h_inits = head("b", 32, 8)
    return analyze(build(nodes + h_nodes, inits + h_inits))


def group(analysis, source):
    return next(g for g in analysis.groups if g.sources == [source])


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
