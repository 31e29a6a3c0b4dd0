"""``remove_blocks``: find, score and remove the N lowest-scored residual units of a model.

Steps: load → preprocess → :func:`find_units` → score (:mod:`onnxprune.blocks.score`) →
per-unit constants (branch means on the calibration data, or on synthetic inputs) →
:func:`remove_units` → optional least-squares refit of the readers → check (full_check, the
original input/output names and ranks, one ONNX Runtime run).

For the one pruning plan, :func:`block_candidates` gives each unit as a candidate removal
(score, MACs, parameters) and :func:`remove_units` realises any set of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from onnx import ModelProto

from onnxprune.blocks.apply import remove_units
from onnxprune.blocks.find import BlockSearch, find_units
from onnxprune.blocks.score import BLOCK_CRITERIA, BlockScoring, score_units
from onnxprune.errors import InputError, OnnxPruneError


class BlockRewriteError(OnnxPruneError):
    """A block-removed model broke a postcondition (a bug in onnxprune, exit code 1)."""

    exit_code = 1


@dataclass
class BlockCandidate:
    """One unit as a candidate removal: ``items`` to pass to :func:`remove_units`."""

    unit: int
    items: tuple[int, ...]
    score: float
    macs: int
    params: int


@dataclass
class BlockRemoval:
    """The block-removed model and what was decided."""

    model: ModelProto
    search: BlockSearch
    removed: list[int]
    scores: np.ndarray
    criterion: str
    macs_before: int = 0
    macs_after: int = 0
    params_before: int = 0
    params_after: int = 0
    refitted: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "criterion": self.criterion,
            "removed_units": [self.search.units[i].add for i in self.removed],
            "scores": {
                u.add: float(s) for u, s in zip(self.search.units, self.scores, strict=True)
            },
            "macs_before": self.macs_before,
            "macs_after": self.macs_after,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "refitted_layers": self.refitted,
            "notes": list(self.notes),
            "search": self.search.to_dict(),
        }

    def save(self, path: str | os.PathLike, *, force: bool = False, input_path=None) -> Path:
        from onnxprune.io import save_model

        return save_model(self.model, path, input_path=input_path, force=force)


def block_candidates(search: BlockSearch, scores: np.ndarray) -> list[BlockCandidate]:
    """Every unit as a candidate, lowest score first (ties: fewer MACs first)."""
    candidates = [
        BlockCandidate(u.index, (u.index,), float(scores[u.index]), u.macs, u.params)
        for u in search.units
    ]
    return sorted(candidates, key=lambda c: (c.score, c.macs, c.unit))


@dataclass
class BlockKind:
    """Blocks as a kind of the one pruning plan: ranked candidates, and ``apply(model, units)``
    realising a set of units (indices) on ``search.model`` or on that model after channel
    removal (constants re-observed where a removed unit's x changed width)."""

    search: BlockSearch
    scoring: BlockScoring
    candidates: list[BlockCandidate]
    criterion: str

    def apply(self, model: ModelProto, units) -> ModelProto:
        from onnxprune.blocks.observe import constants_for

        chosen = sorted({int(u) for u in units})
        constants = constants_for(
            self.search,
            model,
            chosen,
            self.scoring.constants(),
            self.scoring.data,
            batch_size=self.scoring.batch_size,
            max_samples=self.scoring.max_samples,
        )
        return remove_units(self.search, chosen, constants, model=model)


def block_kind(
    prepared: ModelProto,
    input_shapes: dict[str, list[int]] | None = None,
    calibration: Any = None,
    *,
    criterion: str | None = None,
    max_samples: int | None = 128,
    drop=None,
) -> BlockKind:
    """Search ``prepared`` (a preprocessed model), score its units by ``criterion`` (default
    :func:`default_criterion`) and return the kind; scores are per unit (for a ranking by drop
    per MAC divide ``candidate.score`` by ``candidate.macs``). ``drop``: the drop metric of the
    ``drop`` criterion (:class:`~onnxprune.blocks.score.BlockScoring`)."""
    criterion = criterion or default_criterion(calibration)
    search = find_units(prepared, input_shapes)
    scoring = BlockScoring(search, calibration, max_samples=max_samples, drop=drop)
    scores = score_units(scoring, criterion)
    return BlockKind(search, scoring, block_candidates(search, scores), criterion)


def default_criterion(calibration: Any) -> str:
    """``influence`` with calibration data, the weak data-free ``norm_ratio`` without."""
    return "influence" if calibration is not None else "norm_ratio"


def _io_signature(model: ModelProto) -> list[tuple[str, int, int]]:
    initializers = {init.name for init in model.graph.initializer}
    values = [v for v in model.graph.input if v.name not in initializers] + list(model.graph.output)
    return [
        (v.name, v.type.tensor_type.elem_type, len(v.type.tensor_type.shape.dim)) for v in values
    ]


def verify(
    original: ModelProto, model: ModelProto, search: BlockSearch, calibration: Any = None
) -> None:
    """Same graph input/output names, dtypes and ranks as ``original``; one ORT run on one
    calibration sample (synthetic inputs without data)."""
    from onnxprune.blocks.observe import synthetic_feeds
    from onnxprune.calibrate import iter_feeds
    from onnxprune.calibrate.session import make_session

    if _io_signature(original) != _io_signature(model):
        raise BlockRewriteError("block removal changed the graph inputs or outputs (a bug)")
    session = make_session(model)
    if calibration is not None:
        feeds = next(iter_feeds(calibration, search.model, batch_size=1, max_samples=1))
    else:
        feeds = synthetic_feeds(search, samples=1)
    session.run(None, {v.name: feeds[v.name] for v in session.get_inputs()})


def remove_blocks(
    model: str | os.PathLike | ModelProto,
    count: int | None = None,
    *,
    units: Sequence[int] | None = None,
    calibration: Any = None,
    criterion: str | None = None,
    input_shapes: dict[str, list[int]] | None = None,
    refit: bool = False,
    max_samples: int | None = 128,
) -> BlockRemoval:
    """Remove the ``count`` lowest-scored residual units of ``model`` (or exactly ``units``,
    indices into the search's units). ``calibration``: data in any form
    :func:`onnxprune.calibrate.iter_feeds` accepts; without it scores and constants come from
    synthetic inputs (a note says the result is weak). ``refit`` needs calibration data."""
    from onnxprune.io import load_model
    from onnxprune.passes import preprocess
    from onnxprune.stats import count_macs, count_params

    if (count is None) == (units is None):
        raise InputError("give either a number of blocks to remove or the units to remove")
    if refit and calibration is None:
        raise InputError("refitting after block removal needs calibration data (give --data)")
    criterion = criterion or default_criterion(calibration)
    if criterion not in BLOCK_CRITERIA:
        raise InputError(
            f"unknown block criterion '{criterion}'; known: {', '.join(sorted(BLOCK_CRITERIA))}"
        )
    original = load_model(model)
    prepared = preprocess(original, input_shapes=input_shapes)
    search = find_units(prepared.model, input_shapes)
    notes = list(prepared.notes)
    chosen = _choose(search, count, units)
    scoring = BlockScoring(search, calibration, max_samples=max_samples)
    scores = score_units(scoring, criterion)
    if BLOCK_CRITERIA[criterion].weak or calibration is None:
        notes.append(
            f"block scores ({criterion}) and branch constants come from synthetic inputs: weak"
            if calibration is None
            else f"block criterion '{criterion}' is weak"
        )
    if units is None:
        chosen = [c.unit for c in block_candidates(search, scores)[: int(count or 0)]]
    pruned = remove_units(search, chosen, scoring.constants())
    refitted = 0
    if refit and chosen:
        from onnxprune.blocks.refit import refit_readers

        pruned, refitted = refit_readers(search, chosen, pruned, calibration)
        from onnxprune.rewrite import check_model

        check_model(pruned)
    verify(original, pruned, search, calibration)
    result = BlockRemoval(pruned, search, sorted(chosen), scores, criterion, refitted=refitted)
    result.notes = notes
    result.macs_before = count_macs(original, input_shapes).total
    result.macs_after = count_macs(pruned, input_shapes).total
    result.params_before = count_params(original)[0]
    result.params_after = count_params(pruned)[0]
    return result


def _choose(search: BlockSearch, count: int | None, units: Sequence[int] | None) -> list[int]:
    available = len(search.units)
    if units is not None:
        bad = [u for u in units if not 0 <= int(u) < available]
        if bad:
            raise InputError(f"unknown block unit(s) {bad}: the model has {available} units")
        return sorted({int(u) for u in units})
    assert count is not None
    if count < 0:
        raise InputError(f"--blocks must be >= 0, got {count}")
    if count > available:
        raise InputError(
            f"--blocks {count} exceeds the {available} removable unit(s) of the model "
            "(see `onnxprune inspect --blocks`)"
        )
    return []


def search_model(model: str | os.PathLike | ModelProto, input_shapes=None) -> BlockSearch:
    """Load, preprocess and search ``model`` for residual units (``inspect --blocks``)."""
    from onnxprune.io import load_model
    from onnxprune.passes import preprocess

    prepared = preprocess(load_model(model), input_shapes=input_shapes)
    return find_units(prepared.model, input_shapes)
