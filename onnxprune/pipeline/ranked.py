"""The ranked candidate removals of a run, without the guarded loop.

:func:`rank_units` does what :func:`~onnxprune.pipeline.api.optimize` does before its loop —
load, preprocess, analyse, score, set up the plan's kinds and rank their units together
(:func:`~onnxprune.pipeline.plan.merge_units`, the same code path) — and returns the plan and
that ranking. A caller can then build any prefix of it (:meth:`RankedPlan.build`) with no guard:
benchmarks that compare kinds of pruning at fixed cuts, or searches of one's own. All of
``data`` calibrates (there is no evaluation split); with several kinds, and for channels under
the ``sensitivity`` allocation, every unit's score is its measured drop per MAC.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from onnx import ModelProto

from onnxprune import defaults
from onnxprune.allocate.schedule import RemovalUnit
from onnxprune.errors import InputError
from onnxprune.pipeline.plan import CHANNELS, KindSetup, Plan, merge_units
from onnxprune.pipeline.target import Target, parse_target

__all__ = ["RankedPlan", "rank_units"]


@dataclass
class RankedPlan:
    """A run's plan and its candidate removals, cheapest first.

    ``units``: the merged ranking (each kind's own order kept); ``setups``: each kind's setup
    (its units alone, notes, phase times); ``calibration``: the loaded data; ``seconds``: wall
    time of the phases (``preprocess``, ``analyze``, the kinds' own such as ``sensitivity``).
    """

    original: ModelProto
    prepared: ModelProto
    analysis: Any
    plan: Plan
    units: list[RemovalUnit]
    setups: list[KindSetup]
    calibration: Any
    input_shapes: dict[str, list[int]]
    criterion: str
    allocation: str
    recovery: str
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def items(self, count: int) -> frozenset[Hashable]:
        """Plan items of the first ``count`` units of the ranking."""
        if not 0 <= count <= len(self.units):
            raise InputError(f"count must be in 0..{len(self.units)}, got {count}")
        return frozenset(item for unit in self.units[:count] for item in unit.items)

    def build(self, count: int, *, quick: bool = False, plan: Plan | None = None) -> ModelProto:
        """The model with the first ``count`` units removed (``quick``: without repair;
        ``plan``: another plan over the same kinds, e.g. :meth:`with_recovery`)."""
        plan = plan or self.plan
        items = self.items(count)
        return plan.build_quick(items) if quick else plan.build(items)

    def of_kinds(self, *names: str) -> RankedPlan:
        """The same measurements ranked over ``names`` only (their setups' units merged): e.g.
        the channel units alone of a ``channels,blocks`` ranking, scored once for both."""
        unknown = set(names) - {setup.kind.name for setup in self.setups}
        if unknown or not names:
            raise InputError(f"the ranking holds no kind {sorted(unknown) or names}")
        units = merge_units([s.units for s in self.setups if s.kind.name in names])
        return dataclasses.replace(self, units=units)

    def with_recovery(self, recover: Callable[..., ModelProto] | None) -> Plan:
        """The same plan with the channel kind repaired by ``recover`` (a
        :func:`onnxprune.recover.make_recovery` callable, or None for no repair)."""
        from onnxprune.pipeline.channels import channel_kind

        kinds = [
            channel_kind(self.analysis, recover) if kind.name == CHANNELS else kind
            for kind in self.plan.kinds
        ]
        return Plan(self.plan.base, kinds)


def rank_units(
    model: str | os.PathLike | ModelProto,
    data: Any,
    *,
    units: str | list[str] = "channels,blocks",
    target: str | Target = "macs=0.5",
    criterion: str | None = None,
    allocation: str | None = None,
    recover: str | Callable[..., ModelProto] | None = None,
    provider: str = "cpu",
    max_ratio: float = defaults.MAX_RATIO,
    round_to: int | None = None,
    ignore: list[str] | tuple[str, ...] = (),
    ratio_for: dict[str, float] | None = None,
    input_shapes: dict[str, list[int]] | None = None,
    seed: int = 0,
    allow_norm_stats: bool = True,
    allow_output_change: bool = False,
    plan_options: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    attention_unit: str = "head",
) -> RankedPlan:
    """Rank the candidate removals of ``units`` on ``model`` as ``optimize`` would (same options,
    same defaults with data: criterion ``obs``, allocation ``sensitivity``, recovery ``lsq``, ``reconstruct`` from 256 calibration samples),
    measured on ``data`` (calibration data in any form ``optimize`` accepts; required).
    ``target`` only chooses the measure units are priced in (``macs`` for a MAC target).
    Returns a :class:`RankedPlan`; nothing is pruned yet."""
    from onnxprune.analysis import attention_head_dim
    from onnxprune.defaults import PHOTO_CALIBRATION_SAMPLES
    from onnxprune.evaluate.data import load_data, shapes_from_data
    from onnxprune.evaluate.normalization_probe import photo_classifier
    from onnxprune.evaluate.runner import open_runner
    from onnxprune.graph.class_names import declared_class_names
    from onnxprune.graph.input_affine import image_pixel_scales
    from onnxprune.graph.input_ranges import integer_input_ranges
    from onnxprune.io import load_model
    from onnxprune.passes.prepare import prepare
    from onnxprune.pipeline.scheme import (
        ALLOCATIONS,
        _analyse_and_set_up,
        _check_options_early,
        _plan_options,
        _resolve_methods,
        _unit_kinds,
    )

    if data is None:
        raise InputError("rank_units needs calibration data (data=...): scores are measured")
    say = progress or (lambda message: None)
    target = parse_target(target)
    if allocation is not None and allocation not in ALLOCATIONS:
        raise InputError(f"allocation must be one of {', '.join(ALLOCATIONS)}, got {allocation!r}")
    kinds = _unit_kinds(units, target)
    _check_options_early(kinds, recover, data, allocation, plan_options)
    head_dim = attention_head_dim(attention_unit)
    seconds: dict[str, float] = {}
    original = load_model(model)
    runner = open_runner(original, provider)
    try:
        specs = list(runner.input_specs)
        notes = list(runner.notes)
    finally:
        runner.close()
    calibration = load_data(
        data,
        specs,
        input_shapes,
        seed=seed,
        input_ranges=integer_input_ranges(original),
        augment_to=PHOTO_CALIBRATION_SAMPLES,
        pixel_scales=image_pixel_scales(original),
        classify=photo_classifier(original),
        class_names=declared_class_names(original),
    )
    notes += [note for note in calibration.notes if note not in notes]
    input_shapes = shapes_from_data(specs, calibration, input_shapes)
    tick = time.perf_counter()
    say("preprocessing")
    _, prepared, pass_notes = prepare(original, input_shapes)
    notes += pass_notes
    seconds["preprocess"] = time.perf_counter() - tick
    criterion, allocation, recovery_name = _resolve_methods(
        criterion, allocation, recover, True, len(calibration)
    )
    tick = time.perf_counter()
    analysis, plan, ranked, setups = _analyse_and_set_up(
        kinds,
        original=original,
        prepared=prepared,
        input_shapes=input_shapes,
        calibration=calibration,
        target=target,
        progress=say,
        options=_plan_options(
            kinds, provider, max_ratio, round_to, ignore, ratio_for, seed, plan_options
        ),
        methods=(criterion, allocation, recover, recovery_name),
        allow_norm_stats=allow_norm_stats,
        allow_output_change=allow_output_change,
        head_dim=head_dim,
    )
    for setup in setups:
        notes.extend(setup.notes)
        seconds.update(setup.seconds)
    seconds["analyze"] = time.perf_counter() - tick
    return RankedPlan(
        original=original,
        prepared=prepared,
        analysis=analysis,
        plan=plan,
        units=ranked,
        setups=setups,
        calibration=calibration,
        input_shapes=input_shapes,
        criterion=criterion,
        allocation=allocation,
        recovery=recovery_name,
        notes=notes,
        seconds=seconds,
    )
