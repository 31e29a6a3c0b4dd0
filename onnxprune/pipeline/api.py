"""``onnxprune.optimize``: prune toward a target under an accuracy guard; the public API.

Wiring only: load and preprocess (:func:`onnxprune.prune.prepare`), analyse once, score, build
the removal order (:mod:`~onnxprune.pipeline.schedule`), run the guarded loop
(:mod:`~onnxprune.pipeline.loop`) with ONNX Runtime evaluation
(:mod:`~onnxprune.pipeline.evaluation`), measure before/after and assemble the report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from onnx import ModelProto

from onnxprune.errors import InputError
from onnxprune.pipeline.loop import GuardedPruning, LoopHooks, LoopSettings, Measured
from onnxprune.pipeline.outputs import default_output
from onnxprune.pipeline.schedule import Schedule, removal_order, uniform_order
from onnxprune.pipeline.target import Target, parse_target
from onnxprune.report.schema import STATUS_OK, GroupWidth, Report

__all__ = ["OptimizeResult", "default_output", "optimize"]

ALLOCATIONS = ("global", "uniform", "sensitivity")

# Latency target: accepted when measured p50 is within this factor of the goal (timer noise).
LATENCY_TOLERANCE = 1.02


@dataclass
class OptimizeResult:
    """The pruned model, its report, and ``save(path)``.

    ``ok`` is False when the guard or the target was not met (``report.status`` and
    ``report.reason`` say why); ``model`` is then the best model found within the guard.
    """

    model: ModelProto
    report: Report
    input_path: str | None = None

    @property
    def ok(self) -> bool:
        return self.report.status == STATUS_OK

    def save(self, path: str | os.PathLike, *, force: bool = False, input_path=None) -> Path:
        """Write the model atomically (never over the input; existing files need ``force``)
        and record the path and file size in the report."""
        from onnxprune.io import save_model

        written = save_model(
            self.model, path, input_path=input_path or self.input_path, force=force
        )
        self.report.output_model = str(written)
        self.report.file_bytes_after = written.stat().st_size
        return written


def _validate_numbers(max_drop: float, steps: int, batch_size: int) -> None:
    if not max_drop >= 0:
        raise InputError(f"max-drop must be >= 0, got {max_drop}")
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    if batch_size < 1:
        raise InputError(f"batch-size must be >= 1, got {batch_size}")


def optimize(
    model: str | os.PathLike | ModelProto,
    target: str | Target = "macs=0.5",
    *,
    data: Any = None,
    eval_data: Any = None,
    metric: str | Callable | None = None,
    max_drop: float = 1.0,
    steps: int = 4,
    criterion: str | None = None,
    provider: str = "cpu",
    max_ratio: float = 0.8,
    round_to: int = 8,
    ignore: list[str] | tuple[str, ...] = (),
    ratio_for: dict[str, float] | None = None,
    input_shapes: dict[str, list[int]] | None = None,
    eval_split: float = 0.3,
    batch_size: int = 64,
    max_eval_samples: int | None = None,
    seed: int = 0,
    measure_latency: bool = True,
    recover: str | Callable[..., ModelProto] | None = None,
    progress: Callable[[str], None] | None = None,
    allocation: str | None = None,
) -> OptimizeResult:
    """Prune ``model`` (path or ModelProto, never modified) toward ``target`` in ``steps``
    steps, keeping ``metric`` within ``max_drop`` of the original model's value.

    ``data``: calibration data (path to .npz / image folder, a dataset object, or a mapping of
    arrays); ``eval_data`` defaults to a held-out ``eval_split`` of ``data``. ``metric``:
    ``"top1"``, ``"agreement"``, a registered name, ``"module:function"`` or a callable
    ``metric(outputs, labels) -> float``; by default top-1 with labels, else top-1 agreement
    with the original model. ``recover`` repairs each candidate before it is evaluated:
    ``"none"``, ``"bias"``, ``"lsq"`` (:func:`onnxprune.recover.make_recovery`) or a callable
    ``recover(analysis, removed, model) -> ModelProto``.
    ``round_to`` (default 8): kept channel counts are multiples of it — ONNX Runtime's CPU
    convolutions leave their fast blocked (NCHWc) path for other counts, which made a pruned
    digits VGG at 70 % of the MACs 1.17× *slower* than the original (docs/benchmarks.md).
    Defaults with calibration data: criterion ``obs``, allocation ``sensitivity``, recovery
    ``lsq``; without data: ``l1``, ``global``, ``none``. ``allocation`` orders the removal:
    ``global`` (criterion scores ranked across groups), ``uniform`` (all groups at about the same
    share) or ``sensitivity`` (measured per-group drops on the calibration data, cheapest drop per
    MAC first; :mod:`onnxprune.sensitivity`).
    Returns an :class:`OptimizeResult`; its ``ok`` is False when the guard or the target was
    not met (the model is then the best one found within the guard).
    """
    from onnxprune.analysis import analyze
    from onnxprune.importance import score_clusters
    from onnxprune.pipeline.evaluation import GuardEvaluator
    from onnxprune.prune import prepare
    from onnxprune.rewrite import apply_removal, check_model
    from onnxprune.stats import count_macs, count_params

    say = progress or (lambda message: None)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    target = parse_target(target)
    _validate_numbers(max_drop, steps, batch_size)
    if allocation is not None and allocation not in ALLOCATIONS:
        raise InputError(f"allocation must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
    input_shapes = dict(input_shapes or {})
    say("loading and preprocessing")
    original, prepared, notes = prepare(model, input_shapes)
    seconds["preprocess"] = time.perf_counter() - started

    tick = time.perf_counter()
    say("loading data and evaluating the original model")
    evaluator = GuardEvaluator.create(
        original,
        data=data,
        eval_data=eval_data,
        metric=metric,
        provider=provider,
        input_shapes=input_shapes,
        eval_split=eval_split,
        batch_size=batch_size,
        max_eval_samples=max_eval_samples,
        seed=seed,
    )
    notes += evaluator.notes
    for note in evaluator.notes:
        say(f"warning: {note}")
    metric_before = evaluator.baseline
    seconds["evaluate_original"] = time.perf_counter() - tick
    criterion, allocation, recovery_name = _resolve_methods(
        criterion, allocation, recover, evaluator.calibration is not None
    )
    notes.append(f"criterion {criterion}, allocation {allocation}, recovery {recovery_name}")

    tick = time.perf_counter()
    say("analysing channel groups")
    analysis = analyze(prepared, input_shapes)
    scores = score_clusters(
        analysis, criterion, original=original, calibration=evaluator.calibration
    )
    units = removal_order(
        analysis,
        scores,
        max_ratio=max_ratio,
        round_to=round_to,
        ignore=ignore,
        ratio_for=ratio_for,
    )
    seconds["analyze"] = time.perf_counter() - tick
    if isinstance(recover, str) or recover is None:
        from onnxprune.recover import make_recovery

        recover = make_recovery(recovery_name, analysis, evaluator.calibration, seed=seed)
    if allocation == "uniform":
        units = uniform_order(analysis, units)
    elif allocation == "sensitivity":
        tick = time.perf_counter()
        units = _sensitivity_units(
            analysis, evaluator.calibration, scores, target, original, say,
            max_ratio=max_ratio, round_to=round_to, protected=ignore, ratio_for=ratio_for,
        )  # fmt: skip
        seconds["sensitivity"] = time.perf_counter() - tick
    schedule = Schedule(analysis, units)

    macs_before = count_macs(original, input_shapes).total
    params_before = count_params(original)[0]
    cluster_macs = np.zeros(analysis.n_clusters)
    for group in analysis.groups:
        if group.macs_per_cluster is not None:
            cluster_macs[group.clusters] = group.macs_per_cluster

    def macs_estimate(removed: frozenset[int]) -> int:
        """Original MACs minus the analysis' estimate of the removed clusters' MACs."""
        removed_macs = cluster_macs[list(removed)].sum() if removed else 0.0
        return round(macs_before - float(removed_macs) * macs_before / max(analysis.total_macs, 1))

    def build(removed: frozenset[int]) -> ModelProto:
        pruned = apply_removal(analysis, removed) if removed else prepared
        if recover is not None and removed:
            pruned = recover(analysis, removed, pruned)
        return pruned

    latency_before = (
        evaluator.latency(original) if measure_latency or target.kind == "latency" else None
    )
    settings, gap = _plan(target, analysis, schedule, macs_before, params_before, latency_before)
    settings.steps = steps
    settings.max_drop = max_drop
    hooks = LoopHooks(
        build=build,
        count=lambda m: (count_macs(m, input_shapes).total, count_params(m)[0]),
        metric=lambda m, quick: evaluator.evaluate(m, quick=quick),
        gap=gap,
        latency=evaluator.latency,
        progress=say,
    )
    start_state = Measured(
        frozenset(),
        prepared,
        macs_before,
        macs_before,
        params_before,
        metric_before,
        latency_before,
    )
    tick = time.perf_counter()
    loop = GuardedPruning(
        schedule,
        hooks,
        settings,
        start_state,
        {g.index: g.name for g in analysis.groups},
        macs_of=macs_estimate,
    )
    outcome = loop.run()
    seconds["prune_loop"] = time.perf_counter() - tick

    best = outcome.best
    check_model(best.model)
    tick = time.perf_counter()
    if measure_latency:
        say("measuring latency before / after")
        latency_detail = evaluator.compare_latency(original, best.model)
    else:
        latency_detail = None
    seconds["latency"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - started

    reason = outcome.reason
    if reason is not None:
        reason = (
            f"{target.text} not met: {reason}; best model keeps "
            f"{best.macs / max(macs_before, 1):.1%} of MACs at {evaluator.metric_name} "
            f"{_fmt(best.metric)} (original {_fmt(metric_before)})"
        )
    report = _report(
        target=target,
        status=outcome.status,
        reason=reason,
        model=model,
        evaluator=evaluator,
        analysis=analysis,
        best=best,
        protected=outcome.protected,
        records=outcome.records,
        macs_before=macs_before,
        params_before=params_before,
        latency=latency_detail,
        latency_before=latency_before,
        criterion=criterion,
        max_drop=max_drop,
        provider=provider,
        seconds=seconds,
        notes=notes,
        original=original,
    )
    input_path = None if isinstance(model, ModelProto) else str(model)
    return OptimizeResult(best.model, report, input_path)


def _resolve_methods(criterion, allocation, recover, has_data: bool) -> tuple[str, str, str]:
    """Fill unset methods: data-driven ones (obs, sensitivity, lsq) when calibration data exists,
    data-free ones (l1, global, none) otherwise. Returns criterion, allocation, recovery name."""
    if callable(recover):
        recovery_name = getattr(recover, "__name__", "custom")
    else:
        recovery_name = recover or ("lsq" if has_data else "none")
    return (
        criterion or ("obs" if has_data else "l1"),
        allocation or ("sensitivity" if has_data else "global"),
        recovery_name,
    )


def _sensitivity_units(analysis, calibration, scores, target, original, say, **options):
    """The removal order of ``allocation="sensitivity"`` (measured on calibration data)."""
    from onnxprune.sensitivity import measure_sensitivity
    from onnxprune.sensitivity.allocate import sensitivity_order

    if calibration is None:
        raise InputError("allocation 'sensitivity' needs calibration data (--data)")
    table = measure_sensitivity(
        analysis, calibration, scores=scores, original=original, progress=say
    )
    measure = {"params": "params", "ratio": "clusters"}.get(target.kind, "macs")
    return sensitivity_order(table, analysis, measure=measure, **options)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _plan(target: Target, analysis, schedule: Schedule, macs_before, params_before, latency_before):
    """Loop settings (measure, planned total) and the measured-gap function of a target.

    The gap is expressed in the measure's estimated units so the loop can take it as the next
    amount: MAC and parameter gaps are scaled from counted to estimated units; the latency gap
    assumes latency proportional to MACs over the last step.
    """
    scale = analysis.total_macs / max(macs_before, 1)
    if target.kind == "macs":
        goal = target.value * macs_before

        def gap(measured: Measured) -> float:
            return (measured.macs - goal) * scale if measured.macs > goal * 1.001 else 0.0

        return LoopSettings("macs", (1 - target.value) * analysis.total_macs), gap
    if target.kind == "params":
        goal = target.value * params_before

        def gap(measured: Measured) -> float:
            return float(measured.params - goal) if measured.params > goal * 1.001 else 0.0

        return LoopSettings("params", (1 - target.value) * params_before), gap
    if target.kind == "ratio":
        eligible = {u.group for u in schedule.units}
        total = target.value * sum(g.size for g in analysis.groups if g.index in eligible)

        def gap(measured: Measured) -> float:
            return max(0.0, total - len(measured.removed))

        return LoopSettings("clusters", float(int(total))), gap
    # latency
    goal_ms = target.value * (latency_before or 0.0)

    def gap(measured: Measured) -> float:
        if measured.latency_ms is None or not latency_before:
            return 0.0
        if measured.latency_ms <= goal_ms * LATENCY_TOLERANCE:
            return 0.0
        kept_macs = measured.macs_estimated * scale
        return kept_macs * (1 - goal_ms / measured.latency_ms)

    settings = LoopSettings("macs", (1 - target.value) * analysis.total_macs, time_steps=True)
    settings.max_corrections = 4
    return settings, gap


def _group_widths(analysis, removed: frozenset[int], protected: set[int]) -> list[GroupWidth]:
    widths = []
    for group in analysis.groups:
        lost = sum(1 for c in group.clusters if int(c) in removed)
        widths.append(
            GroupWidth(
                index=group.index,
                name=group.name,
                sources=list(group.sources),
                channels_before=group.size * group.width,
                channels_after=(group.size - lost) * group.width,
                width=group.width,
                blocked=bool(group.blocked.all()) or group.size < 2,
                protected=group.index in protected,
            )
        )
    return widths


def _report(
    *,
    target,
    status,
    reason,
    model,
    evaluator,
    analysis,
    best,
    protected,
    records,
    macs_before,
    params_before,
    latency,
    latency_before,
    criterion,
    max_drop,
    provider,
    seconds,
    notes,
    original,
) -> Report:
    from onnxprune._version import __version__

    if isinstance(model, ModelProto):
        input_model, bytes_before = None, original.ByteSize()
    else:
        input_model, bytes_before = str(model), Path(model).stat().st_size
    latency_ms_before = latency["before"]["p50_ms"] if latency else latency_before
    latency_ms_after = latency["after"]["p50_ms"] if latency else best.latency_ms
    metric_after = best.metric
    drop = (
        None
        if evaluator.baseline is None or metric_after is None
        else evaluator.baseline - metric_after
    )
    target_met = status == STATUS_OK
    return Report(
        status=status,
        reason=reason,
        input_model=input_model,
        output_model=None,
        target=target.text,
        target_kind=target.kind,
        target_value=target.value,
        target_met=target_met,
        metric_name=evaluator.metric_name,
        metric_source=evaluator.metric_source,
        metric_before=evaluator.baseline,
        metric_after=metric_after,
        metric_drop=drop,
        max_drop=max_drop,
        accuracy_measured=evaluator.accuracy_measured,
        macs_before=int(macs_before),
        macs_after=int(best.macs),
        macs_after_estimated=int(best.macs_estimated),
        params_before=int(params_before),
        params_after=int(best.params),
        file_bytes_before=int(bytes_before),
        file_bytes_after=int(best.model.ByteSize()),
        latency_ms_before=latency_ms_before,
        latency_ms_after=latency_ms_after,
        provider=evaluator.provider_name or provider,
        latency=latency,
        criterion=criterion,
        data=evaluator.describe(),
        groups=_group_widths(analysis, best.removed, protected),
        steps=records,
        seconds=seconds,
        notes=list(notes),
        tool_version=__version__,
    )
