"""Streaming float64 accumulators: per-feature moments and Gram matrices.

Both only ever hold their running sums (O(features) and O(d²)); the data passes through in
chunks of at most :data:`~onnxprune.calibrate.im2col.CHUNK_ELEMENTS` values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnxprune.calibrate.im2col import CHUNK_ELEMENTS


@dataclass
class FeatureStats:
    """Per-feature statistics of a tensor over samples and positions.

    ``mean`` = E[x], ``mean_abs`` = E|x|, ``var`` = E[x²] − E[x]², ``zero_fraction`` = P(x = 0)
    (the APoZ of the feature), ``count`` = values seen per feature.
    """

    count: int
    mean: np.ndarray
    mean_abs: np.ndarray
    var: np.ndarray
    zero_fraction: np.ndarray

    @property
    def rms(self) -> np.ndarray:
        """sqrt(E[x²]): the per-feature norm of the activation over all positions, scaled."""
        return np.sqrt(np.maximum(self.var + self.mean**2, 0.0))


class MomentAccumulator:
    """Σx, Σ|x|, Σx², #zeros per feature of tensors whose features lie along ``axis``."""

    def __init__(self, axis: int) -> None:
        self.axis = axis
        self.count = 0
        self.sums: np.ndarray | None = None  # (4, features)

    def add(self, x: np.ndarray) -> None:
        moved = np.moveaxis(np.asarray(x), self.axis, -1)
        features = moved.shape[-1]
        flat = moved.reshape(-1, features)
        if self.sums is None:
            self.sums = np.zeros((4, features))
        step = max(1, CHUNK_ELEMENTS // max(1, features))
        for start in range(0, flat.shape[0], step):
            chunk = flat[start : start + step].astype(np.float64)
            self.sums[0] += chunk.sum(axis=0)
            self.sums[1] += np.abs(chunk).sum(axis=0)
            self.sums[2] += np.square(chunk).sum(axis=0)
            self.sums[3] += (chunk == 0).sum(axis=0)
        self.count += flat.shape[0]

    def result(self) -> FeatureStats:
        if self.sums is None or self.count == 0:
            raise ValueError("no data accumulated")
        mean, mean_abs, square, zeros = self.sums / self.count
        return FeatureStats(self.count, mean, mean_abs, np.maximum(square - mean**2, 0.0), zeros)


class GramAccumulator:
    """G = Σ rowᵀ·row and s = Σ row over streamed row chunks (float64)."""

    def __init__(self) -> None:
        self.gram: np.ndarray | None = None
        self.sum: np.ndarray | None = None
        self.rows = 0

    def add(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.float64)
        if self.gram is None:
            self.gram = np.zeros((rows.shape[1], rows.shape[1]))
            self.sum = np.zeros(rows.shape[1])
        self.gram += rows.T @ rows
        self.sum += rows.sum(axis=0)
        self.rows += rows.shape[0]

    @property
    def nbytes(self) -> int:
        return 0 if self.gram is None else self.gram.nbytes + self.sum.nbytes
