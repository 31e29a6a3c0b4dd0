"""One guarded run of a pruning scheme on a session: the phases of ``optimize``.

``open_session`` does the work every scheme shares (load, data split, the original evaluated
and the guard's noise floor measured, preprocessing); ``run_scheme`` resolves one
:class:`Scheme`'s methods, analyses and scores the model, sets up the plan's kinds and runs the
guarded loop (:mod:`~onnxprune.pipeline.loop`); ``finish`` measures the best model's latency
against the original and assembles the report. :func:`onnxprune.pipeline.api.optimize` runs
one scheme; :mod:`~onnxprune.pipeline.search` runs several on one session.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnx import ModelProto

from onnxprune import defaults
from onnxprune.allocate.schedule import Schedule
from onnxprune.errors import InputError
from onnxprune.io.external_data import model_file_bytes
from onnxprune.pipeline import blocks as _blocks  # noqa: F401 - registers the kind
from onnxprune.pipeline import channels as _channels  # noqa: F401 - registers the kind
from onnxprune.pipeline import sparsity as _sparsity  # noqa: F401 - registers kind and goal
from onnxprune.pipeline.drop_metric import choose_drop_metric, choose_gain_metric
from onnxprune.pipeline.goals import GoalContext, make_goal
from onnxprune.pipeline.latency_note import latency_note
from onnxprune.pipeline.loop import GuardedPruning, LoopHooks, LoopOutcome, Measured
from onnxprune.pipeline.plan import (
    CHANNELS,
    Plan,
    PlanContext,
    check_kind_options,
    item_kind,
    merge_units,
    setup_kinds,
)
from onnxprune.pipeline.progress import INPUTS_CHECKED
from onnxprune.pipeline.target import DEFAULT_UNITS, Target
from onnxprune.report.schema import STATUS_OK, GroupWidth, Report

ALLOCATIONS = ("global", "uniform", "sensitivity")


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
        self.report.file_bytes_after = model_file_bytes(written)
        return written


ATTENTION_NOTE = (
    "the original's {count} ONNX Attention node(s) were evaluated and timed in the "
    "MatMul/Softmax/MatMul form onnxprune writes (the same function; ONNX Runtime's Attention "
    "kernel refuses padding masks [B, 1, 1, T])"
)


def validate_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise InputError(f"batch-size must be >= 1, got {batch_size}")


@dataclass(frozen=True)
class Scheme:
    """The methods of one guarded run: what a scheme search varies (:mod:`.search`).

    ``None`` leaves a method to :func:`_resolve_methods` (data-driven methods with calibration
    data, data-free ones without); ``units`` names the kinds of pruning (a list, or names
    joined by commas)."""

    criterion: str | None = None
    allocation: str | None = None
    recover: str | Callable[..., ModelProto] | None = None
    units: str | list[str] | None = None
    max_ratio: float = defaults.MAX_RATIO
    steps: int = 4
    #: kind options (``--kind-option``) of this scheme, over the session's: (key, value) pairs
    kind_options: tuple[tuple[str, Any], ...] = ()

    def plan_options(self, session_options: dict[str, Any] | None) -> dict[str, Any] | None:
        """The session's kind options with this scheme's over them (None when both are
        empty)."""
        merged = {**dict(session_options or {}), **dict(self.kind_options)}
        return merged or None


@dataclass(frozen=True)
class Settings:
    """Options every scheme of a session shares (see :func:`optimize`)."""

    provider: str = "cpu"
    round_to: int | None = None
    ignore: tuple[str, ...] = ()
    ratio_for: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    plan_options: dict[str, Any] = field(default_factory=dict)
    allow_norm_stats: bool = True
    allow_output_change: bool = False
    head_dim: bool = False


@dataclass
class Session:
    """What every scheme run on one model and one data set shares: the loaded original, its
    preprocessed graph, the guard's evaluator (baseline and noise floor measured once), the
    counted MACs / parameters before, and the notes and seconds of opening it."""

    model: str | os.PathLike | ModelProto
    target: Target
    settings: Settings
    original: ModelProto
    prepared: ModelProto
    evaluator: Any  # GuardEvaluator
    input_shapes: dict[str, list[int]]
    macs_before: int
    params_before: int
    latency_before: float | None
    notes: list[str]
    seconds: dict[str, float]
    say: Callable[[str], None]
    started: float
    #: what one scheme computed that the next can reuse (:func:`_analyse_and_set_up`)
    memo: dict[tuple, Any] = field(default_factory=dict)

    @property
    def has_calibration(self) -> bool:
        return self.evaluator.calibration is not None


@dataclass
class SchemeRun:
    """One scheme's guarded run on a session: the methods it resolved to, the analysis and plan
    it built, the loop's outcome and how far toward the target its best model got
    (``progress``: 1 - remaining gap / gap of the original, 1.0 when met)."""

    scheme: Scheme
    criterion: str
    allocation: str
    recovery: str
    kinds: list[str]
    analysis: Any
    plan: Plan
    outcome: LoopOutcome
    progress: float
    notes: list[str]
    seconds: dict[str, float]


def check_scheme(
    scheme: Scheme, target: Target, data: Any, plan_options: dict[str, Any] | None
) -> None:
    """Option errors of ``scheme`` that need no model or data (InputError, before any work);
    ``plan_options``: the session's kind options (the scheme's own go over them)."""
    plan_options = scheme.plan_options(plan_options)
    if scheme.allocation is not None and scheme.allocation not in ALLOCATIONS:
        raise InputError(
            f"allocation must be one of {', '.join(ALLOCATIONS)}, got {scheme.allocation!r}"
        )
    if scheme.steps < 1:
        raise InputError(f"steps must be >= 1, got {scheme.steps}")
    if not 0.0 <= scheme.max_ratio < 1.0:
        raise InputError(f"max-ratio must be in [0, 1), got {scheme.max_ratio}")
    kinds = _unit_kinds(scheme.units, target)
    _check_options_early(kinds, scheme.recover, data, scheme.allocation, plan_options)
    _kind_criterion(kinds, scheme.criterion, plan_options)
    if scheme.criterion is not None and CHANNELS in kinds:
        from onnxprune.importance import CRITERIA

        if scheme.criterion not in CRITERIA:
            raise InputError(
                f"unknown criterion '{scheme.criterion}'; known: {', '.join(sorted(CRITERIA))}"
            )
    elif scheme.criterion is not None and kinds == ["sparsity"]:
        from onnxprune.sparsity.criteria import resolve_criterion

        resolve_criterion(scheme.criterion)


def open_session(
    model: str | os.PathLike | ModelProto,
    target: Target,
    settings: Settings,
    *,
    data: Any,
    eval_data: Any,
    metric: str | Callable | None,
    max_drop: float | str | None,
    input_shapes: dict[str, list[int]] | None,
    eval_split: float,
    batch_size: int,
    max_eval_samples: int | None,
    noise_sigma: float,
    synthesize: str,
    progress: Callable[[str], None] | None,
) -> Session:
    """Load ``model``, open the guard's evaluator on the data (the original evaluated once),
    fix input shapes from the data and preprocess: the work every scheme shares."""
    from onnxprune.evaluate.data import shapes_from_data
    from onnxprune.io import load_model
    from onnxprune.passes.lower_attention import attention_lowered
    from onnxprune.passes.prepare import prepare
    from onnxprune.pipeline.evaluation import GuardEvaluator
    from onnxprune.stats import count_macs, count_params

    say = progress or (lambda message: None)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    input_shapes = dict(input_shapes or {})
    say("loading the model")
    original, lowered_attention = attention_lowered(load_model(model))
    tick = time.perf_counter()
    say("loading data and evaluating the original model")
    evaluator = GuardEvaluator.create(
        original,
        data=data,
        eval_data=eval_data,
        metric=metric,
        provider=settings.provider,
        input_shapes=input_shapes,
        eval_split=eval_split,
        batch_size=batch_size,
        max_eval_samples=max_eval_samples,
        seed=settings.seed,
        max_drop=max_drop,
        noise_sigma=noise_sigma,
        progress=progress,
        synthesize=synthesize,
    )
    notes = list(evaluator.notes)
    if lowered_attention:
        notes.append(ATTENTION_NOTE.format(count=lowered_attention))
    say(INPUTS_CHECKED)
    for note in evaluator.notes:
        say(f"note: {note}")
    seconds["evaluate_original"] = time.perf_counter() - tick
    measured_shapes = shapes_from_data(evaluator.input_specs, evaluator.evaluation, input_shapes)
    for name in sorted(set(measured_shapes) - set(input_shapes)):
        notes.append(f"input '{name}' shape {measured_shapes[name]} taken from the data")
    input_shapes = measured_shapes
    evaluator.input_shapes = dict(input_shapes)
    tick = time.perf_counter()
    say("preprocessing")
    _, prepared, pass_notes = prepare(original, input_shapes)
    notes += pass_notes
    seconds["preprocess"] = time.perf_counter() - tick
    # the loop times candidates only for a latency target; the report's before/after figures
    # come from one interleaved comparison at the end (``measure_latency``)
    latency_before = evaluator.latency(original) if target.kind == "latency" else None
    return Session(
        model=model,
        target=target,
        settings=settings,
        original=original,
        prepared=prepared,
        evaluator=evaluator,
        input_shapes=input_shapes,
        macs_before=count_macs(original, input_shapes).total,
        params_before=count_params(original)[0],
        latency_before=latency_before,
        notes=notes,
        seconds=seconds,
        say=say,
        started=started,
    )


def run_scheme(session: Session, scheme: Scheme) -> SchemeRun:
    """Resolve ``scheme``'s methods, analyse and score the preprocessed model, set up the
    plan's kinds and run the guarded loop from the original (:func:`_run_guarded_loop`). The
    session is not changed: several schemes can run on it one after the other."""
    from onnxprune.rewrite import check_model

    say, evaluator, target = session.say, session.evaluator, session.target
    settings = session.settings
    seconds: dict[str, float] = {}
    notes: list[str] = []
    kinds = _unit_kinds(scheme.units, target)
    plan_options = _kind_criterion(
        kinds, scheme.criterion, scheme.plan_options(settings.plan_options)
    )
    calibration = evaluator.calibration
    criterion, allocation, recovery_name = _resolve_methods(
        scheme.criterion,
        scheme.allocation,
        scheme.recover,
        calibration is not None,
        len(calibration) if calibration is not None else None,
    )
    if CHANNELS in kinds:
        notes.append(f"criterion {criterion}, allocation {allocation}, recovery {recovery_name}")
    distill_loss = _distill_loss(recovery_name, evaluator.metric, plan_options)

    tick = time.perf_counter()
    analysis, plan, ranked, setups = _analyse_and_set_up(
        kinds,
        original=session.original,
        prepared=session.prepared,
        input_shapes=session.input_shapes,
        calibration=calibration,
        target=target,
        progress=say,
        options={
            **_plan_options(
                kinds,
                settings.provider,
                scheme.max_ratio,
                settings.round_to,
                settings.ignore,
                settings.ratio_for,
                settings.seed,
                plan_options,
            ),
            "distill_loss": distill_loss,
            "sensitivity_metric": choose_drop_metric(
                evaluator.metric, (plan_options or {}).get("sensitivity_metric")
            ),
            "gain_metric": choose_gain_metric(
                evaluator.metric, (plan_options or {}).get("gain_metric")
            ),
        },
        methods=(criterion, allocation, scheme.recover, recovery_name),
        allow_norm_stats=settings.allow_norm_stats,
        allow_output_change=settings.allow_output_change,
        head_dim=settings.head_dim,
        memo=session.memo,
    )
    for note in analysis.notes:  # e.g. quantized layers or control flow left whole
        if note not in session.notes and note not in notes:
            notes.append(note)
            say(f"note: {note}")
    for setup in setups:
        notes.extend(setup.notes)
        seconds.update(setup.seconds)
    schedule = Schedule(analysis, ranked)
    seconds["analyze"] = time.perf_counter() - tick

    start_state = Measured(
        frozenset(), session.prepared, session.macs_before, session.macs_before,
        session.params_before, evaluator.baseline, session.latency_before,
    )  # fmt: skip
    say(f"guard: {evaluator.guard.describe()}")
    tick = time.perf_counter()
    outcome, gap = _run_guarded_loop(
        target,
        scheme.steps,
        evaluator,
        analysis,
        plan,
        schedule,
        start_state,
        session.input_shapes,
        say,
    )
    seconds["prune_loop"] = time.perf_counter() - tick
    check_model(outcome.best.model)
    return SchemeRun(
        scheme=scheme,
        criterion=criterion,
        allocation=allocation,
        recovery=recovery_name,
        kinds=kinds,
        analysis=analysis,
        plan=plan,
        outcome=outcome,
        progress=_progress(gap, start_state, outcome.best),
        notes=notes,
        seconds=seconds,
    )


def _progress(gap: Callable[[Measured], float], start: Measured, best: Measured) -> float:
    """Share of the target's gap the best model closed: 1 - gap(best) / gap(original), in
    [0, 1]; 1.0 when the original already meets the target."""
    before = gap(start)
    if before <= 0:
        return 1.0
    return float(min(max(1.0 - gap(best) / before, 0.0), 1.0))


def finish(session: Session, run: SchemeRun, *, measure_latency: bool = True) -> OptimizeResult:
    """The result of ``run``: the latency of its best model against the original (one
    interleaved comparison, ``measure_latency``), the stop reason and the report."""
    say, evaluator, target = session.say, session.evaluator, session.target
    outcome, analysis, plan = run.outcome, run.analysis, run.plan
    best = outcome.best
    notes = session.notes + run.notes
    seconds = {**session.seconds, **run.seconds}
    tick = time.perf_counter()
    if measure_latency:
        say("measuring latency before / after")
        latency_detail = evaluator.compare_latency(session.original, best.model)
        note = latency_note(latency_detail, bool(best.removed), CHANNELS in run.kinds)
        if note:
            notes.append(note)
    else:
        latency_detail = None
    seconds["latency"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - session.started

    reason = outcome.reason
    if reason is not None and not outcome.records and analysis is not None and analysis.uncovered:
        reason += " (" + "; ".join(analysis.uncovered) + ")"  # why nothing could be pruned
    if reason is not None:
        reason = _stop_reason(target, reason, outcome, plan, evaluator, best, session.macs_before)
    report = _report(
        target=target,
        status=outcome.status,
        reason=reason,
        model=session.model,
        evaluator=evaluator,
        analysis=analysis,
        best=best,
        protected=outcome.protected,
        records=outcome.records,
        macs_before=session.macs_before,
        params_before=session.params_before,
        latency=latency_detail,
        latency_before=session.latency_before,
        criterion=run.criterion,
        provider=session.settings.provider,
        seconds=seconds,
        notes=notes,
        original=session.original,
    )
    report.plan = plan.describe(best.removed, before=session.prepared, after=best.model)
    if CHANNELS not in run.kinds:
        named = [str(part["criterion"]) for part in report.plan.values() if "criterion" in part]
        report.criterion = ", ".join(named) or report.criterion
    model = session.model
    input_path = None if isinstance(model, ModelProto) else str(model)
    return OptimizeResult(best.model, report, input_path)


def _run_guarded_loop(
    target: Target,
    steps: int,
    evaluator,
    analysis,
    plan: Plan,
    schedule: Schedule,
    start: Measured,
    input_shapes: dict[str, list[int]],
    say: Callable[[str], None],
) -> tuple[LoopOutcome, Callable[[Measured], float]]:
    """Grow ``plan`` along ``schedule`` toward ``target`` in ``steps`` guarded steps from the
    original's measured ``start`` (:class:`~onnxprune.pipeline.loop.GuardedPruning`): the
    target's goal sets the measure and the gap, the evaluator's guard the tolerance. Returns
    the loop's outcome and the goal's gap function."""
    from onnxprune.stats import count_macs, count_params

    macs_before, params_before = start.macs, start.params
    settings, gap = make_goal(
        target,
        GoalContext(
            estimated_macs=analysis.total_macs,
            macs_before=macs_before,
            params_before=params_before,
            latency_before=start.latency_ms,
            units=schedule.units,
            extra={"eligible_items": _eligible_items(analysis, schedule), "model": start.model},
        ),
    )
    settings.steps = steps
    settings.max_drop = evaluator.guard.threshold
    settings.higher_is_better = evaluator.metric.higher_is_better

    def count(m: ModelProto) -> tuple[int, int]:
        return count_macs(m, input_shapes).total, count_params(m)[0]

    def macs_estimate(removed: frozenset) -> int:
        """Original MACs minus the plan's estimate of the removed items' MACs."""
        removed_macs = plan.estimated_macs_removed(removed) if removed else 0.0
        return round(macs_before - removed_macs * macs_before / max(analysis.total_macs, 1))

    hooks = LoopHooks(
        build=plan.build,
        build_quick=plan.build_quick,
        count=count,
        metric=lambda m, quick: evaluator.evaluate(m, quick=quick),
        gap=gap,
        latency=evaluator.latency,
        progress=say,
        removed_amount=_counted_removal(
            settings.measure, plan, count, (macs_before, params_before), analysis.total_macs
        ),
    )
    loop = GuardedPruning(schedule, hooks, settings, start, plan.group_names, macs_of=macs_estimate)
    return loop.run(), gap


def _counted_removal(
    measure: str,
    plan: Plan,
    count: Callable[[ModelProto], tuple[int, int]],
    before: tuple[int, int],
    estimated_macs: float,
) -> Callable[[frozenset], float] | None:
    """The loop's ``removed_amount`` hook: MACs (scaled to the analysis' estimated units, the
    units of ``LoopSettings.total``) or parameters that a removal takes away, counted on the
    plan's repair-free build. None for other measures, or when a kind of the plan has no cheap
    repair-free build (:attr:`Plan.counts_quickly`): steps are then sized on estimates."""
    if measure not in ("macs", "params") or not plan.counts_quickly:
        return None
    macs_before, params_before = before
    scale = estimated_macs / max(macs_before, 1)

    def removed_amount(removed: frozenset) -> float:
        if not removed:
            return 0.0
        macs, params = count(plan.build_quick(removed))
        return (macs_before - macs) * scale if measure == "macs" else float(params_before - params)

    return removed_amount


def _plan_options(
    kinds, provider, max_ratio, round_to, ignore, ratio_for, seed, plan_options
) -> dict[str, Any]:
    """The run's options the kinds' factories read (:class:`PlanContext` ``options``)."""
    return {
        "max_ratio": max_ratio,
        "round_to": defaults.round_to(provider, round_to),
        "ignore": list(ignore),
        "ratio_for": dict(ratio_for or {}),
        "seed": seed,
        "combined": len(kinds) > 1,
        **dict(plan_options or {}),
    }


def _analyse_and_set_up(
    kinds: list[str],
    *,
    original: ModelProto,
    prepared: ModelProto,
    input_shapes: dict[str, list[int]],
    calibration,
    target: Target,
    progress: Callable[[str], None],
    options: dict[str, Any],
    methods: tuple,
    allow_norm_stats: bool,
    allow_output_change: bool,
    head_dim: bool = False,
    memo: dict[tuple, Any] | None = None,
) -> tuple[Any, Plan, list, list]:
    """The channel analysis of ``prepared``, the run's plan and its candidate removals ranked
    together (:func:`merge_units`), shared by ``optimize`` and
    :func:`onnxprune.pipeline.ranked.rank_units`. ``methods`` = (criterion, allocation,
    recover, recovery name): clusters are scored when the channel kind is asked for, the
    recovery is made (``recover``: a callable, or None/a name resolved to the recovery name)
    and the kinds' factories run on one :class:`PlanContext`. Returns (analysis, plan, ranked
    units, kind setups).

    ``memo`` (a session's, :class:`Session`): the analysis, the criterion scores and the
    channel kind's sensitivity tables of earlier schemes on the same session, reused. Each is
    a function of the session (the preprocessed graph, input shapes, the analysis flags, the
    calibration data, the evaluator's drop metric) and of what its key names (the criterion;
    for a table also whether its points are repaired), and none is written after it is made:
    a scheme that reuses one gets what it would have computed."""
    from onnxprune.analysis import analyze
    from onnxprune.importance import score_clusters

    criterion, allocation, recover, recovery_name = methods
    memo = {} if memo is None else memo
    if ("analysis",) in memo:
        analysis = memo[("analysis",)]
    else:
        progress("analysing channel groups")
        analysis = analyze(
            prepared,
            input_shapes,
            allow_norm_stats=allow_norm_stats,
            allow_output_change=allow_output_change,
            head_dim=head_dim,
        )
        memo[("analysis",)] = analysis
    context = PlanContext(
        original=original,
        prepared=prepared,
        analysis=analysis,
        calibration=calibration,
        target=target,
        input_shapes=input_shapes,
        progress=progress,
        options=options,
    )
    scores = None
    if CHANNELS in kinds:
        key = ("scores", criterion)
        if key not in memo:
            memo[key] = score_clusters(
                analysis, criterion, original=original, calibration=calibration
            )
        scores = memo[key]
    if isinstance(recover, str) or recover is None:
        from onnxprune.recover import make_recovery

        recover = make_recovery(
            recovery_name,
            analysis,
            calibration,
            seed=options.get("seed", 0),
            progress=progress,
            distill_loss=options.get("distill_loss", "kl"),
        )
    context.shared.update(
        {
            "scores": scores,
            "criterion": criterion,
            "memo": memo,
            "allocation": allocation,
            "recover": recover,
            "recovery_name": recovery_name,
        }
    )
    setups = setup_kinds(kinds, context)
    plan = Plan(prepared, [setup.kind for setup in setups])
    return analysis, plan, merge_units([setup.units for setup in setups]), setups


def _check_options_early(kinds: list[str], recover, data, allocation, plan_options=None) -> None:
    """Option errors that need no model or data, raised before any work (exit 2, one line)."""
    from onnxprune.pipeline.plan import KIND_FACTORIES
    from onnxprune.recover.registry import lookup_recovery

    unknown = [name for name in kinds if name not in KIND_FACTORIES]
    if unknown:
        raise InputError(
            f"unknown kind of pruning '{unknown[0]}'; known: {', '.join(sorted(KIND_FACTORIES))}"
        )
    if "sparsity" in kinds and len(kinds) > 1:
        raise InputError(
            "sparsity is optimized alone: prune channels or blocks first (optimize with a MAC "
            "target), then run optimize --target sparsity=S on the result"
        )
    if len(kinds) > 1 and data is None:
        raise InputError(
            f"ranking {' and '.join(kinds)} against each other needs calibration data "
            "(data=...): their scores are measured drops"
        )
    if CHANNELS not in kinds and allocation is not None:
        raise InputError(
            f"allocation orders channel removal; this run prunes {', '.join(kinds)} (leave "
            "allocation unset)"
        )
    if len(kinds) > 1 and "channels" in kinds and allocation not in (None, "sensitivity"):
        raise InputError(
            "ranking channels against other kinds needs allocation 'sensitivity' (measured drop "
            f"per MAC), got '{allocation}'"
        )
    if isinstance(recover, str):
        lookup_recovery(recover)
    check_kind_options(kinds, plan_options)
    if (plan_options or {}).get("distill_loss"):
        from onnxprune.recover.distill_losses import lookup_distill_loss

        lookup_distill_loss(str(plan_options["distill_loss"]))


def _kind_criterion(
    kinds: list[str], criterion: str | None, plan_options: dict[str, Any] | None
) -> dict[str, Any] | None:
    """``criterion`` names the channel criterion; in a run of weight masks alone it names the
    sparsity criterion (``sparsity_criterion``, checked by the kind: an unknown name is bad
    input). A run of blocks alone takes ``block_criterion``: a criterion there is bad input."""
    if criterion is None or CHANNELS in kinds:
        return plan_options
    if kinds == ["sparsity"]:
        return {"sparsity_criterion": criterion, **dict(plan_options or {})}
    raise InputError(
        f"criterion '{criterion}' scores channels; this run prunes {', '.join(kinds)} "
        "(use block_criterion for blocks)"
    )


def _unit_kinds(units, target: Target) -> list[str]:
    """The plan kinds of a run: ``units`` (names, or a comma-separated string), else the
    target kind's default (:data:`onnxprune.pipeline.target.DEFAULT_UNITS`)."""
    if units is None:
        return list(DEFAULT_UNITS.get(target.kind, (CHANNELS,)))
    names = units.split(",") if isinstance(units, str) else list(units)
    names = [str(name).strip() for name in names if str(name).strip()]
    if not names:
        raise InputError("units must name at least one kind of pruning (e.g. channels)")
    return list(dict.fromkeys(names))


def _eligible_items(analysis, schedule: Schedule) -> int:
    """Clusters of the groups that have channel units (the ``ratio`` target's base)."""
    eligible = {u.group for u in schedule.units if u.kind == CHANNELS}
    return sum(g.size for g in analysis.groups if g.index in eligible)


def _distill_loss(recovery_name: str, metric, plan_options) -> str:
    """The distillation loss of the run: the kind option ``distill_loss`` when given (a
    registered name, :mod:`onnxprune.recover.distill_losses`), else the one that serves the
    guard's metric (``Metric.distill_loss``). A distilling recovery without either (detection
    metrics have none, :mod:`onnxprune.evaluate.detection`) is InputError before any pruning
    work."""
    chosen = (plan_options or {}).get("distill_loss")
    if chosen:  # a registered name: checked before any work (_check_options_early)
        return str(chosen)
    if "distill" in str(recovery_name) and not metric.distill_loss:
        raise InputError(
            f"--recover {recovery_name}: no distillation loss serves the guard metric "
            f"'{metric.name}' (a detection head holds box coordinates beside class scores, and "
            "KL or squared error over it reads the coordinates only); use --recover lsq or "
            "reconstruct"
        )
    return metric.distill_loss


def _resolve_methods(
    criterion, allocation, recover, has_data: bool, samples: int | None = None
) -> tuple[str, str, str]:
    """Fill unset methods: data-driven ones (obs, sensitivity, and lsq — reconstruct from
    ``defaults.RECONSTRUCT_MIN_SAMPLES`` calibration ``samples`` on) when calibration data
    exists, data-free ones (l1, global, none) otherwise. Returns criterion, allocation,
    recovery name."""
    if callable(recover):
        recovery_name = getattr(recover, "__name__", "custom")
    elif recover:
        recovery_name = recover
    elif not has_data:
        recovery_name = "none"
    else:
        many = samples is not None and samples >= defaults.RECONSTRUCT_MIN_SAMPLES
        recovery_name = "reconstruct" if many else "lsq"
    return (
        criterion or ("obs" if has_data else defaults.DATA_FREE_CRITERION),
        allocation or ("sensitivity" if has_data else "global"),
        recovery_name,
    )


def _stop_reason(target, reason, outcome, plan, evaluator, best, macs_before) -> str:
    """Why the run stopped, how far it got, the most sensitive groups and what would go
    further — one line for the CLI's exit 3 and the report."""
    kept = (
        f"keeps {best.macs / macs_before:.1%} of MACs"
        if macs_before > 0
        else "counts no Conv/ConvTranspose/Gemm/MatMul MACs"
    )
    parts = [
        f"{target.text} not met: {reason}",
        f"best model {kept} at "
        f"{evaluator.metric_name} {_fmt(best.metric)} (original {_fmt(evaluator.baseline)}; "
        f"guard {evaluator.guard.threshold:.4g})",
    ]
    names = plan.group_names
    ranked = sorted(outcome.sensitivity.items(), key=lambda item: -item[1])[:3]
    if ranked:
        parts.append(
            "most sensitive: "
            + ", ".join(f"{names.get(g, g)} (loss {loss:.3g} alone)" for g, loss in ranked)
        )
    if not outcome.records:  # nothing was ever tried: the plan had no unit (loop reason)
        return "; ".join(parts)
    hints = []
    if evaluator.calibration is None:
        hints.append(
            "give calibration data (data=..., real inputs) for data-driven scores and recovery"
        )
    hints.append(f"allow a larger max-drop than {evaluator.guard.threshold:.4g}")
    hints.append(
        "protect the sensitive layers (ignore=...) and prune the rest harder, or use more steps"
    )
    parts.append("to go further: " + "; ".join(hints))
    return "; ".join(parts)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _group_widths(analysis, removed: frozenset, protected: set[int]) -> list[GroupWidth]:
    """Channel widths of every group for the plan items ``removed`` (other kinds' items, such
    as removed blocks, are not channels and are left out)."""
    removed = frozenset(item for item in removed if item_kind(item) == CHANNELS)
    widths = []
    for group in analysis.groups:
        lost = group.removed_channels(removed)
        widths.append(
            GroupWidth(
                index=group.index,
                name=group.name,
                sources=list(group.sources),
                channels_before=group.size * group.width,
                channels_after=group.size * group.width - len(lost),
                width=group.width,
                blocked=bool(group.blocked.all()) or group.size < 2,
                protected=group.index in protected,
                removed_channels=lost,
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
    provider,
    seconds,
    notes,
    original,
) -> Report:
    from onnxprune._version import __version__

    if isinstance(model, ModelProto):
        input_model, bytes_before = None, original.ByteSize()
    else:
        input_model, bytes_before = str(model), model_file_bytes(model)
    latency_ms_before = latency["before"]["p50_ms"] if latency else latency_before
    latency_ms_after = latency["after"]["p50_ms"] if latency else best.latency_ms
    metric_after = best.metric
    drop = evaluator.loss(metric_after)
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
        max_drop=evaluator.guard.threshold,
        guard=evaluator.guard.to_dict(),
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
