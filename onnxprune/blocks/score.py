"""Scores of residual units, registered by name; lower = remove first.

A criterion is ``fn(scoring: BlockScoring) -> np.ndarray`` (one score per unit of
``scoring.search``), registered with :func:`register_block_criterion`, which also says whether
it needs calibration data and whether it is weak (a data-free guess).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxprune.blocks.apply import remove_units
from onnxprune.blocks.find import BlockSearch
from onnxprune.blocks.observe import (
    UnitObservation,
    channel_constant,
    observe_units,
    synthetic_feeds,
)
from onnxprune.calibrate import iter_feeds
from onnxprune.calibrate.session import make_session
from onnxprune.errors import InputError
from onnxprune.stats.probabilities import log_probability_pair


@dataclass
class BlockScoring:
    """What criteria read: the search, calibration data (None = data-free), the drop metric of
    ``drop`` (``fn(reference, outputs) -> float``; None = :func:`kl_drop`) and the cached
    observations and per-unit constants (computed on first use)."""

    search: BlockSearch
    calibration: Any = None
    max_samples: int | None = 128
    batch_size: int = 16
    drop: Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], float] | None = None
    _observations: dict[int, UnitObservation] | None = field(default=None, repr=False)

    @property
    def data(self) -> Any:
        """Calibration data, or standard-normal synthetic inputs when none was given."""
        if self.calibration is not None:
            return self.calibration
        return synthetic_feeds(self.search, samples=min(self.max_samples or 8, 8))

    def observations(self) -> dict[int, UnitObservation]:
        if self._observations is None:
            self._observations = observe_units(
                self.search,
                range(len(self.search.units)),
                self.data,
                batch_size=self.batch_size,
                max_samples=self.max_samples,
            )
        return self._observations

    def constants(self) -> dict[int, np.ndarray]:
        """Per-unit constant c: the branch's mean output per channel on :attr:`data`."""
        return {i: channel_constant(o.mean_branch) for i, o in self.observations().items()}


BlockCriterion = Callable[[BlockScoring], np.ndarray]


@dataclass(frozen=True)
class CriterionInfo:
    """A registered criterion: the function, whether it needs data, whether it is weak."""

    name: str
    fn: BlockCriterion
    needs_data: bool
    weak: bool


BLOCK_CRITERIA: dict[str, CriterionInfo] = {}


def register_block_criterion(
    name: str, *, needs_data: bool, weak: bool = False
) -> Callable[[BlockCriterion], BlockCriterion]:
    """Register ``fn(scoring) -> scores`` under ``name``."""

    def decorate(fn: BlockCriterion) -> BlockCriterion:
        BLOCK_CRITERIA[name] = CriterionInfo(name, fn, needs_data, weak)
        return fn

    return decorate


@register_block_criterion("influence", needs_data=True)
def block_influence(scoring: BlockScoring) -> np.ndarray:
    """Block influence: mean over calibration samples of 1 − cos(x, x + f(x)) (tensors
    flattened per sample). A block that barely turns its input scores near 0."""
    observations = scoring.observations()
    return np.array([observations[u.index].influence for u in scoring.search.units])


@register_block_criterion("norm_ratio", needs_data=False, weak=True)
def norm_ratio(scoring: BlockScoring) -> np.ndarray:
    """Data-free fallback: mean ‖f(x)‖ / ‖x‖ per sample on the data given, or on standard-normal
    synthetic inputs without data. Weak: synthetic inputs do not look like real ones and the
    ratio ignores what later layers do with the branch."""
    observations = scoring.observations()
    return np.array([observations[u.index].ratio for u in scoring.search.units])


def kl_drop(reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
    """Mean over outputs of the mean KL(softmax(y_ref) ‖ softmax(y)) along axis 1 (the last
    axis of rank-2 outputs; the values themselves when y_ref already is a distribution there:
    :func:`~onnxprune.stats.probabilities.log_probability_pair`); outputs of rank < 2 use
    Σ‖y − y_ref‖² / Σ‖y_ref‖²."""
    drops = []
    for ref, out in zip(reference, outputs, strict=True):
        if ref.ndim < 2 or not np.issubdtype(ref.dtype, np.floating):
            denominator = float(np.sum(np.square(ref.astype(np.float64)))) or 1.0
            drops.append(float(np.sum(np.square(out - ref.astype(np.float64)))) / denominator)
            continue
        log_p, log_q = log_probability_pair(ref, out, 1)
        kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=1)
        drops.append(float(np.mean(kl)))
    return float(np.mean(drops)) if drops else 0.0


def _run_all(model, data, search: BlockSearch, max_samples, batch_size) -> list[np.ndarray]:
    session = make_session(model)
    names = [value.name for value in session.get_inputs()]
    parts: list[list[np.ndarray]] = []
    for batch in iter_feeds(data, search.model, batch_size=batch_size, max_samples=max_samples):
        parts.append(session.run(None, {name: batch[name] for name in names}))
    return [np.concatenate(values) for values in zip(*parts, strict=True)]


@register_block_criterion("drop", needs_data=True)
def end_to_end_drop(scoring: BlockScoring) -> np.ndarray:
    """End-to-end drop of removing each unit alone (branch replaced by its mean constant):
    ``scoring.drop`` (default :func:`kl_drop`; ``optimize`` passes the drop metric of its
    sensitivity table, so blocks and channels ranked together share a unit) between the
    unpruned and the unit-removed model's outputs on the calibration samples. One model run
    per unit."""
    search, data = scoring.search, scoring.data
    measure = scoring.drop or kl_drop
    reference = _run_all(search.model, data, search, scoring.max_samples, scoring.batch_size)
    constants = scoring.constants()
    scores = []
    for unit in search.units:
        model = remove_units(search, [unit.index], constants, check=False)
        outputs = _run_all(model, data, search, scoring.max_samples, scoring.batch_size)
        scores.append(measure(reference, outputs))
    return np.array(scores)


def score_units(scoring: BlockScoring, criterion: str) -> np.ndarray:
    """Scores of every unit by ``criterion`` (a name in :data:`BLOCK_CRITERIA`)."""
    info = BLOCK_CRITERIA.get(criterion)
    if info is None:
        raise InputError(
            f"unknown block criterion '{criterion}'; known: {', '.join(sorted(BLOCK_CRITERIA))}"
        )
    if info.needs_data and scoring.calibration is None:
        raise InputError(f"block criterion '{criterion}' needs calibration data (give --data)")
    if not scoring.search.units:
        return np.zeros(0)
    return np.asarray(info.fn(scoring), dtype=np.float64)
