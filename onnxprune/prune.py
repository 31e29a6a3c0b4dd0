"""The structured-pruning API: ``prune(model, ratio=...)`` -> pruned model and its plan.

Steps: load -> preprocess (fold constants, fuse BN, ...) -> analyse channel groups -> score
clusters -> allocate removals -> rewrite -> check. Every step is a function of its own package;
this module only wires them and records what happened in a :class:`PruningPlan`.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from onnx import ModelProto

from onnxprune import defaults
from onnxprune.allocate import AllocationPolicy, select_removal
from onnxprune.analysis import ChannelAnalysis, analyze, attention_head_dim
from onnxprune.evaluate.data import calibration_data
from onnxprune.importance import score_clusters
from onnxprune.passes.prepare import prepare
from onnxprune.rewrite import apply_removal, check_model


@dataclass
class GroupDecision:
    """What happened to one channel group."""

    index: int
    name: str
    sources: list[str]
    clusters: int
    kept: int
    width: int
    blocked: list[str]
    stats_coupled: bool
    #: the source layers' output channels removed (original numbering), to repeat the cut
    removed_channels: list[int] = field(default_factory=list)

    @property
    def channels_before(self) -> int:
        return self.clusters * self.width

    @property
    def channels_after(self) -> int:
        return self.kept * self.width


@dataclass
class PruningPlan:
    """Everything ``prune`` decided: criterion, policy, removed clusters and per-group counts."""

    criterion: str
    policy: AllocationPolicy
    removed_clusters: list[int]
    groups: list[GroupDecision]
    macs_before: int = 0
    macs_after: int = 0
    params_before: int = 0
    params_after: int = 0
    prunable_macs: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: said on every run: dynamic input dimensions analysed at size 1 (:func:`shape_warning`)
    warnings: list[str] = field(default_factory=list)
    #: said on every run with --data: what loading it decided (how an image folder was read:
    #: crops, pixel scale, missing normalization); also in ``notes``
    data_notes: list[str] = field(default_factory=list)

    @property
    def groups_pruned(self) -> int:
        return sum(1 for g in self.groups if g.kept < g.clusters)

    @property
    def groups_blocked(self) -> int:
        return sum(1 for g in self.groups if g.blocked and g.clusters > 0)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["groups_pruned"] = self.groups_pruned
        data["groups_blocked"] = self.groups_blocked
        return data


@dataclass
class PruneResult:
    """The pruned model, the plan, and the analysis it came from."""

    model: ModelProto
    plan: PruningPlan
    analysis: ChannelAnalysis

    def save(self, path: str | os.PathLike, *, force: bool = False, input_path=None) -> Path:
        from onnxprune.io import save_model

        return save_model(self.model, path, input_path=input_path, force=force)


def prune(
    model: str | os.PathLike | ModelProto,
    *,
    ratio: float = 0.3,
    criterion: str = defaults.DATA_FREE_CRITERION,
    global_ranking: bool = False,
    max_ratio: float = defaults.MAX_RATIO,
    round_to: int | None = None,
    ignore: list[str] | tuple[str, ...] = (),
    ratio_for: dict[str, float] | None = None,
    input_shapes: dict[str, list[int]] | None = None,
    scores: np.ndarray | None = None,
    data=None,
    allow_norm_stats: bool | None = None,
    allow_output_change: bool = False,
    attention_unit: str = "head",
) -> PruneResult:
    """Prune channels of ``model`` (path or ModelProto, never modified).

    ``ratio`` is the share of each group's channels removed (or of all channels with
    ``global_ranking``, capped per group by ``max_ratio``). ``ignore`` globs protect layers by
    name; ``ratio_for`` maps globs to per-layer ratios; ``round_to`` makes kept counts multiples
    of N (default: the CPU provider's channel block, as ``optimize``: :mod:`onnxprune.defaults`).
    ``data``: calibration data for data-driven criteria (``obs``, ``activation``, ``taylor``,
    ``fisher``, ...), in any form ``optimize`` accepts. ``allow_norm_stats``: prune groups whose
    channels feed LayerNorm/GroupNorm statistics (not mask-equivalent: the statistics change);
    default on with ``data``, off without (no guard checks the result).
    ``allow_output_change``: let a graph output's width follow the pruning.
    ``attention_unit``: what attention loses, ``head`` (whole heads, default) or ``head_dim``
    (the same positions of every head: :func:`onnxprune.analysis.attention_head_dim`).
    ``scores`` overrides the criterion (one score per cluster of the analysis).
    """
    policy = AllocationPolicy(
        ratio=ratio,
        global_ranking=global_ranking,
        max_ratio=max_ratio,
        round_to=defaults.round_to("cpu", round_to),
        ignore=list(ignore),
        ratio_for=dict(ratio_for or {}),
    )
    policy.validate()
    head_dim = attention_head_dim(attention_unit)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    original, prepared, notes = prepare(model, input_shapes)
    data = calibration_data(data, original, input_shapes)
    notes += [note for note in getattr(data, "notes", []) if note not in notes]
    timings["preprocess"] = time.perf_counter() - start
    start = time.perf_counter()
    if allow_norm_stats is None:
        allow_norm_stats = data is not None
    analysis = analyze(
        prepared,
        input_shapes,
        allow_norm_stats=allow_norm_stats,
        allow_output_change=allow_output_change,
        head_dim=head_dim,
    )
    timings["analyze"] = time.perf_counter() - start
    start = time.perf_counter()
    if scores is None:
        scores = score_clusters(analysis, criterion, original=original, calibration=data)
    removed = select_removal(analysis, scores, policy)
    timings["score_allocate"] = time.perf_counter() - start
    start = time.perf_counter()
    pruned = apply_removal(analysis, removed)
    check_model(pruned)
    timings["rewrite"] = time.perf_counter() - start
    notes += [note for note in analysis.notes if note not in notes]
    plan = build_plan(analysis, removed, criterion, policy, notes)
    plan.data_notes = list(getattr(data, "notes", []))
    plan.seconds = timings
    fill_plan_stats(plan, original, pruned, input_shapes, analysis)
    warning = shape_warning(original, input_shapes)
    if warning:
        plan.warnings.append(warning)
    if removed:  # what the analysis could not reach (notes say it when nothing was pruned)
        plan.warnings.extend(f"not pruned: {note}" for note in analysis.uncovered)
    return PruneResult(pruned, plan, analysis)


def shape_warning(model: ModelProto, input_shapes: dict[str, list[int]] | None) -> str | None:
    """Why MACs and groups may be wrong when inputs have dynamic dimensions after the batch
    axis that ``input_shapes`` does not fix: the analysis sets them to 1, so a convolutional
    network is analysed on a 1×1 image (MACs at that size; groups whose shapes break there are
    blocked). None when every such dimension is known."""
    from onnxprune.stats.summary import dynamic_dims_hint

    hint = dynamic_dims_hint(model, dict(input_shapes or {}))
    if hint is None:
        return None
    fix = hint.removeprefix("dynamic input dimensions: ")
    return (
        "dynamic input dimensions after the batch axis were set to 1: MACs are counted at "
        f"that size and groups whose shapes break there are blocked; {fix}"
    )


def build_plan(analysis: ChannelAnalysis, removed, criterion: str, policy, notes) -> PruningPlan:
    """Per-group decisions for ``removed`` clusters."""
    removed = {int(c) for c in removed}
    decisions = [
        GroupDecision(
            index=g.index,
            name=g.name,
            sources=g.sources,
            clusters=g.size,
            kept=g.size - sum(1 for c in g.clusters if int(c) in removed),
            width=g.width,
            blocked=g.reasons,
            stats_coupled=g.stats_coupled,
            removed_channels=g.removed_channels(removed),
        )
        for g in analysis.groups
    ]
    return PruningPlan(criterion, policy, sorted(removed), decisions, notes=list(notes))


def fill_plan_stats(plan: PruningPlan, original, pruned, input_shapes, analysis) -> None:
    """Measured MACs and parameters of the original and pruned models."""
    from onnxprune.stats import count_macs, count_params

    plan.macs_before = count_macs(original, input_shapes).total
    plan.macs_after = count_macs(pruned, input_shapes).total
    plan.params_before = count_params(original)[0]
    plan.params_after = count_params(pruned)[0]
    plan.prunable_macs = analysis.prunable_macs()
