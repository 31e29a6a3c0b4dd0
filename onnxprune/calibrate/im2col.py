"""im2col rows of a convolution input at sampled output positions.

For a Conv with kernel ``k`` (spatial dims k_1..k_r), strides ``s``, dilations ``d`` and begin
pads ``p``, output position ``o`` reads input position ``o·s + j·d − p`` for every kernel offset
``j``. The im2col row of ``o`` is the vector ``x[c, o·s + j·d − p]`` over (c, j) in C-order,
i.e. the same ordering as ``W.reshape(M, C·∏k)``, so that ``y[:, o] = W_mat · row(o) + b``
(zero padding reads zeros).

Spatial subsampling: at most ``positions`` output positions per sample, drawn uniformly without
replacement by the caller's random generator (all of them when ``positions`` is None or larger
than the output). Rows are produced in chunks so a chunk never holds more than
``CHUNK_ELEMENTS`` values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

CHUNK_ELEMENTS = 1 << 20  # values per im2col or moment chunk (8 MiB in float64)


@dataclass(frozen=True)
class ConvGeometry:
    """Kernel geometry of a Conv node (spatial rank r)."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]  # 2r values: begins then ends (ONNX order)
    auto_pad: str = "NOTSET"

    @classmethod
    def from_attrs(cls, attrs: dict, kernel: tuple[int, ...]) -> ConvGeometry:
        rank = len(kernel)
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        return cls(
            kernel=tuple(int(k) for k in kernel),
            strides=tuple(int(s) for s in attrs.get("strides", [1] * rank)),
            dilations=tuple(int(d) for d in attrs.get("dilations", [1] * rank)),
            pads=tuple(int(p) for p in attrs.get("pads", [0] * (2 * rank))),
            auto_pad=auto_pad,
        )

    @property
    def size(self) -> int:
        return int(np.prod(self.kernel))

    def resolved_pads(self, spatial: tuple[int, ...]) -> tuple[list[int], list[int]]:
        """Begin and end pads for an input of spatial size ``spatial`` (auto_pad applied)."""
        rank = len(self.kernel)
        if self.auto_pad in ("NOTSET", ""):
            return list(self.pads[:rank]), list(self.pads[rank:])
        if self.auto_pad == "VALID":
            return [0] * rank, [0] * rank
        begins, ends = [], []
        for size, k, s, d in zip(spatial, self.kernel, self.strides, self.dilations, strict=True):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begins.append(small if self.auto_pad == "SAME_UPPER" else large)
            ends.append(large if self.auto_pad == "SAME_UPPER" else small)
        return begins, ends

    def output_spatial(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        begins, ends = self.resolved_pads(spatial)
        return tuple(
            (size + b + e - ((k - 1) * d + 1)) // s + 1
            for size, b, e, k, s, d in zip(
                spatial, begins, ends, self.kernel, self.strides, self.dilations, strict=True
            )
        )


def sample_positions(
    n_samples: int,
    n_positions: int,
    positions: int | None,
    rng: np.random.Generator,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """(n_samples, P) flat output positions per sample, P = min(positions, n_positions).

    ``valid`` (bool [n_samples, n_positions], :func:`onnxprune.calibrate.padding.real_positions`)
    restricts each sample to its valid positions: P of them drawn without replacement, or, when
    a sample has fewer, all of them repeated in a random order up to P, so every sample keeps
    the same weight (a short sentence counts as much as a long one, as in mean pooling). A
    sample with no valid position keeps all of its positions."""
    count = n_positions if positions is None else min(positions, n_positions)
    if valid is None:
        if count == n_positions:
            return np.broadcast_to(np.arange(n_positions), (n_samples, n_positions))
        return np.stack(
            [rng.choice(n_positions, size=count, replace=False) for _ in range(n_samples)]
        )
    rows = []
    for sample in range(n_samples):
        candidates = np.flatnonzero(valid[sample])
        if not len(candidates):
            candidates = np.arange(n_positions)
        if len(candidates) >= count:
            rows.append(np.sort(rng.choice(candidates, size=count, replace=False)))
        else:
            rows.append(np.resize(rng.permutation(candidates), count))
    return np.stack(rows)


def conv_rows(
    x: np.ndarray, geometry: ConvGeometry, chosen: np.ndarray, dtype=np.float64
) -> Iterator[np.ndarray]:
    """Yield im2col rows (chunks of shape (rows, C·∏k)) of ``x`` (N, C, *spatial) at the flat
    output positions ``chosen`` (N, P), sample by sample in order."""
    n, channels = x.shape[:2]
    spatial = tuple(int(v) for v in x.shape[2:])
    begins, ends = geometry.resolved_pads(spatial)
    out_spatial = geometry.output_spatial(spatial)
    padded = np.pad(x, [(0, 0), (0, 0), *zip(begins, ends, strict=True)])
    rank = len(spatial)
    per_sample = chosen.shape[1]
    width = channels * geometry.size
    step = max(1, CHUNK_ELEMENTS // max(1, per_sample * width))
    for start in range(0, n, step):
        stop = min(n, start + step)
        coords = np.unravel_index(chosen[start:stop], out_spatial)  # each (b, P)
        samples = np.arange(start, stop).reshape(-1, 1, *([1] * rank))
        index = [samples]
        for axis in range(rank):
            shape = [1] * rank
            shape[axis] = geometry.kernel[axis]
            offsets = np.arange(geometry.kernel[axis]).reshape(shape) * geometry.dilations[axis]
            base = coords[axis].reshape(*coords[axis].shape, *([1] * rank))
            index.append(base * geometry.strides[axis] + offsets)
        # Advanced indices around the channel slice: result (b, P, *k, C).
        patches = padded[(index[0], slice(None), *index[1:])]
        patches = np.moveaxis(patches, -1, 2)  # (b, P, C, *k)
        yield patches.reshape(-1, width).astype(dtype, copy=False)


def matrix_rows(x: np.ndarray, chosen: np.ndarray, dtype=np.float64) -> Iterator[np.ndarray]:
    """Rows of a Gemm/MatMul input: ``x`` viewed as (N, R, K) (R rows per sample, K = last
    axis), at the chosen row indices (N, P) per sample, in chunks."""
    n = x.shape[0]
    features = x.shape[-1]
    view = x.reshape(n, -1, features)
    per_sample = chosen.shape[1]
    step = max(1, CHUNK_ELEMENTS // max(1, per_sample * features))
    for start in range(0, n, step):
        stop = min(n, start + step)
        rows = np.take_along_axis(view[start:stop], chosen[start:stop, :, None], axis=1)
        yield rows.reshape(-1, features).astype(dtype, copy=False)
