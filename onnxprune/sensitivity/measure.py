"""Measure how much each channel group's pruning alone hurts the model's outputs.

For every prunable group and every requested ratio r, the ``floor(r × size)`` lowest-scoring
removable clusters of that group alone are removed (the rest of the model untouched), the pruned
model (optionally repaired by ``recover``) runs on the calibration samples with ONNX Runtime,
and the drop metric compares its outputs with the original model's outputs, computed once.
Ratios that give the same cluster count share one run; a count of 0 is a drop of 0 without a
run. Cost: at most groups × ratios model runs on ``max_samples`` samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
from onnx import ModelProto

from onnxprune.analysis import ChannelAnalysis, ChannelGroup
from onnxprune.errors import InputError
from onnxprune.sensitivity.feeds import (
    calibration_feeds,
    check_feeds,
    model_inputs,
    run_model,
)
from onnxprune.sensitivity.metrics import DropMetric, resolve_drop_metric
from onnxprune.sensitivity.suffix import (
    changed_nodes,
    select_boundaries,
    suffix_model,
    with_outputs,
)
from onnxprune.sensitivity.table import GroupSensitivity, SensitivityPoint, SensitivityTable

DEFAULT_RATIOS = (0.1, 0.3, 0.5, 0.7)

Recover = Callable[[ChannelAnalysis, set[int], ModelProto], ModelProto]


def removal_sequence(
    group: ChannelGroup, scores: np.ndarray, min_keep: Sequence[np.ndarray] = ()
) -> list[int]:
    """The group's removable clusters, lowest score first: free clusters only, skipping any
    whose removal (after all earlier ones) would empty a Split/Slice piece, and never the
    group's last cluster. Every prefix is a valid removal."""
    free = group.clusters[~group.blocked]
    order = free[np.argsort(np.asarray(scores)[free], kind="stable")]
    pieces = [set(int(c) for c in piece) for piece in min_keep if len(piece)]
    removed: set[int] = set()
    sequence: list[int] = []
    for cluster in (int(c) for c in order):
        if len(sequence) >= group.size - 1:
            break
        if any(piece <= removed | {cluster} for piece in pieces):
            continue
        removed.add(cluster)
        sequence.append(cluster)
    return sequence


def cluster_amounts(analysis: ChannelAnalysis) -> tuple[np.ndarray, np.ndarray]:
    """(estimated MACs, parameters) removed with each cluster."""
    from onnxprune.allocate.schedule import cluster_params

    macs = np.zeros(analysis.n_clusters)
    for group in analysis.groups:
        if group.macs_per_cluster is not None:
            macs[group.clusters] = group.macs_per_cluster
    return macs, cluster_params(analysis)


def _validate_ratios(ratios: Sequence[float]) -> list[float]:
    values = sorted({float(r) for r in ratios})
    if not values or any(not 0.0 < r < 1.0 for r in values):
        raise InputError(f"ratios must be in (0, 1), got {list(ratios)}")
    return values


def _fixed_batch(model: ModelProto) -> bool:
    """Whether an input's first dimension is static (then whole models run)."""
    return any(
        value.type.tensor_type.shape.dim
        and value.type.tensor_type.shape.dim[0].HasField("dim_value")
        for value in model.graph.input
    )


class _Trial:
    """Builds, runs and scores one pruned candidate against the reference outputs."""

    def __init__(self, analysis, feeds, reference, metric: DropMetric, recover, batch_size):
        self.analysis = analysis
        self.feeds = feeds
        self.reference = reference
        self.metric = metric
        self.recover = recover
        self.batch_size = batch_size
        self.runs = 0
        self.suffix_runs = 0
        self.cached: dict[str, np.ndarray] = {}

    def drop(self, removed: set[int]) -> float:
        from onnxprune.rewrite import apply_removal

        model = apply_removal(self.analysis, removed)
        if self.recover is not None:
            model = self.recover(self.analysis, set(removed), model)
        self.runs += 1
        plan = None
        if self.cached:
            changed = changed_nodes(self.analysis.model, model)
            plan = suffix_model(model, changed, self.cached) if changed else None
        if plan is not None:
            suffix, names = plan
            self.suffix_runs += 1
            outputs = run_model(suffix, {n: self.cached[n] for n in names}, self.batch_size)
        else:
            outputs = run_model(model, self.feeds, self.batch_size)
        return float(self.metric(self.reference, outputs))

    def run_reference(self, cache_names: list[str]) -> None:
        """Original outputs; also caches ``cache_names`` (boundary tensors) and the feeds."""
        extended = with_outputs(self.analysis.model, cache_names) if cache_names else None
        if extended is None:
            extended, cache_names = self.analysis.model, []
        outputs = run_model(extended, self.feeds, self.batch_size)
        count = len(self.analysis.model.graph.output)
        self.reference = outputs[:count]
        if not cache_names:
            return
        samples = len(self.reference[0])
        self.cached = dict(self.feeds)
        for name, array in zip(cache_names, outputs[count:], strict=True):
            if array.ndim and array.shape[0] == samples:
                self.cached[name] = array


def measure_sensitivity(
    analysis: ChannelAnalysis,
    calibration,
    *,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    criterion: str = "l1",
    metric: str | DropMetric = "kl",
    recover: Recover | None = None,
    max_samples: int = 128,
    progress: Callable[[str], None] | None = None,
    scores: np.ndarray | None = None,
    original: ModelProto | None = None,
    batch_size: int = 64,
    cache_mb: float = 512,
) -> SensitivityTable:
    """Per prunable group, the drop of ``metric`` when only that group loses ``ratio`` of its
    clusters, for each ratio (see module docstring). ``scores`` overrides ``criterion``;
    ``original`` is passed to criteria that read the unprocessed model (``bn``). Up to
    ``cache_mb`` MiB of the original model's intermediate tensors are kept so that each
    candidate runs only from its first changed layer on (:mod:`~onnxprune.sensitivity.suffix`;
    0 runs whole models)."""
    from onnxprune.allocate.schedule import normalize_scores
    from onnxprune.importance import score_clusters

    started = time.perf_counter()
    say = progress or (lambda message: None)
    ratios = _validate_ratios(ratios)
    metric_name, metric_fn = resolve_drop_metric(metric)
    feeds = calibration_feeds(calibration, model_inputs(analysis.model), max_samples)
    feeds = check_feeds(analysis.model, feeds)
    criterion_name = criterion if scores is None else "custom"
    if scores is None:
        scores = score_clusters(analysis, criterion, original=original, calibration=calibration)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (analysis.n_clusters,):
        raise InputError(f"expected {analysis.n_clusters} scores, got shape {scores.shape}")
    normalized = normalize_scores(analysis, scores)
    prunable = [g for g in analysis.groups if g.prunable]
    samples = len(next(iter(feeds.values())))
    cache_names = (
        select_boundaries(analysis, [g.index for g in prunable], cache_mb * 2**20, samples)
        if cache_mb > 0 and not _fixed_batch(analysis.model)
        else []
    )
    say("sensitivity: running the original model")
    trial = _Trial(analysis, feeds, None, metric_fn, recover, batch_size)
    trial.run_reference(cache_names)
    reference = trial.reference
    macs, params = cluster_amounts(analysis)
    entries = []
    for position, group in enumerate(prunable, 1):
        say(f"sensitivity {position}/{len(prunable)}: {group.name}")
        sequence = removal_sequence(group, scores, analysis.min_keep)
        entry = GroupSensitivity(
            group.index, group.name, list(group.sources), group.size, group.width, len(sequence)
        )
        entry.order = list(sequence)
        entry.order_scores = [float(normalized[c]) for c in sequence]
        drops: dict[int, float] = {0: 0.0}
        for ratio in ratios:
            count = min(math.floor(ratio * group.size), len(sequence))
            if count not in drops:
                drops[count] = trial.drop(set(sequence[:count]))
            taken = sequence[:count]
            entry.points.append(
                SensitivityPoint(
                    ratio=ratio,
                    removed=count,
                    macs=float(macs[taken].sum()) if taken else 0.0,
                    params=float(params[taken].sum()) if taken else 0.0,
                    drop=drops[count],
                )
            )
        entries.append(entry)
    return SensitivityTable(
        metric=metric_name,
        criterion=criterion_name,
        ratios=ratios,
        samples=len(reference[0]) if reference else 0,
        total_macs=float(analysis.total_macs),
        groups=entries,
        recovered=recover is not None,
        seconds=time.perf_counter() - started,
        runs=trial.runs,
        suffix_runs=trial.suffix_runs,
    )
