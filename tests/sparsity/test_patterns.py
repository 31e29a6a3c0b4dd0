"""Selection-mode invariants (property tests): exact counts, N:M per group, cap, threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from onnxprune.errors import InputError
from onnxprune.sparsity.patterns import (
    global_counts,
    holds_nm,
    keep_mask,
    lowest_mask,
    nm_mask,
    parse_nm,
    threshold_mask,
    uniform_count,
)

floats = st.floats(-1e3, 1e3, allow_nan=False, width=32)
matrices = arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 12)), elements=floats)


@given(matrices, st.floats(0, 1))
def test_lowest_mask_removes_exactly_the_count_and_only_the_lowest(scores, fraction):
    count = uniform_count(scores.size, fraction)
    mask = lowest_mask(scores, count)
    assert mask.sum() == count == min(scores.size, math.ceil(fraction * scores.size - 1e-9))
    if 0 < count < scores.size:
        assert scores[mask].max() <= scores[~mask].min()


@given(matrices, st.integers(0, 80))
def test_keep_mask_keeps_the_k_highest(scores, keep):
    mask = keep_mask(scores, keep)
    assert (~mask).sum() == min(keep, scores.size)
    if 0 < keep < scores.size:
        assert scores[~mask].min() >= scores[mask].max()


@given(matrices, floats)
def test_threshold_mask_is_score_below_threshold(scores, threshold):
    np.testing.assert_array_equal(threshold_mask(scores, threshold), scores < threshold)


@given(
    st.lists(arrays(np.float64, st.integers(1, 30), elements=floats), min_size=1, max_size=5),
    st.floats(0.05, 1.0),
    st.integers(0, 200),
)
def test_global_counts_respect_the_cap_and_take_the_lowest(scores, cap, total):
    counts = global_counts(scores, total, cap)
    limits = [math.floor(cap * s.size + 1e-9) for s in scores]
    assert all(c <= lim for c, lim in zip(counts, limits, strict=True))
    assert sum(counts) == min(total, sum(limits))
    chosen = [np.sort(s)[:c] for s, c in zip(scores, counts, strict=True)]
    taken = np.concatenate(chosen) if chosen else np.zeros(0)
    # nothing removable that was left is lower than what was taken (up to ties)
    left = np.concatenate(
        [np.sort(s)[c:lim] for s, c, lim in zip(scores, counts, limits, strict=True)]
    )
    if taken.size and left.size:
        assert left.min() >= taken.max()


@settings(max_examples=60)
@given(st.integers(1, 5), st.integers(1, 4), st.data())
def test_nm_mask_leaves_exactly_n_per_group(rows, groups, data):
    m = data.draw(st.integers(2, 8))
    n = data.draw(st.integers(1, m - 1))
    scores = data.draw(arrays(np.float64, (rows, groups * m), elements=floats))
    mask = nm_mask(scores, n, m)
    per_group = (~mask).reshape(rows, groups, m).sum(-1)
    assert (per_group == n).all()
    kept = np.where(mask, 0.0, 1.0 + np.abs(scores))
    assert holds_nm(kept, n, m)
    grouped = scores.reshape(rows, groups, m)
    removed = mask.reshape(rows, groups, m)
    for r in range(rows):
        for g in range(groups):
            if removed[r, g].any():
                assert grouped[r, g][removed[r, g]].max() <= grouped[r, g][~removed[r, g]].min()


def test_holds_nm_detects_a_violation():
    matrix = np.array([[1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]])
    assert not holds_nm(matrix, 2, 4)
    assert holds_nm(matrix, 3, 4)


@pytest.mark.parametrize("text", ["3:2", "2:2", "0:4", "2", "a:b", "2:4:8"])
def test_parse_nm_rejects_bad_patterns(text):
    with pytest.raises(InputError):
        parse_nm(text)


def test_parse_nm_accepts_two_four():
    assert parse_nm("2:4") == (2, 4)
    assert parse_nm(" 1:8 ") == (1, 8)
