"""``onnxprune.optimize``: prune toward a target under an accuracy guard; the public API.

Wiring only, over the phases of :mod:`~onnxprune.pipeline.scheme`: open a session (load,
data, the original evaluated, preprocess), run one scheme on it (analyse, score, the removal
order of :mod:`~onnxprune.allocate.schedule`, the guarded loop of
:mod:`~onnxprune.pipeline.loop` with ONNX Runtime evaluation) — or, with ``search``, every
scheme of a space (:mod:`~onnxprune.pipeline.search`) and keep the best —, then measure
before/after and assemble the report.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from onnx import ModelProto

from onnxprune import defaults
from onnxprune.analysis import attention_head_dim
from onnxprune.errors import InputError
from onnxprune.pipeline.outputs import default_output
from onnxprune.pipeline.scheme import (
    OptimizeResult,
    Scheme,
    Settings,
    check_scheme,
    finish,
    open_session,
    run_scheme,
    validate_batch_size,
)
from onnxprune.pipeline.search import (
    check_space,
    default_space,
    expand_space,
    parse_space,
    run_search,
)
from onnxprune.pipeline.target import Target, parse_target

__all__ = ["OptimizeResult", "default_output", "optimize"]


def optimize(
    model: str | os.PathLike | ModelProto,
    target: str | Target = "macs=0.5",
    *,
    data: Any = None,
    eval_data: Any = None,
    metric: str | Callable | None = None,
    max_drop: float | str | None = None,
    steps: int = 4,
    criterion: str | None = None,
    provider: str = "cpu",
    max_ratio: float = defaults.MAX_RATIO,
    round_to: int | None = None,
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
    units: str | list[str] | None = None,
    noise_sigma: float = 0.01,
    allow_norm_stats: bool = True,
    allow_output_change: bool = False,
    plan_options: dict[str, Any] | None = None,
    synthesize: str = "auto",
    attention_unit: str = "head",
    search: str | list[str] | dict[str, Any] | None = None,
    search_minutes: float | None = None,
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
    ``round_to`` (default: the provider's channel block, :mod:`onnxprune.defaults` — 16 on
    AVX-512 CPUs, 8 on AVX2 and GPUs): kept channel counts are multiples of it — ONNX Runtime's
    CPU convolutions leave their fast blocked (NCHWc) path for other counts, which made a pruned
    digits VGG at 70 % of the MACs 1.17× *slower* than the original (docs/benchmarks.md).
    Defaults with calibration data (given, or synthesized by inversion): criterion ``obs``,
    allocation ``sensitivity``, recovery ``lsq`` (``reconstruct`` with at least
    ``defaults.RECONSTRUCT_MIN_SAMPLES`` = 256 calibration samples); with Gaussian inputs: ``l1``, ``global``,
    ``none``. ``allocation`` orders the removal:
    ``global`` (criterion scores ranked across groups), ``uniform`` (all groups at about the same
    share) or ``sensitivity`` (measured per-group drops on the calibration data, cheapest drop per
    MAC first; :mod:`onnxprune.sensitivity`).
    ``units``: the kinds of pruning the plan may use (registered in
    :mod:`onnxprune.pipeline.plan`; default: the target kind's, ``channels`` for MAC, parameter,
    ratio and latency targets); several kinds are ranked together by their units' scores.
    ``max_drop``: the guard's tolerance — a number in the metric's unit, ``"Nx"`` (N times the
    metric's noise floor) or None (1 point for label metrics, 10x the floor for fidelity
    metrics); ``noise_sigma``: the relative input noise the floor is measured with (0: no
    perturbation, only sampling noise). See :mod:`onnxprune.pipeline.evaluation`.
    ``allow_norm_stats`` (default on: the guard checks the result): prune groups whose channels
    feed LayerNorm/GroupNorm statistics; ``allow_output_change``: let a graph output's width
    follow the pruning (off: such groups are blocked). ``attention_unit``: ``head`` (whole
    heads go, default) or ``head_dim`` (every head keeps the same head_dim positions).
    ``plan_options``: kind-specific options passed to the kinds' factories.
    ``synthesize`` (no ``data`` and no ``eval_data`` only): ``auto`` (default) synthesizes
    calibration and guard inputs by inverting a classifier whose inversion fits a budget, so
    the data-driven methods run on them; ``inverted`` forces it, ``gaussian`` keeps random
    inputs and the data-free methods (:func:`onnxprune.pipeline.evaluation.synthesize_inputs`).
    ``search``: run several schemes on the same session and keep the best
    (:mod:`onnxprune.pipeline.search`): ``"auto"`` (a default space per target kind and data)
    or ``{key: [values]}`` / ``["KEY=V1,V2", ...]`` over criterion, allocation, recover, units,
    max_ratio, steps and kind options (the other arguments are every scheme's defaults); the report's
    ``search`` object lists every scheme. ``search_minutes``: no scheme starts after this
    many minutes (the first always runs).
    Returns an :class:`OptimizeResult`; its ``ok`` is False when the guard or the target was
    not met (the model is then the best one found within the guard).
    """
    scheme = Scheme(criterion, allocation, recover, units, max_ratio, steps)
    target = parse_target(target)
    validate_batch_size(batch_size)
    space = parse_space(search)
    if search is None:
        check_scheme(scheme, target, data, plan_options)
    elif space is not None:  # "auto" is checked once the session knows its data
        check_space(expand_space(scheme, space), space, target, data, plan_options)
    if search_minutes is not None and search is None:
        raise InputError("search minutes limit a scheme search: give search=... as well")
    if search_minutes is not None and not search_minutes > 0:
        raise InputError(f"search minutes must be > 0, got {search_minutes}")
    session = open_session(
        model,
        target,
        Settings(
            provider=provider,
            round_to=round_to,
            ignore=tuple(ignore),
            ratio_for=dict(ratio_for or {}),
            seed=seed,
            plan_options=dict(plan_options or {}),
            allow_norm_stats=allow_norm_stats,
            allow_output_change=allow_output_change,
            head_dim=attention_head_dim(attention_unit),
        ),
        data=data,
        eval_data=eval_data,
        metric=metric,
        max_drop=max_drop,
        input_shapes=input_shapes,
        eval_split=eval_split,
        batch_size=batch_size,
        max_eval_samples=max_eval_samples,
        noise_sigma=noise_sigma,
        synthesize=synthesize,
        progress=progress,
    )
    if search is None:
        return finish(session, run_scheme(session, scheme), measure_latency=measure_latency)
    if space is None:
        space = default_space(target, session.has_calibration)
    schemes = expand_space(scheme, space)
    check_space(schemes, space, target, data, plan_options)
    run, table = run_search(session, schemes, space, minutes=search_minutes)
    result = finish(session, run, measure_latency=measure_latency)
    result.report.search = {"space": space, **table}
    result.report.notes.append(table["selection"])
    return result
