"""The blocks kind of the pruning plan: residual units ``y = x + f(x)`` whose branch f is
replaced by its mean output (:mod:`onnxprune.blocks`).

Items are ``("blocks", i)`` with ``i`` an index into the unit search of the analysed model;
each unit is its own group (units are independent). Blocks are built after channels (order
10): :meth:`onnxprune.blocks.api.BlockKind.apply` re-observes the constants of units whose x
lost channels.

Ranking. Alone, units go lowest criterion score first. Ranked with other kinds
(``optimize(units=["channels", "blocks"])``), scores must share a unit: the block criterion is
then ``drop`` (the run's sensitivity drop metric, :mod:`onnxprune.pipeline.drop_metric`, between
the unpruned model and the model with the unit removed alone) and a unit's score is its
drop per MAC, the unit of the channel kind's sensitivity allocation — so a block is taken
where it costs less accuracy per MAC saved than the next channel step. The MAC estimates of a
block and of channels inside its branch overlap; the loop's correction steps close the gap on
counted MACs.
"""

from __future__ import annotations

from typing import Any

from onnx import ModelProto

from onnxprune.allocate.schedule import RemovalUnit
from onnxprune.errors import InputError
from onnxprune.pipeline.plan import KindSetup, PlanContext, PlanKind, register_kind
from onnxprune.sensitivity.metrics import resolve_drop_metric

BLOCKS = "blocks"


@register_kind(BLOCKS, options=("block_criterion", "sensitivity_metric", "distill_loss"))
def block_setup(context: PlanContext) -> KindSetup:
    """Units of the analysed model, scored (options ``block_criterion``; ``combined``: scores
    as drop per MAC, see module docstring)."""
    from onnxprune.blocks.api import block_kind

    combined = bool(context.options.get("combined"))
    criterion = context.options.get("block_criterion")
    if combined:
        if context.calibration is None:
            raise InputError(
                "ranking blocks against other kinds needs calibration data (data=...): their "
                "scores are measured drops"
            )
        criterion = criterion or "drop"
    kind = block_kind(
        context.prepared,
        context.input_shapes,
        context.calibration,
        criterion=criterion,
        drop=resolve_drop_metric(context.options.get("sensitivity_metric", "kl"))[1],
    )
    search = kind.search
    units = []
    for candidate in kind.candidates:
        key = (BLOCKS, candidate.unit)
        score = candidate.score / max(candidate.macs, 1) if combined else candidate.score
        units.append(
            RemovalUnit(
                key, (key,), score, float(candidate.macs), float(candidate.params), kind=BLOCKS
            )
        )
    units.sort(key=lambda unit: unit.score)
    macs = {(BLOCKS, c.unit): float(c.macs) for c in kind.candidates}

    def apply(model: ModelProto, items: frozenset) -> ModelProto:
        return kind.apply(model, [index for _, index in items])

    def describe(items: frozenset) -> dict[str, Any]:
        removed = sorted(index for _, index in items)
        return {
            "criterion": kind.criterion,
            "units": len(search.units),
            "removed": [search.units[i].add for i in removed],
        }

    def estimate_macs(items: frozenset) -> float:
        return sum(macs.get(item, 0.0) for item in items)

    notes = (
        []
        if context.calibration is not None
        else [f"blocks scored data-free ({kind.criterion}): a weak criterion, give data=..."]
    )
    return KindSetup(
        PlanKind(
            BLOCKS,
            apply,
            order=10,
            group_names={(BLOCKS, u.index): f"block {u.add}" for u in search.units},
            describe=describe,
            estimate_macs=estimate_macs,
        ),
        units,
        notes=notes,
    )
