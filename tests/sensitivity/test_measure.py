"""measure_sensitivity on a model with one clearly sensitive and one insensitive branch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxprune.analysis import analyze
from onnxprune.errors import InputError
from onnxprune.importance import score_clusters
from onnxprune.passes.prepare import prepare
from onnxprune.sensitivity import measure_sensitivity, removal_sequence
from onnxprune.sensitivity.metrics import kl_divergence
from tests.sensitivity.models import HIDDEN, branch_weights, calibration, forward, two_branch_model


@pytest.fixture(scope="module")
def analysis():
    _, prepared, _ = prepare(two_branch_model(), {})
    return analyze(prepared, {})


@pytest.fixture(scope="module")
def table(analysis):
    return measure_sensitivity(analysis, calibration(), ratios=(0.25, 0.5))


def _by_name(table):
    return {g.name: g for g in table.groups}


def test_sensitive_branch_ranks_first(table):
    groups = _by_name(table)
    assert set(groups) == {"loud_fc1", "quiet_fc1"}  # the output layers are blocked
    assert [g.name for g in table.ranked()] == ["loud_fc1", "quiet_fc1"]
    for loud, quiet in zip(groups["loud_fc1"].points, groups["quiet_fc1"].points, strict=True):
        assert loud.drop > 100 * quiet.drop > 0


def test_drops_match_a_numpy_forward(analysis, table):
    """Each point's drop is the KL of the numpy logits with the lowest-L1 units removed."""
    weights = branch_weights()
    x = calibration()["x"]
    reference = forward(x, weights, {})
    scores = score_clusters(analysis, "l1")
    for group in table.groups:
        branch = group.name.split("_")[0]
        entry = next(g for g in analysis.groups if g.index == group.index)
        for point in group.points:
            assert point.removed == math.floor(point.ratio * HIDDEN)
            clusters = removal_sequence(entry, scores)[: point.removed]
            units = [int(np.flatnonzero(entry.clusters == c)[0]) for c in clusters]
            pruned = forward(x, weights, {branch: units})
            assert point.drop == pytest.approx(kl_divergence([reference], [pruned]), rel=1e-3)
            assert point.macs == 18 * point.removed  # 8 MACs in fc1 + 10 in fc2 per unit


def test_removal_follows_the_criterion(analysis, table):
    scores = score_clusters(analysis, "l1")
    for group in table.groups:
        order = scores[group.order]
        assert np.all(np.diff(order) >= 0)
        assert len(group.order) == group.removable == HIDDEN - 1  # never the last cluster


def test_equal_counts_share_one_run(analysis):
    table = measure_sensitivity(analysis, calibration(16), ratios=(0.25, 0.26, 0.01))
    # 0.25 and 0.26 both remove 4 of 16; 0.01 removes none: one run per group
    assert table.runs == 2
    quiet = _by_name(table)["quiet_fc1"]
    assert [p.removed for p in quiet.points] == [0, 4, 4]
    assert quiet.points[0].drop == 0.0


def test_blocked_and_min_keep_are_respected(analysis):
    group = analysis.groups[0]
    scores = np.arange(analysis.n_clusters, dtype=float)
    blocked = group.blocked.copy()
    group.blocked[:3] = True
    try:
        assert not set(removal_sequence(group, scores)) & set(group.clusters[:3].tolist())
        piece = [np.array(group.clusters[3:5])]
        sequence = removal_sequence(group, scores, piece)
        assert int(group.clusters[3]) in sequence and int(group.clusters[4]) not in sequence
    finally:
        group.blocked[:] = blocked


def test_recover_is_applied_to_every_candidate(analysis):
    seen = []

    def recover(analysis_, removed, model):
        seen.append(len(removed))
        return model

    table = measure_sensitivity(analysis, calibration(8), ratios=(0.5,), recover=recover)
    assert sorted(seen) == [8, 8] and table.recovered


def test_top1_metric_and_callable(analysis):
    table = measure_sensitivity(analysis, calibration(32), ratios=(0.5,), metric="top1")
    assert table.metric == "top1"
    assert _by_name(table)["quiet_fc1"].points[0].drop == 0.0
    assert _by_name(table)["loud_fc1"].points[0].drop > 0.0

    def worst_abs(reference, outputs):
        return float(np.abs(reference[0] - outputs[0]).max())

    custom = measure_sensitivity(analysis, calibration(8), ratios=(0.5,), metric=worst_abs)
    assert custom.metric == "worst_abs"
    assert _by_name(custom)["loud_fc1"].points[0].drop > 0


@pytest.mark.parametrize(
    "data, message",
    [
        (None, "needs calibration data"),
        (
            {"a": np.zeros((4, 8), np.float32), "b": np.zeros((4, 8), np.float32)},
            "no array for input",
        ),
        ({"x": np.zeros((0, 8), np.float32)}, "non-empty"),
        ("nonsense", "unsupported calibration data"),
    ],
)
def test_bad_data(analysis, data, message):
    with pytest.raises(InputError, match=message):
        measure_sensitivity(analysis, data)


def test_bad_ratio_and_metric(analysis):
    with pytest.raises(InputError, match="ratios"):
        measure_sensitivity(analysis, calibration(4), ratios=(0.0, 0.5))
    with pytest.raises(InputError, match="unknown sensitivity metric"):
        measure_sensitivity(analysis, calibration(4), metric="nope")


def test_dataset_like_inputs(analysis):
    class Batches:
        def batches(self, size):
            data = calibration(10)["x"]
            for start in range(0, 10, 4):
                yield {"x": data[start : start + 4]}, None

    table = measure_sensitivity(analysis, Batches(), ratios=(0.5,), max_samples=6)
    assert table.samples == 6
