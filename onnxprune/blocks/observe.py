"""Run a model once over calibration data and accumulate, per residual unit, what scoring and
repair need: the mean branch output per position, block influence and the branch norm ratio.

For every batch the searched model runs in ONNX Runtime with every unit's x and o = f(x) as
its only outputs (:class:`onnxprune.calibrate.session.ExposedRunner`); nothing but float64
per-unit accumulators is kept between batches.

Per sample s (tensors flattened):

* influence_s = 1 − cos(x_s, x_s + o_s), the block-influence score: how much the block turns
  its input (0 = the block leaves the direction of x unchanged);
* ratio_s = ‖o_s‖ / ‖x_s‖, the branch's relative size.

Means over samples are reported; the mean of o over samples is kept per position and reduced
to a per-channel constant by :func:`channel_constant`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from onnx import ModelProto, helper

from onnxprune.blocks.find import BlockSearch, elem_type, static_view
from onnxprune.calibrate import iter_feeds
from onnxprune.calibrate.session import ExposedRunner

_EPS = 1e-12


@dataclass
class UnitObservation:
    """Accumulated statistics of one unit over ``samples`` samples (float64)."""

    sum_branch: np.ndarray | None = None  # Σ_s o_s, per position
    sum_influence: float = 0.0
    sum_ratio: float = 0.0
    samples: int = 0

    def add(self, x: np.ndarray, o: np.ndarray) -> None:
        x64 = x.astype(np.float64).reshape(x.shape[0], -1)
        o64 = o.astype(np.float64).reshape(o.shape[0], -1)
        y64 = x64 + o64
        norm_x = np.linalg.norm(x64, axis=1)
        norm_y = np.linalg.norm(y64, axis=1)
        cos = np.einsum("ij,ij->i", x64, y64) / np.maximum(norm_x * norm_y, _EPS)
        self.sum_influence += float(np.sum(1.0 - cos))
        self.sum_ratio += float(np.sum(np.linalg.norm(o64, axis=1) / np.maximum(norm_x, _EPS)))
        total = o.astype(np.float64).sum(axis=0)
        self.sum_branch = total if self.sum_branch is None else self.sum_branch + total
        self.samples += int(x.shape[0])

    @property
    def influence(self) -> float:
        return self.sum_influence / max(self.samples, 1)

    @property
    def ratio(self) -> float:
        return self.sum_ratio / max(self.samples, 1)

    @property
    def mean_branch(self) -> np.ndarray:
        """E_s[o_s] per position, shape o.shape[1:]."""
        if self.sum_branch is None:
            raise ValueError("no samples observed")
        return self.sum_branch / max(self.samples, 1)


def channel_constant(mean: np.ndarray) -> np.ndarray:
    """The per-channel constant c (rank = 1 + mean's rank, batch axis 1) for a per-position mean.

    The channel axis is the non-batch axis a whose per-slice mean c_a (the mean over all other
    axes) explains the per-position mean best, i.e. minimises ‖M − c_a‖² (ties: the first
    axis, so NCHW maps give a per-channel and [B, N, D] token maps a per-feature constant
    when both fit equally). Rank 1 means (vectors) are kept as they are.
    """
    if mean.ndim <= 1:
        return mean[None, ...]
    best: np.ndarray | None = None
    best_residual = np.inf
    for axis in range(mean.ndim):
        others = tuple(a for a in range(mean.ndim) if a != axis)
        candidate = mean.mean(axis=others, keepdims=True)
        residual = float(np.sum((mean - candidate) ** 2))
        if best is None or residual < best_residual * (1.0 - 1e-9):
            best, best_residual = candidate, residual
    assert best is not None
    return best[None, ...]


def observe_units(
    search: BlockSearch,
    unit_indices: Iterable[int],
    calibration,
    *,
    batch_size: int = 16,
    max_samples: int | None = 128,
) -> dict[int, UnitObservation]:
    """One pass over ``calibration`` accumulating a :class:`UnitObservation` per unit."""
    units = [search.units[i] for i in unit_indices]
    if not units:
        return {}
    names = list(dict.fromkeys(n for u in units for n in (u.identity, u.branch)))
    types = {name: elem_type(search.model, name) for name in names}
    runner = ExposedRunner(search.model, names, types)
    observations = {unit.index: UnitObservation() for unit in units}
    feeds = iter_feeds(calibration, search.model, batch_size=batch_size, max_samples=max_samples)
    for batch in feeds:
        values = runner(batch)
        for unit in units:
            observations[unit.index].add(values[unit.identity], values[unit.branch])
    return observations


def synthetic_feeds(search: BlockSearch, samples: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal inputs (dynamic dims from ``search.input_shapes``, else 1; the first axis
    ``samples``) for the data-free fallback. Weak: real inputs are not Gaussian."""
    rng = np.random.default_rng(seed)
    initializers = {init.name for init in search.model.graph.initializer}
    shapes = search.input_shapes or {}
    feeds: dict[str, np.ndarray] = {}
    for value in search.model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        given = shapes.get(value.name)
        dims = [
            int(given[i]) if given else (d.dim_value if d.HasField("dim_value") else 1)
            for i, d in enumerate(tensor_type.shape.dim)
        ]
        if dims:
            dims[0] = samples
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(dims).astype(dtype)
        else:
            feeds[value.name] = np.zeros(dims, dtype=dtype)
    return feeds


def _fits(constant: np.ndarray, shape: tuple[int, ...] | None) -> bool:
    if shape is None or len(shape) != constant.ndim:
        return False
    return all(d in (1, s) for d, s in zip(constant.shape, shape, strict=True))


def constants_for(
    search: BlockSearch,
    model: ModelProto,
    units: Iterable[int],
    constants: Mapping[int, np.ndarray],
    data,
    *,
    batch_size: int = 16,
    max_samples: int | None = 128,
) -> dict[int, np.ndarray]:
    """Constants of ``units`` for ``model`` (``search.model`` after edits that keep names, e.g.
    channel removal): ``constants[i]`` where it still broadcasts to x's shape in ``model``,
    else the branch's per-channel mean observed on ``model`` itself over ``data``."""
    chosen = [int(i) for i in units]
    copy = ModelProto()
    copy.CopyFrom(model)
    view, _ = static_view(copy, search.input_shapes)
    result = {}
    stale = []
    for index in chosen:
        constant = constants[index]
        if _fits(constant, view.static_shape(search.units[index].identity)):
            result[index] = constant
        else:
            stale.append(index)
    if stale:
        current = dataclasses.replace(search, model=model)
        observed = observe_units(
            current, stale, data, batch_size=batch_size, max_samples=max_samples
        )
        result.update({i: channel_constant(o.mean_branch) for i, o in observed.items()})
    return result
