"""Per-layer allocation of a whole-model zero budget: exact totals, caps and optimality."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onnxprune.errors import InputError
from onnxprune.sparsity.allocation import (
    ErrorCurve,
    convex_segments,
    error_allocation,
    resolve_allocation,
    uniform_allocation,
)

LEVELS = (0.0, 0.25, 0.5, 0.75, 0.9)


def _curve(scale: float, power: float) -> ErrorCurve:
    return ErrorCurve(LEVELS, tuple(scale * level**power for level in LEVELS))


curves_strategy = st.lists(
    st.tuples(
        st.integers(10, 400),
        st.floats(0.01, 10.0),
        st.floats(1.0, 4.0),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(curves_strategy, st.floats(0.0, 1.0), st.floats(0.3, 1.0))
def test_error_allocation_hits_the_budget_exactly_within_caps(spec, share, cap):
    sizes = [size for size, _, _ in spec]
    curves = [_curve(scale, power) for _, scale, power in spec]
    capacity = sum(math.floor(cap * size + 1e-9) for size in sizes)
    needed = int(share * capacity)
    counts = error_allocation(sizes, needed, cap, curves)
    assert sum(counts) == needed
    assert all(0 <= c <= math.floor(cap * s + 1e-9) for c, s in zip(counts, sizes, strict=True))


def test_layers_without_a_curve_take_their_uniform_share_and_the_total_stays_exact():
    sizes = [100, 300, 600]
    counts = error_allocation(sizes, 500, 0.95, [None, _curve(1.0, 2.0), _curve(5.0, 2.0)])
    assert counts[0] == 50 and sum(counts) == 500


def test_cheap_layer_takes_more():
    counts = error_allocation([1000, 1000], 1000, 0.95, [_curve(0.1, 2.0), _curve(10.0, 2.0)])
    assert counts[0] > 700 and counts[1] < 300 and sum(counts) == 1000


def _interpolated(curve: ErrorCurve, size: int, zeros: int) -> float:
    return float(np.interp(zeros / size, curve.levels, curve.errors))


def test_matches_brute_force_on_a_small_grid():
    """Convex curves: the greedy split equals the best split found by exhaustive search over
    multiples of 10 zeros (the greedy answer lies on that grid here)."""
    sizes = [40, 60, 100]
    curves = [_curve(1.0, 2.0), _curve(0.5, 3.0), _curve(2.0, 1.5)]
    needed = 100
    counts = error_allocation(sizes, needed, 0.9, curves)
    greedy = sum(_interpolated(c, s, z) for c, s, z in zip(curves, sizes, counts, strict=True))
    best = math.inf
    for split in itertools.product(*(range(0, math.floor(0.9 * s) + 1) for s in sizes)):
        if sum(split) != needed:
            continue
        cost = sum(_interpolated(c, s, z) for c, s, z in zip(curves, sizes, split, strict=True))
        best = min(best, cost)
    assert greedy <= best + 1e-12


def test_convex_segments_drop_points_above_the_hull():
    segments = convex_segments([0, 10, 20, 30], [0.0, 5.0, 4.0, 10.0])
    assert [dz for dz, _ in segments] == [20, 10]
    slopes = [slope for _, slope in segments]
    assert slopes == sorted(slopes)


def test_uniform_allocation_is_the_shared_fraction():
    assert uniform_allocation([100, 200], 150, 0.95) == [50, 100]
    assert uniform_allocation([100, 200], 290, 0.9) == [90, 180]


def test_unknown_allocation_is_an_input_error():
    with pytest.raises(InputError, match="unknown sparsity allocation 'best'"):
        resolve_allocation("best")


def test_output_allocation_is_registered_and_reads_gain_scaled_curves():
    chosen = resolve_allocation("output")
    assert chosen.needs_curves and chosen.output_gain
    assert not resolve_allocation("error").output_gain


def test_hull_costs_are_convex_in_zeros_and_touch_the_curve_on_the_hull() -> None:
    from onnxprune.sparsity.allocation import ErrorCurve, hull_costs

    curve = ErrorCurve((0.0, 0.25, 0.5, 0.75), (0.0, 0.30, 0.32, 0.90))  # bump at 0.25
    size, cap = 100, 90
    zeros = list(range(0, 91, 10))
    costs = hull_costs(curve, size, cap, zeros)
    assert costs[0] == 0.0
    steps = np.diff(costs)
    assert np.all(np.diff(steps) >= -1e-12)  # cost per increment never falls
    assert costs[5] == pytest.approx(0.32)  # the point at 50 % lies on the hull
    assert costs[2] < 0.30 * 20 / 25  # the bump at 25 % lies above it: interpolated below
    assert costs[-1] > costs[-2]  # beyond the last level: the last slope, extrapolated


def test_exempt_by_cost_takes_the_highest_cost_per_weight_that_fits() -> None:
    from onnxprune.sparsity.allocation import exempt_by_cost

    sizes = [100, 10, 50, 40, 5]
    costs = [1.0, 0.5, 0.1, None, 0.0]  # per weight: 0.01, 0.05, 0.002, none, 0
    assert exempt_by_cost(sizes, costs, 120) == [0, 1]  # 10 first, then 100
    assert exempt_by_cost(sizes, costs, 60) == [1, 2]  # 100 does not fit: 50 does
    assert exempt_by_cost(sizes, costs, 5) == []  # nothing with a positive cost fits
    assert exempt_by_cost(sizes, costs, 0) == []
