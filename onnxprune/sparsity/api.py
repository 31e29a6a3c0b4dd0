"""``sparsify(model, sparsity=0.5, ...)``: zero weights of Conv/ConvTranspose/Gemm/MatMul.

Steps: load and normalize (Constant weights → initializers) → find the layers
(:mod:`~onnxprune.sparsity.targets`) → per-layer counts of the selection mode
(:mod:`~onnxprune.sparsity.plan`) or N:M → realize them with the criterion:

* ``magnitude`` / ``wanda`` (and plug-ins): the lowest scores of each layer are zeroed
  (Wanda's column norms from one calibration pass over the original model);
* ``obs``: sequential SparseGPT-style reconstruction (:mod:`~onnxprune.sparsity.obs`) level by
  level (:mod:`~onnxprune.sparsity.levels`), each level calibrated on the model whose upstream
  layers are already sparsified and updated. Layers OBS cannot handle (grouped convs,
  ConvTranspose, more than ``max_columns`` columns) fall back to Wanda's mask without update,
  recorded per layer. Memory bound per layer: 3·d² float64 for d ≤ ``max_columns`` columns
  (384 MiB at the default 4096) plus the weight matrix.

Two options refine the data-driven path (``docs/ARCHITECTURE.md``, "Weight sparsity:
allocation and correction"):

* ``allocation`` (uniform mode): how the whole-model budget is split over the layers —
  ``uniform`` (one fraction), ``error`` (per-layer fractions minimizing the summed held-out
  layer output error) or ``output`` (the same errors times each layer's measured gain to the
  model output; the default with data-driven criteria), :mod:`~onnxprune.sparsity.allocation`,
  :mod:`~onnxprune.sparsity.curves`; the whole-model zero count is exact either way;
* ``bias_correction`` (OBS): after each layer is rewritten, its bias is shifted so its mean
  output on the calibration rows equals the dense model's (:mod:`~onnxprune.sparsity.correction`);
* ``nm_coverage`` (N:M with data): the share of all counted weights that must hold the
  pattern; the layers whose pattern costs the most measured output error per weight
  (:func:`~onnxprune.sparsity.curves.nm_costs`) stay dense down to that share;
* ``damp`` (OBS): the ridge λ = damp·mean(diag H) added to every layer's Hessian and used as the
  pull toward the current weights in the upstream target; default
  :data:`~onnxprune.sparsity.obs.DEFAULT_DAMP` = 0.3, chosen by measurement on photos other
  than the calibration ones (``docs/ARCHITECTURE.md``, "Weight sparsity: damping").

Nothing changes shape, so the result needs no dependency analysis; it passes the ONNX checker.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import ModelProto, numpy_helper

from onnxprune.errors import InputError
from onnxprune.evaluate.data import calibration_data
from onnxprune.io import load_model, normalize_model
from onnxprune.io.normalize import lifted_note, weight_inputs
from onnxprune.option_text import parse_glob_values
from onnxprune.passes import preprocess
from onnxprune.passes.expand_runtime_fusions import expanded_model
from onnxprune.passes.lower_attention import attention_lowered
from onnxprune.sensitivity.metrics import resolve_smooth_drop_metric
from onnxprune.sparsity.allocation import Allocation, exempt_by_cost, resolve_allocation
from onnxprune.sparsity.apply import apply_weights
from onnxprune.sparsity.calibration import LayerStats, collect_layer_stats
from onnxprune.sparsity.correction import add_zero_biases
from onnxprune.sparsity.criteria import SparsityCriterion, criterion_scores, resolve_criterion
from onnxprune.sparsity.curves import error_curves, nm_costs
from onnxprune.sparsity.obs import DEFAULT_DAMP
from onnxprune.sparsity.patterns import (
    holds_nm,
    parse_nm,
    threshold_mask,
)
from onnxprune.sparsity.permutation import PermutedModel, check_saliency, permute_for_nm
from onnxprune.sparsity.plan import whole_model_counts
from onnxprune.sparsity.reconstruct import LayerJob, mask_from_scores, reconstruct_sequential
from onnxprune.sparsity.targets import (
    DEFAULT_MIN_SIZE,
    SparseLayer,
    TargetSet,
    find_layers,
    fold_computed_weights,
)

Progress = Callable[[str], None]


@dataclass
class LayerPlan:
    """What happened to one sparsified layer."""

    node: str
    op_type: str
    weight: str
    size: int
    zeros_before: int
    zeros_after: int
    criterion: str
    holds_nm: bool | None = None
    note: str = ""
    first_removed: list[int] = field(default_factory=list)  # flat weight indices, lowest first

    @property
    def sparsity_before(self) -> float:
        return self.zeros_before / self.size if self.size else 0.0

    @property
    def sparsity_after(self) -> float:
        return self.zeros_after / self.size if self.size else 0.0

    def to_dict(self) -> dict:
        return {
            "node": self.node,
            "op_type": self.op_type,
            "weight": self.weight,
            "size": self.size,
            "zeros_before": self.zeros_before,
            "zeros_after": self.zeros_after,
            "sparsity_before": self.sparsity_before,
            "sparsity_after": self.sparsity_after,
            "criterion": self.criterion,
            "holds_nm": self.holds_nm,
            "note": self.note,
            "first_removed": list(self.first_removed),
        }


@dataclass
class SparsifyResult:
    """The sparsified model and its per-layer plan.

    ``total_weights`` counts every Conv/ConvTranspose/Gemm/MatMul weight not ignored;
    ``total_zeros`` the zeros among them after sparsification.
    """

    model: ModelProto
    layers: list[LayerPlan]
    skipped: dict[str, str]
    total_weights: int
    total_zeros: int
    zeros_before: int
    mode: str
    criterion: str
    pattern: str | None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    allocation: str | None = None
    bias_correction: bool = False
    damp: float | None = None  # OBS damping used (None: no reconstruction)
    permutation: PermutedModel | None = None  # the N:M channel reorder, when asked for

    @property
    def sparsity(self) -> float:
        """Zero share over the whole model's weight layers."""
        return self.total_zeros / self.total_weights if self.total_weights else 0.0

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "criterion": self.criterion,
            "pattern": self.pattern,
            "allocation": self.allocation,
            "bias_correction": self.bias_correction,
            "damp": self.damp,
            "total_weights": self.total_weights,
            "zeros_before": self.zeros_before,
            "total_zeros": self.total_zeros,
            "sparsity": self.sparsity,
            "seconds": self.seconds,
            "layers": [layer.to_dict() for layer in self.layers],
            "skipped": dict(self.skipped),
            "notes": list(self.notes),
            "permutation": None if self.permutation is None else self.permutation.to_dict(),
        }


def _check_options(sparsity, pattern, global_, threshold, keep, overrides, max_ratio) -> str:
    if not isinstance(sparsity, (int, float)) or not 0 <= float(sparsity) < 1:
        raise InputError(f"sparsity must be in [0, 1), got {sparsity!r}")
    if not 0 < max_ratio <= 1:
        raise InputError(f"max_ratio must be in (0, 1], got {max_ratio!r}")
    chosen = [
        name
        for name, on in (
            ("pattern", pattern is not None),
            ("global", bool(global_)),
            ("threshold", threshold is not None),
            ("keep", keep is not None),
        )
        if on
    ]
    if len(chosen) > 1:
        raise InputError(f"choose one selection mode, got {' and '.join(chosen)} together")
    if keep is not None and (not isinstance(keep, (int, np.integer)) or keep < 0):
        raise InputError(f"keep must be a non-negative integer, got {keep!r}")
    if threshold is not None and not (isinstance(threshold, (int, float)) and threshold >= 0):
        raise InputError(f"threshold must be a number >= 0, got {threshold!r}")
    for glob, value in overrides.items():
        if not isinstance(value, (int, float)) or not 0 <= float(value) < 1:
            raise InputError(f"sparsity_for {glob!r}: sparsity must be in [0, 1), got {value!r}")
    return chosen[0] if chosen else "uniform"


def parse_overrides(items: Sequence[str] | Mapping[str, float] | None) -> dict[str, float]:
    """``["conv*=0.3", ...]`` or a mapping -> ``{glob: fraction}``."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    return parse_glob_values(items, "--sparsity-for", "S with S in [0, 1)")


def _weights(model: ModelProto, layers: Sequence[SparseLayer]) -> dict[str, np.ndarray]:
    wanted = {layer.weight for layer in layers}
    return {
        init.name: numpy_helper.to_array(init)
        for init in model.graph.initializer
        if init.name in wanted
    }


def _zeros(array: np.ndarray) -> int:
    return int(array.size - np.count_nonzero(array))


def sparsify(
    model: str | os.PathLike | ModelProto,
    sparsity: float = 0.5,
    *,
    pattern: str | None = None,
    criterion: str | Callable | SparsityCriterion = "magnitude",
    global_: bool = False,
    threshold: float | None = None,
    keep: int | None = None,
    data: Any = None,
    ignore: Sequence[str] = (),
    protected: Sequence[str] = (),
    sparsity_for: Mapping[str, float] | Sequence[str] | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    skip_depthwise: bool = True,
    max_ratio: float = 0.95,
    max_samples: int | None = 256,
    positions: int | None = 64,
    batch_size: int = 32,
    block: int = 128,
    damp: float = DEFAULT_DAMP,
    max_columns: int = 4096,
    seed: int = 0,
    correct_upstream: bool = True,
    allocation: str | None = None,
    bias_correction: bool | None = None,
    nm_coverage: float = 1.0,
    permute: bool | None = None,
    permute_saliency: str = "obs",
    gain_metric: str = "rel_mse",
    progress: Progress | None = None,
) -> SparsifyResult:
    """Zero weights of ``model`` (see module docstring); returns the model and its plan.

    Modes (one at a time): uniform ``sparsity`` counted over the whole model (default),
    ``global_`` ranking with a per-layer cap ``max_ratio``, ``threshold`` (score < t; magnitude:
    |w| < t), ``keep`` (top-k kept per layer), ``pattern="N:M"`` (every layer whose reduction axis
    splits into groups of M). ``sparsity_for`` overrides the uniform/global fraction per glob.
    ``data``: calibration data (``.npz`` path, mapping, or dataset) for ``wanda`` and ``obs``.
    ``allocation``: ``uniform``, ``error`` or ``output`` (uniform mode only; None: ``output``
    for data-driven criteria with data, else ``uniform``). ``bias_correction``: reconstructing
    criteria only (None: on for them). ``nm_coverage`` (N:M only, needs ``data``): the share of
    all counted weights that must hold the pattern; below the share every eligible layer
    gives, the layers whose pattern costs the most measured output error per weight stay dense
    until the share is reached (:func:`_keep_costly_dense`). ``permute`` (N:M only): reorder
    the channel groups the N:M layers read first, so that each run of M holds channels that
    complement each other (:mod:`~onnxprune.sparsity.permutation`); the dense outputs are
    unchanged, proven on a batch; the model is preprocessed first (constants folded,
    BatchNorm fused) so the channel analysis sees through exporter shape arithmetic. None (the
    default): on with a pattern. ``permute_saliency`` (with data): ``obs`` or ``diag``, the
    per-weight cost the reorder minimizes. ``gain_metric``: the smooth drop metric that
    measures each layer's gain to the outputs for the ``output`` allocation and the N:M
    coverage (:mod:`~onnxprune.sparsity.curves`): ``rel_mse`` (default) or ``std_mse`` for a
    head whose output channels have different scales (a raw detection head).
    """
    started = time.perf_counter()
    say = progress or (lambda message: None)
    overrides = parse_overrides(sparsity_for)
    mode = _check_options(sparsity, pattern, global_, threshold, keep, overrides, max_ratio)
    nm = parse_nm(pattern) if pattern is not None else None
    spec = resolve_criterion(criterion)
    if spec.needs_data and data is None:
        raise InputError(f"criterion '{spec.name}' needs calibration data (give --data)")
    if min_size < 0:
        raise InputError(f"min_size must be >= 0, got {min_size}")
    if not (isinstance(damp, (int, float)) and np.isfinite(damp) and damp > 0):
        raise InputError(f"damp must be a finite number > 0, got {damp!r}")
    _check_nm_coverage(nm_coverage, nm, data)
    split = _choose_allocation(allocation, mode, spec, data)
    bias_correction = _choose_bias_correction(bias_correction, spec)
    check_saliency(permute_saliency)
    _, gain = resolve_smooth_drop_metric(gain_metric)
    if permute is None:
        permute = nm is not None
    elif permute and nm is None:
        raise InputError("permute reorders channels for an N:M pattern (give pattern='N:M')")
    source = load_model(model)
    data = calibration_data(data, source, seed=seed, batch_size=batch_size)
    normalized = expanded_model(normalize_model(source))  # ONNX Runtime's fused ops: standard
    # ONNX Attention as MatMul/Softmax/MatMul: the statistics passes run the graph, and ONNX
    # Runtime's Attention kernel refuses PyTorch's padding masks
    normalized, lowered_attention = attention_lowered(normalized)
    # weights behind Transpose, Reshape, ... of a constant: fold them into initializers
    normalized, computed = fold_computed_weights(normalized)
    if permute:
        say("preprocessing (constants folded, BatchNorm fused) for the channel analysis")
        normalized = preprocess(normalized).model
    targets = find_layers(
        normalized,
        ignore=tuple(ignore),
        protected=tuple(protected),
        min_size=min_size,
        skip_depthwise=skip_depthwise,
    )
    _check_something_to_sparsify(normalized, targets)
    notes: list[str] = list(getattr(data, "notes", []))  # what loading the data decided
    if lifted := len(weight_inputs(source)):
        notes.append(lifted_note(lifted))
    if lowered_attention:
        notes.append(
            f"{lowered_attention} ONNX Attention node(s) written as MatMul/Softmax/MatMul (the "
            "same function; ONNX Runtime's Attention kernel refuses padding masks)"
        )
    if computed:
        notes.append(
            f"{len(computed)} layer(s) computed their weight from constants in the graph (an "
            f"export without constant folding, e.g. '{computed[0]}'); the constants were folded "
            "into stored weights, which the written model keeps"
        )
    if nm is not None:
        _drop_non_nm(targets, nm)
    permutation = None
    if permute and targets.layers:
        permutation = permute_for_nm(
            normalized, {layer.node for layer in targets.layers}, *nm, data,
            batch_size=batch_size, max_samples=max_samples, positions=positions, seed=seed,
            saliency=permute_saliency, damp=damp, progress=say,
        )  # fmt: skip
        normalized = permutation.model
        notes.append(permutation.summary())
    if nm_coverage < 1.0:
        _keep_costly_dense(
            normalized, targets, data, nm, nm_coverage, notes, say,
            positions=positions, batch_size=batch_size, max_samples=max_samples, seed=seed,
            damp=damp, block=block, max_columns=max_columns, gain_metric=gain,
        )  # fmt: skip
    layers = targets.layers
    weights = _weights(normalized, layers)
    zeros_before = {layer.node: _zeros(weights[layer.weight]) for layer in layers}
    skipped_zeros = _skipped_zeros(normalized, targets)
    needs_scores = mode in ("global", "threshold") or not spec.reconstructs
    stats: dict[str, LayerStats] = {}
    if spec.needs_data and needs_scores and spec.model_fn is None:
        say(f"calibrating {len(layers)} layers on the original model")
        stats = collect_layer_stats(
            normalized, layers, data, positions=positions, batch_size=batch_size,
            max_samples=max_samples, seed=seed, progress=say,
        )  # fmt: skip
    scores = {}
    if needs_scores:
        if spec.model_fn is not None:
            say(f"scoring the weights of {len(layers)} layers by {spec.name} (gradients)")
        scores = criterion_scores(
            spec, normalized, layers, weights, data, stats,
            max_samples=max_samples, batch_size=batch_size,
        )  # fmt: skip
    curves = {}
    if split.needs_curves and mode == "uniform" and layers:
        say(f"measuring error curves of {len(layers)} layers on the original model")
        curves = error_curves(
            normalized, layers, weights, data, spec, positions=positions,
            batch_size=batch_size, max_samples=max_samples, seed=seed, damp=damp, block=block,
            max_columns=max_columns, output_gain=split.output_gain, gain_metric=gain,
            scores=scores if spec.model_fn is not None else None, progress=say,
        )  # fmt: skip
        if split.output_gain:
            notes.append(f"output gains measured by {gain_metric}")
    jobs = _jobs(
        layers, mode, scores, nm, sparsity, targets.total_weights, skipped_zeros,
        overrides, threshold, keep, max_ratio, notes, split, curves,
    )  # fmt: skip
    first: dict[str, list[int]] = {}
    if spec.reconstructs:
        if bias_correction:
            normalized = add_zero_biases(normalized, layers)
        updated, used = reconstruct_sequential(
            normalized, jobs, weights, data, say,
            positions=positions, batch_size=batch_size, max_samples=max_samples,
            block=block, damp=damp, max_columns=max_columns, seed=seed,
            correct_upstream=correct_upstream, bias_correction=bias_correction,
        )  # fmt: skip
    else:
        updated = {}
        used = {}
        for job in jobs:
            mask = job.mask
            if mask is None:
                mask = mask_from_scores(job, scores[job.layer.node])
            updated[job.layer.weight] = _masked(job.layer, weights[job.layer.weight], mask)
            used[job.layer.node] = (spec.name, "")
            first[job.layer.node] = removal_order(job.layer, scores[job.layer.node], mask)
    result_model = apply_weights(normalized, updated) if updated else normalized
    plans = []
    for layer in layers:
        value = updated.get(layer.weight, weights[layer.weight])
        name, note = used.get(layer.node, (spec.name, "unchanged"))
        holds = None
        check = nm or (2, 4)
        if layer.allows_nm(check[1]):
            holds = holds_nm(layer.to_matrix(value)[:, layer.nm_order()], *check)
        plans.append(
            LayerPlan(
                layer.node,
                layer.op_type,
                layer.weight,
                layer.size,
                zeros_before[layer.node],
                _zeros(value),
                name,
                holds,
                note,
                first.get(layer.node, []),
            )
        )
    total_zeros = skipped_zeros + sum(plan.zeros_after for plan in plans)
    return SparsifyResult(
        model=result_model,
        layers=plans,
        skipped=dict(targets.skipped),
        total_weights=targets.total_weights,
        total_zeros=total_zeros,
        zeros_before=skipped_zeros + sum(zeros_before.values()),
        mode=mode,
        criterion=spec.name,
        pattern=pattern,
        allocation=split.name if mode == "uniform" else None,
        bias_correction=bias_correction,
        damp=damp if spec.reconstructs else None,
        seconds=time.perf_counter() - started,
        notes=notes,
        permutation=permutation,
    )


def _check_something_to_sparsify(model: ModelProto, targets) -> None:
    """An InputError when no Conv/ConvTranspose/Gemm/MatMul of the model holds a weight the
    sparsity kind can zero (a quantized model, weights computed at run time): asked for a
    sparsity, the run would otherwise write an unchanged model and report 0 of 0 weights."""
    from onnxprune.stats.macs import OPERANDS

    if targets.total_weights > 0:
        return
    if not targets.skipped:
        quantized = sorted(
            {
                node.op_type
                for node in model.graph.node
                if OPERANDS.get(node.op_type, (node.op_type,))[0] != node.op_type
            }
        )
        hint = (
            f" (quantized layers: {', '.join(quantized)}; sparsify the float model, then "
            "quantize it)"
            if quantized
            else ""
        )
        raise InputError(
            f"nothing to sparsify: the model has no Conv, ConvTranspose, Gemm or MatMul{hint}"
        )
    reasons = Counter(reason.removeprefix("unsupported: ") for reason in targets.skipped.values())
    listed = "; ".join(f"{count} × {reason}" for reason, count in reasons.most_common())
    raise InputError(f"nothing to sparsify: no layer has a float constant weight ({listed})")


def _choose_allocation(
    name: str | None, mode: str, spec: SparsityCriterion, data: Any
) -> Allocation:
    """The allocation asked for, or the default: ``output`` for a ``--sparsity`` budget with a
    data-driven criterion and data (best measured on EfficientNet-Lite2, docs/benchmarks.md,
    section sparsity-v2), else ``uniform``."""
    if name is None:
        measured = mode == "uniform" and spec.needs_data and data is not None
        return resolve_allocation("output" if measured else "uniform")
    chosen = resolve_allocation(str(name))
    if chosen.needs_curves and mode != "uniform":
        raise InputError(
            f"allocation '{chosen.name}' splits a --sparsity budget; it does not apply to the "
            f"{mode} mode (drop --allocation or the {mode} option)"
        )
    if chosen.needs_curves and data is None:
        raise InputError(f"allocation '{chosen.name}' needs calibration data (give --data)")
    return chosen


def _choose_bias_correction(value: bool | None, spec: SparsityCriterion) -> bool:
    if value is None:
        return spec.reconstructs
    if value and not spec.reconstructs:
        raise InputError(
            f"bias correction runs in the sequential reconstruction: use criterion 'obs', "
            f"not '{spec.name}'"
        )
    return bool(value)


def _check_nm_coverage(coverage: float, nm: tuple[int, int] | None, data: Any) -> None:
    if not (isinstance(coverage, (int, float)) and 0 <= coverage <= 1):
        raise InputError(f"nm_coverage must be in [0, 1], got {coverage!r}")
    if coverage < 1 and nm is None:
        raise InputError("nm_coverage applies to an N:M pattern (give pattern='N:M')")
    if coverage < 1 and data is None:
        raise InputError(
            "nm_coverage below 1 keeps the layers with the most measured error dense: give "
            "calibration data"
        )


def _keep_costly_dense(
    model: ModelProto,
    targets: TargetSet,
    data: Any,
    nm: tuple[int, int],
    coverage: float,
    notes: list[str],
    say: Progress,
    **options,
) -> None:
    """Move the layers whose N:M pattern costs the most measured output error per weight
    (:func:`~onnxprune.sparsity.curves.nm_costs`) from ``targets.layers`` to its skipped
    layers, while the layers left hold at least ``coverage`` of all counted weights
    (:func:`~onnxprune.sparsity.allocation.exempt_by_cost`)."""
    layers = targets.layers
    budget = sum(layer.size for layer in layers) - math.ceil(coverage * targets.total_weights)
    if budget <= 0:
        notes.append(
            f"N:M coverage {coverage:.0%}: every eligible layer is needed to reach it, none kept "
            "dense"
        )
        return
    say(f"measuring the N:M cost of {len(layers)} layers")
    costs = nm_costs(model, layers, _weights(model, layers), data, nm, **options)
    chosen = exempt_by_cost(
        [layer.size for layer in layers], [costs.get(layer.node) for layer in layers], budget
    )
    for index in chosen:
        layer = layers[index]
        targets.skipped[layer.node] = (
            f"kept dense for coverage: N:M would cost {costs[layer.node]:.3g} output error"
        )
        targets.skipped_sizes[layer.node] = layer.size
    targets.layers = [layer for i, layer in enumerate(layers) if i not in set(chosen)]
    held = sum(layer.size for layer in targets.layers) / max(targets.total_weights, 1)
    notes.append(
        f"N:M coverage {coverage:.0%}: {len(chosen)} layer(s) kept dense by measured cost per "
        f"weight; N:M layers hold {held:.1%} of the weights"
    )


def _drop_non_nm(targets: TargetSet, nm: tuple[int, int]) -> None:
    kept = []
    for layer in targets.layers:
        if layer.allows_nm(nm[1]):
            kept.append(layer)
        else:
            targets.skipped[layer.node] = (
                f"N:M: reduction axis of {layer.reduction} does not split into groups of {nm[1]}"
            )
            targets.skipped_sizes[layer.node] = layer.size
    targets.layers = kept


def _skipped_zeros(model: ModelProto, targets: TargetSet) -> int:
    """Zeros already present in counted layers that stay dense."""
    skipped = {node for node, reason in targets.skipped.items() if reason != "ignored"}
    if not skipped:
        return 0
    weight_of = {}
    for node in model.graph.node:
        if node.name in skipped and len(node.input) > 1:
            weight_of[node.name] = [name for name in node.input[:2] if name]
    arrays = {init.name: init for init in model.graph.initializer}
    zeros = 0
    seen = set()
    for names in weight_of.values():
        for name in names:
            if name in arrays and name not in seen:
                seen.add(name)
                zeros += _zeros(numpy_helper.to_array(arrays[name]))
    return zeros


def _jobs(
    layers, mode, scores, nm, sparsity, total, skipped_zeros, overrides, threshold, keep,
    max_ratio, notes, allocation=None, curves=None,
) -> list[LayerJob]:  # fmt: skip
    if nm is not None:
        return [LayerJob(layer, nm=nm) for layer in layers]
    if mode == "threshold":
        jobs = []
        for layer in layers:
            mask = threshold_mask(scores[layer.node], threshold)
            jobs.append(LayerJob(layer, count=int(mask.sum()), mask=mask))
        return jobs
    if mode == "keep":
        return [LayerJob(layer, count=max(0, layer.size - int(keep))) for layer in layers]
    ranked = [scores[layer.node] for layer in layers] if mode == "global" else None
    counts, more = whole_model_counts(
        layers, sparsity, total, skipped_zeros,
        overrides=overrides, scores=ranked, max_ratio=max_ratio, allocation=allocation,
        curves=curves,
    )  # fmt: skip
    notes.extend(more)
    return [LayerJob(layer, count=count) for layer, count in zip(layers, counts, strict=True)]


def removal_order(
    layer: SparseLayer, scores: np.ndarray, mask: np.ndarray, limit: int = 8
) -> list[int]:
    """Flat indices into the weight tensor of the first ``limit`` removed weights, in the
    order the criterion removes them (lowest score first)."""
    index = layer.to_matrix(np.arange(layer.size).reshape(layer.shape)).reshape(-1)
    flat_scores = np.where(mask, scores, np.inf).reshape(-1)
    order = np.argsort(flat_scores, kind="stable")[: min(limit, int(mask.sum()))]
    return [int(i) for i in index[order]]


def _masked(layer: SparseLayer, weight: np.ndarray, mask: np.ndarray) -> np.ndarray:
    matrix = layer.to_matrix(weight.copy())
    matrix = np.where(mask, 0, matrix).astype(weight.dtype)
    return layer.from_matrix(matrix)
