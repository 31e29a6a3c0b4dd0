"""Removal order: per-group normalised ranking, caps, round_to, protection, min-keep."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.allocate.schedule import (
    RemovalUnit,
    Schedule,
    closer_prefix,
    cluster_params,
    removal_order,
)
from onnxprune.errors import InputError
from tests.allocate.chain import chain_analysis, group


@pytest.fixture(scope="module")
def analysis():
    return chain_analysis()


def test_cluster_params_counts_every_sliced_weight(analysis):
    params = cluster_params(analysis)
    # c1 channel: 3·3·3 weights + 1 bias, and a 3·3 column in each of c2's 32 filters.
    assert params[group(analysis, "c1").clusters] == pytest.approx(np.full(16, 27 + 1 + 32 * 9))
    # c2 channel: 16·3·3 weights + 1 bias + one fc column of 5.
    assert params[group(analysis, "c2").clusters] == pytest.approx(np.full(32, 144 + 1 + 5))


def test_order_is_lowest_normalised_score_first_and_respects_caps(analysis):
    scores = np.ones(analysis.n_clusters)
    c1, c2 = group(analysis, "c1"), group(analysis, "c2")
    scores[c1.clusters] = np.linspace(1, 2, 16)  # mean 1.5: normalised 0.67 .. 1.33
    scores[c2.clusters] = np.linspace(10, 30, 32)  # mean 20: normalised 0.5 .. 1.5
    units = removal_order(analysis, scores, max_ratio=0.5)
    assert all(len(u.clusters) == 1 for u in units)
    assert units[0].clusters == (int(c2.clusters[0]),)  # 0.5 < 0.67
    normalised = [u.score for u in units]
    assert normalised == sorted(normalised)
    assert sum(u.group == c1.index for u in units) == 8  # floor(0.5 · 16)
    assert sum(u.group == c2.index for u in units) == 16
    assert all(u.group in (c1.index, c2.index) for u in units)  # fc is blocked (graph output)


def test_round_to_makes_units_that_keep_multiples(analysis):
    units = removal_order(analysis, np.ones(analysis.n_clusters), max_ratio=0.8, round_to=8)
    sizes = {}
    for unit in units:
        sizes.setdefault(unit.group, []).append(len(unit.clusters))
    assert sizes[group(analysis, "c1").index] == [8]  # 16 -> 8 (4 would break the 0.8 cap)
    assert sizes[group(analysis, "c2").index] == [8, 8, 8]  # 32 -> 24 -> 16 -> 8


def test_ignore_and_ratio_for(analysis):
    scores = np.ones(analysis.n_clusters)
    units = removal_order(analysis, scores, ignore=["c1"], ratio_for={"c2": 0.25})
    assert {u.group for u in units} == {group(analysis, "c2").index}
    assert len(units) == 8


def test_bad_options_are_input_errors(analysis):
    scores = np.ones(analysis.n_clusters)
    with pytest.raises(InputError):
        removal_order(analysis, scores, max_ratio=1.0)
    with pytest.raises(InputError):
        removal_order(analysis, scores, round_to=0)
    with pytest.raises(InputError):
        removal_order(analysis, np.ones(3))


def test_take_reaches_the_amount_and_skips_protected_groups(analysis):
    scores = np.arange(analysis.n_clusters, dtype=float) + 1
    schedule = Schedule(analysis, removal_order(analysis, scores))
    c1 = group(analysis, "c1")
    picked = schedule.take(set(), 5, "clusters", protected=set())
    assert len(picked) == 5
    picked = schedule.take(set(), 5, "clusters", protected={c1.index})
    assert len(picked) == 5 and all(u.group != c1.index for u in picked)
    goal = 0.3 * analysis.total_macs
    picked = schedule.take(set(), goal, "macs", set())
    assert sum(u.macs for u in picked) >= goal > sum(u.macs for u in picked[:-1])
    everything = schedule.remaining(set(), "clusters", set())
    assert everything == 12 + 25  # caps: floor(0.8·16), floor(0.8·32)
    removed = {c for u in schedule.take(set(), 10, "clusters", set()) for c in u.clusters}
    assert schedule.remaining(removed, "clusters", set()) == everything - 10


def _unit(group: str, macs: float, item: int) -> RemovalUnit:
    return RemovalUnit(group=group, items=(item,), score=0.0, macs=macs, params=0.0)


def _summed(selection: list[RemovalUnit]) -> float:
    return sum(u.macs for u in selection)


def test_closer_prefix_keeps_a_prefix_within_the_tolerance():
    units = [_unit("a", 10, 0), _unit("b", 12, 1), _unit("c", 1, 2)]
    assert closer_prefix(units, 2, 20.0, _summed, tolerance=2.0) == units[:2]


def test_closer_prefix_swaps_a_coarse_last_unit_for_finer_later_ones():
    # The shortest reaching prefix ends with a 50-MAC unit for a 20-MAC step; group "big"
    # is then left out (its second unit too) and four 5-MAC units of "fine" fill the step.
    big, big2 = _unit("big", 50, 0), _unit("big", 50, 1)
    fine = [_unit("fine", 5, 10 + i) for i in range(6)]
    units = [big, big2, *fine]
    chosen = closer_prefix(units, 1, 20.0, _summed, tolerance=1.0)
    assert chosen == fine[:4]
    assert _summed(chosen) == 20.0


def test_closer_prefix_takes_the_smallest_overshoot_when_none_is_within_tolerance():
    units = [_unit("a", 5, 0), _unit("b", 40, 1), _unit("c", 30, 2), _unit("d", 22, 3)]
    # Prefix a+b overshoots 25 by 20; a+c by 10; a+d by 2: d is the first within 3.
    assert closer_prefix(units, 2, 25.0, _summed, tolerance=3.0) == [units[0], units[3]]
    # With no tolerance reachable the smallest overshoot wins, ties to the earlier selection.
    assert closer_prefix(units, 2, 25.0, _summed, tolerance=0.5) == [units[0], units[3]]
    assert closer_prefix(units[:3], 2, 25.0, _summed, tolerance=0.5) == [units[0], units[2]]


def test_closer_prefix_returns_the_prefix_when_nothing_later_reaches_the_amount():
    units = [_unit("a", 50, 0), _unit("b", 3, 1), _unit("c", 3, 2)]
    assert closer_prefix(units, 1, 20.0, _summed, tolerance=1.0) == units[:1]


def test_closer_prefix_bounds_its_calls_and_uses_the_upper_estimate():
    units = [_unit("big", 50, 0), *[_unit(f"g{i}", 1, i + 1) for i in range(40)]]
    calls: list[int] = []

    def counted(selection):
        calls.append(len(selection))
        return _summed(selection)

    closer_prefix(units, 1, 20.0, counted, tolerance=0.5, max_evaluations=5)
    assert len(calls) == 1 + 5  # the prefix's own count, then at most five
    calls.clear()
    chosen = closer_prefix(units, 1, 20.0, counted, tolerance=0.5, upper_estimate=_summed)
    assert _summed(chosen) == 20.0 and len(chosen) == 20
    assert len(calls) == 2  # the estimate let 19 units join uncounted
