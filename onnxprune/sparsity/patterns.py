"""Selection modes: which weights to zero, as pure numpy functions on score arrays.

Lower score = removed first. Every function returns a boolean *removal mask* (True = zeroed)
or per-layer counts; ties are broken by flat index (stable sort), so results are exact and
reproducible.

* :func:`uniform_count` — per-layer fraction s: ⌈s·n⌉ weights of a layer of n.
* :func:`lowest_mask` — the k lowest scores.
* :func:`keep_mask` — top-k keep: everything but the K highest scores.
* :func:`threshold_mask` — absolute threshold: score < t (with magnitude, |w| < t).
* :func:`global_counts` — one ranking across layers: the R lowest scores of all layers together,
  where layer l can give at most ⌊cap·n_l⌋ (so no layer goes fully to zero).
* :func:`nm_mask` — N:M: in every group of M consecutive columns of a row, the M − N lowest are
  removed (N kept). Columns must already be in group order (see ``SparseLayer.nm_order``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from onnxprune.errors import InputError


def parse_nm(pattern: str) -> tuple[int, int]:
    """``"2:4"`` -> (2, 4): keep N of every M (1 <= N < M); InputError otherwise."""
    text = str(pattern).strip()
    head, sep, tail = text.partition(":")
    try:
        n, m = int(head), int(tail)
    except ValueError:
        n, m = -1, -1
    if not sep or not 1 <= n < m:
        raise InputError(
            f"pattern {pattern!r} is not N:M with 1 <= N < M (keep N of every M weights, e.g. 2:4)"
        )
    return n, m


def uniform_count(size: int, fraction: float) -> int:
    """⌈fraction·size⌉ (at most ``size``): weights to remove from a layer of ``size``."""
    return min(size, math.ceil(fraction * size - 1e-9))


def lowest_mask(scores: np.ndarray, count: int) -> np.ndarray:
    """Mask of the ``count`` lowest entries of ``scores`` (any shape)."""
    flat = scores.reshape(-1)
    mask = np.zeros(flat.shape, dtype=bool)
    count = max(0, min(int(count), flat.size))
    if count:
        mask[np.argsort(flat, kind="stable")[:count]] = True
    return mask.reshape(scores.shape)


def keep_mask(scores: np.ndarray, keep: int) -> np.ndarray:
    """Mask removing all but the ``keep`` highest scores."""
    return lowest_mask(scores, scores.size - max(0, int(keep)))


def threshold_mask(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of the entries with ``score < threshold``."""
    return scores < threshold


def global_counts(scores: Sequence[np.ndarray], total: int, cap: float) -> list[int]:
    """Per-layer counts of the ``total`` lowest scores of all layers, layer l giving at most
    ⌊cap·n_l⌋. Fewer than ``total`` when the caps do not allow it."""
    limits = [math.floor(cap * s.size + 1e-9) for s in scores]
    heads = [
        np.sort(s.reshape(-1), kind="stable")[:limit]
        for s, limit in zip(scores, limits, strict=True)
    ]
    owners = np.concatenate([np.full(len(h), i, dtype=np.int64) for i, h in enumerate(heads)])
    pooled = np.concatenate([h.astype(np.float64) for h in heads]) if heads else np.zeros(0)
    total = max(0, min(int(total), pooled.size))
    chosen = owners[np.argsort(pooled, kind="stable")[:total]]
    return np.bincount(chosen, minlength=len(scores)).astype(int).tolist()


def nm_mask(scores: np.ndarray, n: int, m: int) -> np.ndarray:
    """N:M mask of a (rows, columns) score matrix whose columns are in group order: in every
    run of ``m`` columns of a row, the ``m - n`` lowest scores are removed."""
    rows, columns = scores.shape
    if columns % m:
        raise ValueError(f"{columns} columns do not split into groups of {m}")
    grouped = scores.reshape(rows, columns // m, m)
    order = np.argsort(grouped, axis=-1, kind="stable")
    mask = np.zeros(grouped.shape, dtype=bool)
    np.put_along_axis(mask, order[..., : m - n], True, axis=-1)
    return mask.reshape(rows, columns)


def holds_nm(matrix: np.ndarray, n: int, m: int) -> bool:
    """True when every group of ``m`` consecutive columns of every row has at most ``n``
    non-zeros (columns in group order)."""
    rows, columns = matrix.shape
    if columns % m:
        return False
    return bool(((matrix.reshape(rows, columns // m, m) != 0).sum(-1) <= n).all())
