"""Allocation: ratios, rounding, protection, global ranking, per-layer ratios, min-keep."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from onnxprune.allocate import AllocationPolicy, select_removal
from onnxprune.analysis import analyze
from onnxprune.errors import InputError
from tests.analysis.test_rules import build, chain, conv, head


@pytest.fixture(scope="module")
def analysis():
    nodes, inits = chain(conv("c1", "x", "a", 3, 16), conv("c2", "a", "b", 16, 32, seed=1))
    h_nodes, h_inits = head("b", 32, 8)
    return analyze(build(nodes + h_nodes, inits + h_inits))


def kept(analysis, removed, source):
    group = next(g for g in analysis.groups if g.sources == [source])
    return group.size - sum(int(c) in removed for c in group.clusters)


def test_uniform_ratio_removes_floor_share_of_each_group(analysis):
    scores = np.arange(analysis.n_clusters, dtype=float)
    removed = select_removal(analysis, scores, AllocationPolicy(ratio=0.3))
    assert kept(analysis, removed, "c1") == 16 - 4  # floor(0.3 * 16) = 4
    assert kept(analysis, removed, "c2") == 32 - 9
    assert kept(analysis, removed, "fc") == 5  # blocked: reaches the output


def test_lowest_scores_go_first(analysis):
    scores = np.arange(analysis.n_clusters, dtype=float)
    removed = select_removal(analysis, scores, AllocationPolicy(ratio=0.25))
    group = next(g for g in analysis.groups if g.sources == ["c1"])
    assert removed & set(int(c) for c in group.clusters) == set(int(c) for c in group.clusters[:4])


def test_round_to_rounds_kept_count_up(analysis):
    removed = select_removal(
        analysis, np.ones(analysis.n_clusters), AllocationPolicy(ratio=0.3, round_to=8)
    )
    assert kept(analysis, removed, "c1") == 16  # 12 rounds up to 16
    assert kept(analysis, removed, "c2") == 24  # 23 rounds up to 24


def test_ignore_and_ratio_for(analysis):
    policy = AllocationPolicy(ratio=0.5, ignore=["c1*"], ratio_for={"c2": 0.25})
    removed = select_removal(analysis, np.ones(analysis.n_clusters), policy)
    assert kept(analysis, removed, "c1") == 16
    assert kept(analysis, removed, "c2") == 24


def test_never_below_one_channel(analysis):
    removed = select_removal(analysis, np.ones(analysis.n_clusters), AllocationPolicy(ratio=0.99))
    assert kept(analysis, removed, "c1") == 1 and kept(analysis, removed, "c2") == 1


def test_global_ranking_respects_max_ratio(analysis):
    scores = np.ones(analysis.n_clusters)
    c2 = next(g for g in analysis.groups if g.sources == ["c2"])
    scores[c2.clusters] = 0.0  # c2 looks least important everywhere
    removed = select_removal(
        analysis, scores, AllocationPolicy(ratio=0.5, global_ranking=True, max_ratio=0.75)
    )
    assert kept(analysis, removed, "c2") == 8  # capped at 75 % removed
    assert (
        kept(analysis, removed, "c1") == 16
    )  # 24 of the 48 clusters, all from c2, meet the target


@pytest.mark.parametrize(
    "bad", [dict(ratio=1.0), dict(ratio=-0.1), dict(round_to=0), dict(ratio_for={"x": 2.0})]
)
def test_invalid_policy(analysis, bad):
    with pytest.raises(InputError):
        select_removal(analysis, np.ones(analysis.n_clusters), AllocationPolicy(**bad))


def test_min_keep_puts_back_a_channel_of_an_emptied_slice():
    nodes, inits = chain(conv("c1", "x", "a", 3, 8))
    from tests.oracle import const

    nodes.append(helper.make_node("Slice", ["a", "st", "en", "ax"], ["s"], name="slice"))
    inits += [const("st", np.array([0])), const("en", np.array([2])), const("ax", np.array([1]))]
    h_nodes, h_inits = head("s", 2, 8)
    analysis = analyze(build(nodes + h_nodes, inits + h_inits))
    scores = np.ones(analysis.n_clusters)
    group = next(g for g in analysis.groups if g.sources == ["c1"])
    scores[group.clusters[:2]] = 0.0  # the two sliced channels are the weakest
    removed = select_removal(analysis, scores, AllocationPolicy(ratio=0.25))
    assert len(removed & set(int(c) for c in group.clusters[:2])) == 1
