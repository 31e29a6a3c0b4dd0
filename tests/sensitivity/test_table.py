"""Interpolation of the measured curves and the JSON round trip."""

from __future__ import annotations

import pytest

from onnxprune.sensitivity.table import GroupSensitivity, SensitivityPoint, SensitivityTable


def _group(points, index=0):
    return GroupSensitivity(
        index, f"g{index}", [f"g{index}"], 20, 1, 19,
        [SensitivityPoint(k / 20, k, 10.0 * k, 2.0 * k, d) for k, d in points],
    )  # fmt: skip


def test_drop_at_interpolates_through_the_origin():
    group = _group([(4, 0.2), (10, 1.4)])
    assert group.drop_at(0) == 0.0
    assert group.drop_at(2) == pytest.approx(0.1)
    assert group.drop_at(7) == pytest.approx(0.8)
    assert group.drop_at(10) == pytest.approx(1.4)
    assert group.drop_at(13) == pytest.approx(1.4 + 3 * 0.2)  # last slope 1.2 / 6


def test_drop_at_is_non_decreasing():
    group = _group([(4, 0.5), (10, 0.3), (14, -0.1)])  # noisy: later drops lower
    assert group.drop_at(10) == pytest.approx(0.5)
    assert group.drop_at(12) == pytest.approx(0.5)
    assert group.drop_at(19) == pytest.approx(0.5)  # flat last segment, never negative
    assert _group([(4, -0.2)]).drop_at(2) == 0.0


def test_duplicate_counts_take_the_worst():
    group = _group([(4, 0.2), (4, 0.4), (8, 0.4)])
    assert group.drop_at(4) == pytest.approx(0.4)


def test_ranking_and_json_round_trip(tmp_path):
    table = SensitivityTable(
        "kl", "l1", [0.2, 0.5], 16, 1000.0, [_group([(4, 0.1)], 0), _group([(4, 0.9)], 1)]
    )
    assert [g.index for g in table.ranked()] == [1, 0]
    path = tmp_path / "t.json"
    table.save_json(path)
    again = SensitivityTable.load_json(path)
    assert again == table
    assert again.group(1).points[0].drop == 0.9 and again.group(7) is None
