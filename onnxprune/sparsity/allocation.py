"""Per-layer sparsity allocation under a whole-model zero budget, registered by name.

The whole-model budget is fixed by :mod:`~onnxprune.sparsity.plan`: ``needed`` zeros must come
from the *free* layers (eligible, without a ``sparsity_for`` override). An allocation splits
them into per-layer counts:

* ``uniform`` — one fraction f = needed / Σ n_l for every free layer, ⌈f·n_l⌉ each, at most
  ``max_ratio`` (the historical default; the total may exceed ``needed`` by rounding, never
  fall short unless the cap binds);
* ``error`` and ``output`` — each layer l comes with an :class:`ErrorCurve` e_l(s): the normalized output error
  of the layer sparsified to fraction s (measured on calibration rows,
  :mod:`~onnxprune.sparsity.curves`). The counts solve

      minimize Σ_l e_l(z_l / n_l)   subject to   Σ_l z_l = needed,  0 ≤ z_l ≤ ⌊max_ratio·n_l⌋

  over the piecewise-linear interpolation of each curve. Each curve is replaced by its lower
  convex hull (in zeros, error), whose segments have increasing slopes Δe/Δz; taking all
  layers' hull segments in increasing slope order until ``needed`` zeros are reached (the last
  one partially) is then optimal for the hulls (a fractional knapsack). The total is exactly
  ``needed`` whenever the caps allow it. Layers without a curve get the uniform fraction of
  what the others leave. ``error`` uses the layer's own output error; ``output`` scales it by
  the layer's measured gain to the model output (the curve is then an estimate of the
  model-output error, :mod:`~onnxprune.sparsity.curves`).

Plug-ins: :func:`register_allocation` with a function of the same signature as the built-ins.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from onnxprune.errors import InputError
from onnxprune.sparsity.patterns import uniform_count


@dataclass(frozen=True)
class ErrorCurve:
    """Normalized error of one layer at increasing sparsity fractions (``levels[0]`` = 0 with
    error 0; errors need not be monotone, the allocator takes the lower convex hull)."""

    levels: tuple[float, ...]
    errors: tuple[float, ...]


AllocateFn = Callable[[Sequence[int], int, float, Sequence[ErrorCurve | None]], list[int]]


@dataclass(frozen=True)
class Allocation:
    """A named allocation; ``needs_curves``: it reads per-layer error curves (calibration),
    ``output_gain``: curves scaled by each layer's gain to the model output."""

    name: str
    fn: AllocateFn
    needs_curves: bool = False
    output_gain: bool = False


ALLOCATIONS: dict[str, Allocation] = {}


def register_allocation(
    name: str, *, needs_curves: bool = False, output_gain: bool = False
) -> Callable[[AllocateFn], AllocateFn]:
    """Decorator: ``fn(sizes, needed, max_ratio, curves) -> counts`` usable by name."""

    def decorate(fn: AllocateFn) -> AllocateFn:
        ALLOCATIONS[name] = Allocation(name, fn, needs_curves, output_gain)
        return fn

    return decorate


def resolve_allocation(name: str) -> Allocation:
    """The registered allocation ``name``; InputError naming the known ones otherwise."""
    if name not in ALLOCATIONS:
        raise InputError(
            f"unknown sparsity allocation '{name}' (known: {', '.join(sorted(ALLOCATIONS))})"
        )
    return ALLOCATIONS[name]


@register_allocation("uniform")
def uniform_allocation(
    sizes: Sequence[int], needed: int, max_ratio: float, curves: Sequence[ErrorCurve | None] = ()
) -> list[int]:
    """⌈f·n_l⌉ with f = needed / Σ n_l, f at most ``max_ratio``."""
    total = sum(sizes)
    if needed <= 0 or total == 0:
        return [0] * len(sizes)
    fraction = min(needed / total, max_ratio)
    return [uniform_count(size, fraction) for size in sizes]


def convex_segments(zeros: Sequence[int], errors: Sequence[float]) -> list[tuple[int, float]]:
    """(Δzeros, slope) of the lower convex hull of the points (zeros, error), left to right,
    starting at the first point; points must have increasing ``zeros``."""
    hull: list[tuple[int, float]] = []
    for point in zip(zeros, errors, strict=True):
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            # drop the middle point when it lies on or above the chord from hull[-2] to point
            if (y1 - y0) * (point[0] - x0) >= (point[1] - y0) * (x1 - x0):
                hull.pop()
            else:
                break
        hull.append((int(point[0]), float(point[1])))
    return [
        (x1 - x0, (y1 - y0) / (x1 - x0))
        for (x0, y0), (x1, y1) in itertools.pairwise(hull)
        if x1 > x0
    ]


@register_allocation("error", needs_curves=True)
def error_allocation(
    sizes: Sequence[int], needed: int, max_ratio: float, curves: Sequence[ErrorCurve | None]
) -> list[int]:
    """Minimum summed error under the exact budget (see module docstring)."""
    counts = [0] * len(sizes)
    if needed <= 0:
        return counts
    measured = [i for i, curve in enumerate(curves) if curve is not None]
    blind = [i for i, curve in enumerate(curves) if curve is None]
    if blind:
        # layers without a curve take the uniform share of the budget they hold
        share = needed * sum(sizes[i] for i in blind) / max(1, sum(sizes))
        for index, count in zip(
            blind, uniform_allocation([sizes[i] for i in blind], math.ceil(share), max_ratio),
            strict=True,
        ):  # fmt: skip
            counts[index] = count
    left = needed - sum(counts)
    segments = []  # (slope, layer, order, Δzeros)
    for index in measured:
        curve = curves[index]
        cap = math.floor(max_ratio * sizes[index] + 1e-9)
        zeros, errors = _capped_points(curve, sizes[index], cap)
        for order, (dz, slope) in enumerate(convex_segments(zeros, errors)):
            segments.append((slope, index, order, dz))
    segments.sort()
    for _slope, index, _order, dz in segments:
        if left <= 0:
            break
        take = min(dz, left)
        counts[index] += take
        left -= take
    return counts


def _capped_points(curve: ErrorCurve, size: int, cap: int) -> tuple[list[int], list[float]]:
    """Curve points as (zeros, error), cut at ``cap`` zeros (linear interpolation)."""
    zeros: list[int] = []
    errors: list[float] = []
    levels = np.asarray(curve.levels, dtype=np.float64)
    values = np.asarray(curve.errors, dtype=np.float64)
    for level, error in zip(levels, values, strict=True):
        z = round(level * size)
        if z > cap:
            break
        if zeros and z <= zeros[-1]:
            continue
        zeros.append(z)
        errors.append(float(error))
    if not zeros or zeros[0] != 0:
        zeros.insert(0, 0)
        errors.insert(0, 0.0)
    if zeros[-1] < cap:
        # extend to the cap: interpolate inside the measured range, else extrapolate the last
        # slope (the cap is reachable but the curve says nothing beyond its last level)
        fraction = cap / size
        if len(levels) >= 2 and fraction <= levels[-1]:
            errors.append(float(np.interp(fraction, levels, values)))
        else:
            slope = (errors[-1] - errors[-2]) / (zeros[-1] - zeros[-2]) if len(zeros) > 1 else 0.0
            errors.append(errors[-1] + max(slope, 0.0) * (cap - zeros[-1]))
        zeros.append(cap)
    return zeros, errors


def hull_costs(curve: ErrorCurve, size: int, cap: int, zeros: Sequence[int]) -> list[float]:
    """The lower convex hull of ``curve`` (as the allocator sees it: points in zeros, cut at
    ``cap``) evaluated at each zero count of ``zeros`` (linear between hull points, the last
    slope beyond the cap). Differences of consecutive values are non-decreasing per zero, so
    increments ranked by cost per zero stay in order within a layer."""
    points, errors = _capped_points(curve, size, cap)
    x, y = [points[0]], [errors[0]]
    for dz, slope in convex_segments(points, errors):
        x.append(x[-1] + dz)
        y.append(y[-1] + slope * dz)
    last = (y[-1] - y[-2]) / (x[-1] - x[-2]) if len(x) > 1 else 0.0
    costs = []
    for z in zeros:
        if z <= x[-1]:
            costs.append(float(np.interp(z, x, y)))
        else:
            costs.append(y[-1] + max(last, 0.0) * (z - x[-1]))
    return costs


register_allocation("output", needs_curves=True, output_gain=True)(error_allocation)


def exempt_by_cost(sizes: Sequence[int], costs: Sequence[float | None], budget: int) -> list[int]:
    """Indices of the layers to keep dense: the highest cost per weight first (a layer's cost
    is the output error its pattern causes; per weight, because the budget is in weights),
    each taken when it still fits in ``budget`` weights (greedy fractional-knapsack order;
    a layer that does not fit is passed over for smaller ones). Layers without a cost are
    never exempted."""
    ranked = sorted(
        (i for i, cost in enumerate(costs) if cost is not None and cost > 0 and sizes[i] > 0),
        key=lambda i: -costs[i] / sizes[i],
    )
    chosen, left = [], budget
    for index in ranked:
        if sizes[index] <= left:
            chosen.append(index)
            left -= sizes[index]
    return sorted(chosen)
