"""Sensitivity allocation: cheapest groups first, targets met, round_to / protected / caps."""

from __future__ import annotations

import itertools

import pytest

from onnxprune.analysis import analyze
from onnxprune.errors import InputError
from onnxprune.passes.prepare import prepare
from onnxprune.sensitivity import measure_sensitivity
from onnxprune.sensitivity.allocate import (
    _lower_hull,
    allocate_by_sensitivity,
    sensitivity_order,
)
from onnxprune.sensitivity.table import GroupSensitivity, SensitivityPoint, SensitivityTable
from tests.sensitivity.models import HIDDEN, calibration, two_branch_model

MACS_PER_UNIT = 18  # 8 in fc1 + 10 in fc2


@pytest.fixture(scope="module")
def analysis():
    _, prepared, _ = prepare(two_branch_model(), {})
    return analyze(prepared, {})


@pytest.fixture(scope="module")
def table(analysis):
    return measure_sensitivity(analysis, calibration(32), ratios=(0.25, 0.5, 0.75))


def _group(analysis, name):
    return next(g for g in analysis.groups if g.name == name)


@pytest.mark.parametrize("method", ["greedy", "knapsack"])
def test_insensitive_branch_goes_first(analysis, table, method):
    quiet = _group(analysis, "quiet_fc1")
    result = allocate_by_sensitivity(table, analysis, 100, method=method)
    assert result.met and result.amount >= 100
    assert set(result.per_group) == {quiet.index}
    assert result.per_group[quiet.index] == 6  # ceil(100 / 18) units
    assert result.removed <= set(quiet.clusters.tolist())


@pytest.mark.parametrize("method", ["greedy", "knapsack"])
def test_sensitive_branch_only_past_the_cap(analysis, table, method):
    quiet, loud = _group(analysis, "quiet_fc1"), _group(analysis, "loud_fc1")
    # quiet gives at most floor(0.8 * 16) = 12 units = 216 MACs; 250 needs 2 loud units
    result = allocate_by_sensitivity(table, analysis, 250, method=method)
    assert result.met
    assert result.per_group == {quiet.index: 12, loud.index: 2}
    assert result.ratios == {"quiet_fc1": 12 / 16, "loud_fc1": 2 / 16}


def test_round_to_keeps_multiples(analysis, table):
    for amount in (40, 150, 300):
        result = allocate_by_sensitivity(table, analysis, amount, round_to=4)
        assert result.met
        assert all((HIDDEN - removed) % 4 == 0 for removed in result.per_group.values())


def test_protected_and_max_ratio(analysis, table):
    loud = _group(analysis, "loud_fc1")
    result = allocate_by_sensitivity(table, analysis, 100, protected=["quiet_*"])
    assert set(result.per_group) == {loud.index} and result.met
    capped = allocate_by_sensitivity(table, analysis, 10_000, max_ratio=0.5)
    assert not capped.met
    assert set(capped.per_group.values()) == {8}
    assert capped.amount == 2 * 8 * MACS_PER_UNIT


def test_params_measure(analysis, table):
    # each hidden unit owns 8 fc1 weights + 1 bias + 10 fc2 weights
    result = allocate_by_sensitivity(table, analysis, 19 * 3, measure="params")
    assert result.amount == 19 * 3 and list(result.per_group.values()) == [3]


def test_order_keeps_each_group_in_sequence(analysis, table):
    units = sensitivity_order(table, analysis)
    for group in table.groups:
        mine = [c for u in units if u.group == group.index for c in u.clusters]
        assert mine == group.order[: len(mine)]
    prices = [u.score for u in units]
    assert prices == sorted(prices)


def _handmade(analysis, curves):
    groups = []
    for name, points in curves.items():
        g = _group(analysis, name)
        groups.append(
            GroupSensitivity(
                g.index,
                g.name,
                list(g.sources),
                g.size,
                1,
                g.size - 1,
                [SensitivityPoint(k / g.size, k, k * 18.0, 0.0, d) for k, d in points],
                order=[int(c) for c in g.clusters[: g.size - 1]],
                order_scores=[1.0] * (g.size - 1),
            )
        )
    return SensitivityTable("kl", "l1", [], 8, 576.0, groups)


def test_knapsack_matches_brute_force(analysis):
    """Non-convex curves: the exact search beats or ties greedy and equals enumeration."""
    table = _handmade(
        analysis,
        {
            "loud_fc1": [(4, 0.1), (8, 0.15), (12, 2.0)],
            "quiet_fc1": [(4, 0.5), (8, 0.55), (12, 0.6)],
        },
    )
    loud, quiet = (table.groups[0], table.groups[1])
    for amount in (36, 90, 150, 200, 300, 400):
        best = min(
            loud.drop_at(a) + quiet.drop_at(b)
            for a, b in itertools.product(range(13), repeat=2)
            if (a + b) * 18 >= amount
        )
        exact = allocate_by_sensitivity(table, analysis, amount, method="knapsack", bins=576)
        greedy = allocate_by_sensitivity(table, analysis, amount)
        assert exact.met and greedy.met
        assert exact.sensitivity == pytest.approx(best)
        assert greedy.sensitivity >= best - 1e-12


def test_lower_hull():
    assert _lower_hull([0, 1, 2, 3], [0, 0.5, 1.5, 4]) == [0, 1, 2, 3]
    assert _lower_hull([0, 1, 2, 3], [0, 1, 1.5, 4]) == [0, 2, 3]
    assert _lower_hull([0, 1, 2, 3], [0, 2, 2.1, 2.2]) == [0, 3]  # concave: one segment
    assert _lower_hull([0, 1, 1, 2], [0, 1, 0.5, 3]) == [0, 1, 3]  # repeated amount skipped


def test_table_of_another_model_is_refused(analysis, table):
    other = SensitivityTable.from_dict(table.to_dict())
    other.groups[0].size = 99
    with pytest.raises(InputError, match="does not match"):
        allocate_by_sensitivity(other, analysis, 10)
    with pytest.raises(InputError, match="method"):
        allocate_by_sensitivity(table, analysis, 10, method="magic")
    with pytest.raises(InputError, match="measure"):
        allocate_by_sensitivity(table, analysis, 10, measure="latency")


@pytest.mark.parametrize("method", ["greedy", "knapsack"])
def test_measured_only_never_goes_beyond_the_largest_measured_ratio(analysis, table, method):
    quiet = _group(analysis, "quiet_fc1")
    # measured up to 0.75 · 16 = 12 clusters per group; the 0.8 cap would allow 12 as well, so
    # a table measured up to 0.5 shows the difference: 8 clusters per group at most
    half = measure_sensitivity(analysis, calibration(32), ratios=(0.25, 0.5))
    free = allocate_by_sensitivity(half, analysis, 10_000, method=method)
    bounded = allocate_by_sensitivity(half, analysis, 10_000, method=method, measured_only=True)
    assert free.per_group[quiet.index] == 12
    assert set(bounded.per_group.values()) == {8} and not bounded.met
