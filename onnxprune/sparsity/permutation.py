"""Channel permutations for N:M sparsity (Pool and Yu, 2021): choose the order of each coupled
channel group so that the groups of M that N:M keeps N of hold channels that complement each
other.

N:M keeps the N largest of every M consecutive reduction channels. Which channels share a run
of M is an accident of the layout; reordering a group's channels (every producer row, consumer
column and per-channel parameter together, :mod:`onnxprune.rewrite.permute`) leaves the dense
model's outputs unchanged and changes which weights N:M can keep.

**Objective.** For one group of C channels (C a multiple of M), let S be the saliency matrix
whose rows are every (output, kernel offset) of every N:M consumer of the group and whose
columns are the group's channels in consumer order; each consumer's block of S is divided by its
sum, so every consumer weighs the same. The retained saliency of an order π is

    R(π) = Σ_rows Σ_runs top_N { S[row, π(p)] : p in the run }

(runs are the C/M consecutive position blocks of M). Saliency is the diagonal second-order
(Wanda²) cost of zeroing one weight: s = w²·E[x_c²] with the calibration second moment of the
consumer's input channel c, or w² without data (magnitude, as Pool and Yu).

**Search** (:func:`search_order`): local search by channel swaps between runs. For position p
(in run A) let rest = A without p, t = the N-th largest of rest per row; inserting channel q in
p's place gives top_N(rest ∪ {q}) = top_N(rest) + max(0, S[row, q] − t), so the value of every
single insertion is one vectorised pass. The gain of swapping p and q (different runs) is
V(p ← q) + V(q ← p) − R(A) − R(B). Each round splits the runs into random windows of
``window`` runs, and in every window applies the best non-overlapping improving swaps
(disjoint runs, so their gains add exactly) until none is left; rounds stop when a round gains
less than ``tol`` of R or after ``rounds``. R never decreases. Two starting orders are
compared first: the identity and a balanced deal (channels by total saliency, dealt to runs in
a snake so each run gets one of the largest).

Cost per round: C·(window·M)·rows operations; memory: one window's (window·M)² × rows block in
float32, chunked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import ModelProto, numpy_helper

from onnxprune.analysis import ChannelAnalysis, analyze
from onnxprune.calibrate.collect import collect_statistics
from onnxprune.calibrate.consumers import consumer_layers
from onnxprune.calibrate.data import iter_feeds
from onnxprune.calibrate.session import make_session
from onnxprune.errors import InputError
from onnxprune.graph.measured_shapes import valid_random_feeds
from onnxprune.graph.shapes import fix_input_shapes
from onnxprune.rewrite.apply import RewriteError
from onnxprune.rewrite.permute import permutation_blockers, permute_channels
from onnxprune.sparsity.obs import inverse_cholesky

#: Runs per search window (each window's swap gains are computed in full).
DEFAULT_WINDOW = 16
#: At most this many rounds of windowed swaps.
DEFAULT_ROUNDS = 24
#: Saliencies the search can use with calibration data (:func:`_curvatures`).
SALIENCIES = ("obs", "diag")
#: Largest relative output change a reorder may make (float rounding of reordered sums).
EQUIVALENCE_TOL = 1e-4
#: At most this many passes of swaps in one window per round.
MAX_PASSES = 32


def retained(saliency: np.ndarray, order: np.ndarray, n: int, m: int) -> float:
    """R(π): Σ over rows and runs of the N largest saliencies of each run of M positions."""
    rows, columns = saliency.shape
    runs = saliency[:, order].reshape(rows, columns // m, m)
    return float(np.sort(runs, axis=-1)[..., m - n :].sum())


def _balanced_start(saliency: np.ndarray, m: int) -> np.ndarray:
    """Channels by decreasing total saliency dealt to the runs in a snake (0..G-1, G-1..0, ...)."""
    columns = saliency.shape[1]
    runs = columns // m
    ranked = np.argsort(-saliency.sum(axis=0), kind="stable")
    slots = np.empty(columns, dtype=np.int64)
    for rank, channel in enumerate(ranked):
        lap, step = divmod(rank, runs)
        run = step if lap % 2 == 0 else runs - 1 - step
        slots[channel] = run * m + lap
    order = np.empty(columns, dtype=np.int64)
    order[slots] = np.arange(columns)
    return order


def _window_swaps(
    block: np.ndarray, n: int, m: int, min_gain: float = 1e-6
) -> list[tuple[int, int, float]]:
    """Improving swaps (p, q, gain) of one window's columns (rows, k·m), disjoint runs, best
    first; a gain under ``min_gain`` of the window's retained value is float noise."""
    rows, width = block.shape
    runs = block.reshape(rows, width // m, m)
    ordered = np.sort(runs, axis=-1)
    run_value = ordered[..., m - n :].sum(axis=(0, 2))  # (k,)
    # rest of each position's run: the run's sorted values without that position
    rest_top = np.empty(width)
    threshold = np.empty((rows, width), dtype=block.dtype)
    for slot in range(m):
        rest = np.delete(runs, slot, axis=-1)
        rest_sorted = np.sort(rest, axis=-1)
        rest_top[slot::m] = rest_sorted[..., m - 1 - n :].sum(axis=(0, 2))
        threshold[:, slot::m] = rest_sorted[..., m - 1 - n]
    # inserted[p, q] = Σ_rows max(0, S[row, q] − t[row, p])
    inserted = np.empty((width, width))
    for start in range(0, width, 32):
        stop = min(start + 32, width)
        excess = block[None, :, :] - threshold[:, start:stop].T[:, :, None]
        inserted[start:stop] = np.maximum(excess, 0.0).sum(axis=1)
    value = rest_top[:, None] + inserted  # run value of p's run with q in p's place
    run_of = np.arange(width) // m
    gain = value + value.T - run_value[run_of][:, None] - run_value[run_of][None, :]
    gain[run_of[:, None] == run_of[None, :]] = -np.inf
    gain = np.triu(gain, 1)
    candidates = np.flatnonzero(gain > min_gain * max(float(run_value.sum()), 1e-30))
    if not candidates.size:
        return []
    candidates = candidates[np.argsort(-gain.flat[candidates], kind="stable")]
    used: set[int] = set()
    swaps = []
    for flat in candidates.tolist():
        p, q = divmod(flat, width)
        a, b = int(run_of[p]), int(run_of[q])
        if a in used or b in used:
            continue
        used.update((a, b))
        swaps.append((p, q, float(gain[p, q])))
    return swaps


def search_order(
    saliency: np.ndarray,
    n: int,
    m: int,
    *,
    window: int = DEFAULT_WINDOW,
    rounds: int = DEFAULT_ROUNDS,
    tol: float = 1e-4,
    seed: int = 0,
) -> np.ndarray:
    """A column order π (position p holds column π[p]) with high R(π) (module docstring)."""
    saliency = np.asarray(saliency, dtype=np.float32)
    columns = saliency.shape[1]
    if columns % m:
        raise ValueError(f"{columns} columns do not split into runs of {m}")
    identity = np.arange(columns)
    balanced = _balanced_start(saliency, m)
    order = max((identity, balanced), key=lambda o: retained(saliency, o, n, m))
    runs = columns // m
    if runs < 2:
        return order
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        before = retained(saliency, order, n, m)
        shuffled = rng.permutation(runs)
        for start in range(0, runs, window):
            chosen = np.sort(shuffled[start : start + window])
            if chosen.size < 2:
                continue
            positions = (chosen[:, None] * m + np.arange(m)[None, :]).reshape(-1)
            for _ in range(MAX_PASSES):
                swaps = _window_swaps(saliency[:, order[positions]], n, m)
                if not swaps:
                    break
                for p, q, _ in swaps:
                    a, b = positions[p], positions[q]
                    order[a], order[b] = order[b], order[a]
        after = retained(saliency, order, n, m)
        if after - before <= tol * max(after, 1e-30):
            break
    return order


@dataclass
class GroupOrder:
    """The search result of one channel group (``order`` over ``clusters`` in consumer order)."""

    group: int
    name: str
    clusters: np.ndarray
    consumers: list[str]
    order: np.ndarray | None = None
    before: float = 0.0
    after: float = 0.0
    reason: str | None = None  # why the group is left in its order


@dataclass
class PermutationPlan:
    """Per-group orders and the cluster map :func:`~onnxprune.rewrite.permute.permute_channels`
    takes."""

    groups: list[GroupOrder] = field(default_factory=list)

    @property
    def sources(self) -> dict[int, int]:
        mapping: dict[int, int] = {}
        for item in self.groups:
            if item.order is not None and item.after > item.before:
                ordered = item.clusters[item.order]
                mapping.update(zip(item.clusters.tolist(), ordered.tolist(), strict=True))
        return mapping


def _consumer_runs(analysis: ChannelAnalysis, eligible: set[str]):
    """Per group: the (consumer, first position, saliency columns) runs it has in N:M layers,
    or the reason it cannot be ordered for N:M."""
    group_of = np.full(analysis.n_clusters, -1, dtype=np.int64)
    for group in analysis.groups:
        group_of[group.clusters] = group.index
    runs: dict[int, list] = defaultdict(list)
    bad: dict[int, str] = {}
    for layer in consumer_layers(analysis):
        if layer.node not in eligible:
            continue
        labels = np.asarray(layer.labels).reshape(-1)
        clusters = np.full(labels.shape, -1, dtype=np.int64)
        clusters[labels >= 0] = analysis.component_of[labels[labels >= 0]]
        for g in np.unique(group_of[clusters[clusters >= 0]]).tolist():
            members = analysis.groups[g].clusters
            positions = np.flatnonzero(np.isin(clusters, members))
            if len(positions) != len(members):
                bad[g] = f"'{layer.node}' reads some channels twice"
                continue
            if positions[-1] - positions[0] + 1 != len(positions):
                bad[g] = f"'{layer.node}' reads the channels interleaved with others"
                continue
            runs[g].append((layer, int(positions[0]), clusters[positions]))
    return runs, bad


def _saliency(layer, weight: np.ndarray, first: int, count: int, curvature) -> np.ndarray:
    """(rows, count) w²·κ of the consumer's features first..first+count, rows = every
    (output, kernel offset), divided by its sum; ``curvature`` κ has one value per weight-matrix
    column (feature-major, kernel offsets inner) or is None (κ = 1)."""
    matrix = np.moveaxis(weight, layer.in_axis, -1)
    features = matrix.shape[-1]
    inner = layer.kernel_size
    matrix = matrix.reshape(-1, inner, features)[..., first : first + count].astype(np.float64)
    scores = matrix**2
    if curvature is not None:
        kappa = np.asarray(curvature, dtype=np.float64).reshape(features, inner).T
        scores = scores * kappa[None, :, first : first + count]
    scores = scores.reshape(-1, count)
    total = scores.sum()
    return scores / total if total > 0 else scores


def plan_orders(
    analysis: ChannelAnalysis,
    n: int,
    m: int,
    eligible: set[str],
    *,
    blockers: Mapping[int, str | None],
    curvature: Mapping[str, np.ndarray] | None = None,
    seed: int = 0,
    window: int = DEFAULT_WINDOW,
    rounds: int = DEFAULT_ROUNDS,
) -> PermutationPlan:
    """Search an order for every group read by an N:M layer of ``eligible`` whose channels may
    move (``blockers[g]`` None); ``curvature[node]`` is κ per weight-matrix column of a
    consumer (module docstring)."""
    initializers = {t.name: t for t in analysis.model.graph.initializer}
    runs, bad = _consumer_runs(analysis, eligible)
    plan = PermutationPlan()
    for group in analysis.groups:
        if group.index not in runs and group.index not in bad:
            continue
        item = GroupOrder(group.index, group.name, group.clusters, [])
        plan.groups.append(item)
        reason = blockers.get(group.index) or bad.get(group.index)
        if reason is None and group.size % m:
            reason = f"{group.size} channels do not split into runs of {m}"
        parts = runs.get(group.index, [])
        if reason is None:
            reference = parts[0][2]
            if any(not np.array_equal(p[2], reference) for p in parts[1:]):
                reason = "consumers read the channels in different orders"
            elif any(p[1] % m for p in parts):
                reason = f"the channels do not start on a run of {m}"
        if reason is not None:
            item.reason = reason
            continue
        item.clusters = parts[0][2]
        item.consumers = [p[0].node for p in parts]
        blocks = []
        for layer, first, _ in parts:
            weight = numpy_helper.to_array(initializers[layer.weight])
            kappa = None if curvature is None else curvature.get(layer.node)
            blocks.append(_saliency(layer, weight, first, group.size, kappa))
        saliency = np.vstack(blocks)
        identity = np.arange(group.size)
        item.before = retained(saliency, identity, n, m)
        item.order = search_order(saliency, n, m, seed=seed, window=window, rounds=rounds)
        item.after = retained(saliency, item.order, n, m)
    return plan


@dataclass
class PermutedModel:
    """A model whose channel groups were reordered for N:M, with the plan and a summary."""

    model: ModelProto
    plan: PermutationPlan
    max_error: float  # largest relative output change measured against the input model
    saliency: str = "magnitude"  # what the search kept: obs, diag or magnitude (no data)
    skipped: str | None = None  # why nothing was reordered, when the reorder could not be proven

    def to_dict(self) -> dict:
        """JSON form: per group the share of the saliency N:M removes, before and after."""
        groups = []
        for g in self.plan.groups:
            share = max(len(g.consumers), 1)
            groups.append(
                {
                    "group": g.name,
                    "channels": len(g.clusters),
                    "consumers": list(g.consumers),
                    "reordered": g.order is not None and g.after > g.before,
                    "removed_before": None if g.order is None else 1.0 - g.before / share,
                    "removed_after": None
                    if g.order is None
                    else 1.0 - max(g.after, g.before) / share,
                    "reason": g.reason,
                }
            )
        return {
            "saliency": self.saliency,
            "max_relative_error": self.max_error,
            "skipped": self.skipped,
            "groups": groups,
        }

    def summary(self) -> str:
        if self.skipped:
            return f"N:M channel permutation skipped: {self.skipped}"
        moved = [g for g in self.plan.groups if g.order is not None and g.after > g.before]
        searched = [g for g in self.plan.groups if g.order is not None]
        if not searched:
            return "N:M channel permutation: no channel group could be reordered"
        before = sum(1.0 - g.before / max(len(g.consumers), 1) for g in searched) / len(searched)
        after = sum(
            1.0 - max(g.after, g.before) / max(len(g.consumers), 1) for g in searched
        ) / len(searched)
        return (
            f"N:M channel permutation: {len(moved)} of {len(self.plan.groups)} channel groups "
            f"reordered; N:M removes {100 * before:.2f} % → {100 * after:.2f} % of the "
            f"{self.saliency} saliency "
            f"(mean over {len(searched)} searched groups); outputs unchanged "
            f"(largest relative difference {self.max_error:.1e})"
        )


def permute_for_nm(
    model: ModelProto,
    eligible: set[str],
    n: int,
    m: int,
    data: Any = None,
    *,
    batch_size: int = 32,
    max_samples: int | None = 256,
    positions: int | None = 64,
    seed: int = 0,
    saliency: str = "obs",
    damp: float = 0.1,
    progress: Callable[[str], None] | None = None,
) -> PermutedModel:
    """Reorder the channel groups ``eligible`` N:M layers read (module docstring) and prove the
    result computes what ``model`` does: the largest relative output difference on a batch of
    ``data`` (or valid random inputs) must be at most :data:`EQUIVALENCE_TOL`, else the rewrite
    has a bug and :class:`~onnxprune.rewrite.apply.RewriteError` says so."""
    say = progress or (lambda message: None)
    say("analysing channel groups for the N:M permutation")
    analysis = analyze(model)
    kind = saliency if data is not None else "magnitude"
    feeds = _proof_feeds(analysis.model, data, batch_size)
    try:
        want = make_session(analysis.model).run(None, feeds)
    except Exception as error:
        reason = str(error).splitlines()[0][:160]
        return PermutedModel(model, PermutationPlan(), 0.0, kind, skipped=(
            f"the model does not run on synthetic inputs at the analysed shapes, so a reorder "
            f"could not be proven (give data=...): {reason}"
        ))  # fmt: skip
    blockers = permutation_blockers(analysis)
    curvature = None
    if data is not None:
        say("measuring input statistics for the N:M permutation")
        curvature = _curvatures(
            analysis, data, saliency, damp, batch_size=batch_size, max_samples=max_samples,
            positions=positions, seed=seed,
        )  # fmt: skip
    say("searching channel orders for N:M")
    plan = plan_orders(analysis, n, m, eligible, blockers=blockers, curvature=curvature, seed=seed)
    sources = plan.sources
    if not sources:
        return PermutedModel(model, plan, 0.0, kind)
    permuted = permute_channels(analysis, sources)
    try:
        got = make_session(permuted).run(None, feeds)
        error = max(
            (float(np.linalg.norm(np.asarray(g, np.float64) - w) / max(np.linalg.norm(w), 1e-30))
             for g, w in zip(got, want, strict=True)),
            default=0.0,
        )  # fmt: skip
    except Exception as failure:
        raise RewriteError(
            f"internal error: the N:M channel permutation made a model that does not run "
            f"({str(failure).splitlines()[0][:160]}); please report this model"
        ) from None
    if not error <= EQUIVALENCE_TOL:
        raise RewriteError(
            f"internal error: the N:M channel permutation changed the outputs (relative "
            f"difference {error:.2e}); please report this model"
        )
    return PermutedModel(permuted, plan, error, kind)


def check_saliency(saliency: str) -> None:
    """An unknown permutation saliency is bad input."""
    if saliency not in SALIENCIES:
        raise InputError(f"unknown permutation saliency {saliency!r} (use {', '.join(SALIENCIES)})")


def _curvatures(
    analysis: ChannelAnalysis, data: Any, saliency: str, damp: float, **settings
) -> dict[str, np.ndarray]:
    """κ per weight-matrix column of every consumer: ``obs`` 1/[(H + λI)⁻¹]_jj (the OBS cost
    of zeroing one weight is w²·κ: correlated columns that the others can stand in for cost
    less), λ = damp·mean(diag H); ``diag`` H_jj = E[x_j²] (Wanda², no correlations). Consumers
    too wide for a Gram matrix get ``diag``."""
    check_saliency(saliency)
    stats = collect_statistics(analysis, data, gram=saliency == "obs", **settings)
    curvature = {}
    for layer in stats.consumers:
        if layer.node in stats.grams:
            factor = inverse_cholesky(stats.hessian(layer.node), damp)  # (H + λI)⁻¹ = UᵀU
            curvature[layer.node] = 1.0 / (factor**2).sum(axis=0)
        elif layer.node in stats.features:
            energy = stats.features[layer.node].rms ** 2
            curvature[layer.node] = np.repeat(energy, layer.kernel_size)
    return curvature


def _proof_feeds(model: ModelProto, data: Any, batch_size: int) -> dict[str, np.ndarray]:
    """One batch (at most 8 samples) of ``data``, else valid random inputs at the shapes the
    analysis uses (dynamic dimensions 1)."""
    if data is not None:
        return next(iter_feeds(data, model, batch_size=min(batch_size, 8), max_samples=8))
    return valid_random_feeds(fix_input_shapes(model), seed=0)
