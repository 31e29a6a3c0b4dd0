"""Weight criteria for sparsity, registered by name: lower score = zeroed first.

A criterion is ``fn(matrix, stats) -> scores``: ``matrix`` is the layer's (rows, columns) weight
matrix in float64 (see :mod:`onnxprune.sparsity.targets`), ``stats`` its
:class:`~onnxprune.sparsity.calibration.LayerStats` (None without calibration data), ``scores``
has the matrix's shape. Criteria that read ``stats`` are registered with ``needs_data``; those
that also rewrite the kept weights (OBS) with ``reconstructs`` — their scores then only rank
layers against each other (global and threshold modes), the weights themselves are chosen
during the reconstruction sweep (:mod:`onnxprune.sparsity.obs`).

Gradient criteria score every weight of the model at once, from one backward model run by
ONNX Runtime (:mod:`onnxprune.importance.weight_gradient`): they are registered with a
``model_fn(model, data, *, max_samples, batch_size) -> {weight name: scores}`` (scores shaped
like the weight tensor) and read through :func:`criterion_scores`, which turns them into each
layer's matrix layout. ``gradient`` = mean_b |g_b|, ``taylor`` = mean_b |w·g_b|, ``fisher`` =
mean_b (w·g_b)²/2 over calibration mini-batches b (g_b = ∂L_b/∂W; the loss: cross-entropy to
labels, to the model's own predictions, or random output probes, as the channel criteria).
A layer the loss does not reach scores 0 everywhere (its weights change no output).

Plug-ins: :func:`register_sparsity_criterion` in Python, ``package.module:function`` from the CLI
(imported on demand), or an entry point in the group ``onnxprune.sparsity_criteria``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import ModelProto

from onnxprune.errors import InputError, InternalError
from onnxprune.sparsity.calibration import LayerStats
from onnxprune.sparsity.targets import SparseLayer

ScoreFn = Callable[[np.ndarray, LayerStats | None], np.ndarray]
ModelScoreFn = Callable[..., dict[str, np.ndarray]]
ENTRY_POINT_GROUP = "onnxprune.sparsity_criteria"


@dataclass(frozen=True)
class SparsityCriterion:
    """A named criterion and what it needs."""

    name: str
    fn: ScoreFn
    needs_data: bool = False
    reconstructs: bool = False
    model_fn: ModelScoreFn | None = None

    def __call__(self, matrix: np.ndarray, stats: LayerStats | None) -> np.ndarray:
        if self.model_fn is not None:
            raise InternalError(
                f"criterion '{self.name}' scores the whole model: read it through "
                "criterion_scores (a bug in onnxprune)"
            )
        return self.fn(matrix, stats)


CRITERIA: dict[str, SparsityCriterion] = {}


def register_sparsity_criterion(
    name: str, *, needs_data: bool = False, reconstructs: bool = False
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator making ``fn(matrix, stats) -> scores`` usable by name (CLI and API)."""

    def decorate(fn: ScoreFn) -> ScoreFn:
        CRITERIA[name] = SparsityCriterion(name, fn, needs_data, reconstructs)
        return fn

    return decorate


def _row_norms(stats: LayerStats, rows: int) -> np.ndarray:
    """Per-row column norms sqrt(E[x_j²]) (rows, columns): grouped convs read their group's."""
    norms = stats.column_norms()
    if norms.shape[0] == 1:
        return norms
    return np.repeat(norms, rows // norms.shape[0], axis=0)


@register_sparsity_criterion("magnitude")
def magnitude(matrix: np.ndarray, stats: LayerStats | None = None) -> np.ndarray:
    """|w|."""
    return np.abs(matrix)


@register_sparsity_criterion("wanda", needs_data=True)
def wanda(matrix: np.ndarray, stats: LayerStats | None) -> np.ndarray:
    """Wanda: |w_ij| · ‖x_j‖ with ‖x_j‖ = sqrt(E[x_j²]) over the calibration rows of column j
    (im2col columns for convs: one per input channel and kernel offset)."""
    if stats is None:
        raise InputError("criterion 'wanda' needs calibration data (give --data)")
    return np.abs(matrix) * _row_norms(stats, matrix.shape[0])


@register_sparsity_criterion("obs", needs_data=True, reconstructs=True)
def obs(matrix: np.ndarray, stats: LayerStats | None) -> np.ndarray:
    """OBS saliency for ranking layers against each other: w_ij² · H_jj (the error increase of
    removing w_ij alone with a diagonal H = E[x xᵀ]; the reconstruction sweep then uses the
    full H⁻¹). Equals Wanda's score squared."""
    return np.square(wanda(matrix, stats))


def _weight_gradient(name: str) -> ModelScoreFn:
    def model_fn(model, data, *, max_samples=256, batch_size=32) -> dict[str, np.ndarray]:
        from onnxprune.importance.weight_gradient import weight_scores

        return weight_scores(model, data, name, max_samples=max_samples, batch_size=batch_size)

    return model_fn


for _name, _weight_name in (
    ("gradient", "gradient"),
    ("taylor", "weight_taylor"),
    ("fisher", "weight_fisher"),
):
    CRITERIA[_name] = SparsityCriterion(
        _name, magnitude, needs_data=True, model_fn=_weight_gradient(_weight_name)
    )


def criterion_scores(
    spec: SparsityCriterion,
    model: ModelProto,
    layers: Sequence[SparseLayer],
    weights: dict[str, np.ndarray],
    data: Any,
    stats: dict[str, LayerStats],
    *,
    max_samples: int | None = 256,
    batch_size: int = 32,
) -> dict[str, np.ndarray]:
    """Scores of every layer in its (rows, columns) matrix layout, keyed by node: per layer
    from ``stats``, or once for the whole model for a gradient criterion (module docstring)."""
    if spec.model_fn is None:
        return {
            layer.node: np.asarray(
                spec(
                    layer.to_matrix(weights[layer.weight]).astype(np.float64), stats.get(layer.node)
                ),
                dtype=np.float64,
            )
            for layer in layers
        }
    per_weight = spec.model_fn(model, data, max_samples=max_samples, batch_size=batch_size)
    scores = {}
    for layer in layers:
        value = per_weight.get(layer.weight)
        if value is None:
            value = np.zeros(weights[layer.weight].shape)
        scores[layer.node] = layer.to_matrix(np.asarray(value)).astype(np.float64)
    return scores


def resolve_criterion(spec: str | ScoreFn | SparsityCriterion) -> SparsityCriterion:
    """A registered name, an entry point name, ``module:function`` or a callable."""
    if isinstance(spec, SparsityCriterion):
        return spec
    if callable(spec):
        name = getattr(spec, "__name__", type(spec).__name__)
        return SparsityCriterion(str(name), spec, needs_data=False)
    name = str(spec).strip()
    if name in CRITERIA:
        return CRITERIA[name]
    if ":" in name:
        return SparsityCriterion(name, _import(name))
    _load_entry_point(name)
    if name in CRITERIA:
        return CRITERIA[name]
    raise InputError(
        f"unknown sparsity criterion '{name}' (known: {', '.join(sorted(CRITERIA))}; "
        "or package.module:function)"
    )


def _import(spec: str) -> ScoreFn:
    module_name, _, attr = spec.rpartition(":")
    try:
        value = importlib.import_module(module_name)
        for part in attr.split("."):
            value = getattr(value, part)
    except Exception as error:  # the user's plug-in
        raise InputError(
            f"sparsity criterion '{spec}': cannot load: {type(error).__name__}: {error}"
        ) from None
    if not callable(value):
        raise InputError(f"sparsity criterion '{spec}' is not callable")
    return value


def _load_entry_point(name: str) -> None:
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            try:
                fn = entry.load()
            except Exception as error:  # the user's plug-in
                raise InputError(
                    f"sparsity criterion '{name}': cannot load plug-in {entry.value}: {error}"
                ) from None
            CRITERIA[name] = SparsityCriterion(name, fn, getattr(fn, "needs_data", False))
            return
