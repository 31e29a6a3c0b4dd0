"""Whole-network sequential reconstruction of a pruned model against the unpruned one.

Every refittable layer of the pruned model (:mod:`~onnxprune.recover.layers`: Conv of any
``group``, Gemm, MatMul with constant weights), not only the consumers of removed channels, is
refitted so that its output on the pruned model's *own* inputs matches the unpruned model's
output at the same point. With X_P the layer's im2col rows in the pruned model (computed by the
already refitted upstream layers), Y the target rows and θ₀ = [W_Pᵀ; b_P] the current weights,

    θ = argmin ‖Y − [X_P, 1] θ‖² + λ ‖W − W_P‖²          (per group; :mod:`.grouped`)

* Target (plain): Y = the original tensor of the layer's output (same name in the unpruned
  model; the rewrite keeps names), restricted to the kept output channels.
* Target (block output, ``block_output=True``): when the layer's only reader is an ``Add`` whose
  other operand R is computed, in the pruned model, from layers refitted before this one, the
  layer is fitted to the original Add output minus the pruned model's R: Y = A_orig − R_pruned.
  The Add then reproduces the original residual stream as well as a linear layer can, which
  corrects the errors that the skip path carries where they enter.
* Through an activation (``activation_fit=True``): when the layer's only reader is a
  registered monotone activation (Relu, Clip, ...), each output channel then gets a scale and
  shift fitted where the activation is not flat at the target, kept only where the error after
  the activation falls (:mod:`~onnxprune.recover.activation_fit`; on at most
  ``ACTIVATION_ROWS`` of the level's sampled rows).
* Order: a layer's level is the number of refittable layers on the longest path before it;
  levels are refitted in order, one pass over the calibration data per level through the
  pruned model's nodes between the previous level's frontier and this level's inputs
  (:mod:`~onnxprune.calibrate.frontier`; from the graph inputs when the frontier is over
  ``frontier_mb``). The targets come from one pass of the unpruned model, at output
  positions sampled per sample and per layer (``positions``, capped at ``rows_per_column`` rows
  per unknown), stored as float32.
* Folded batch: a layer whose rows hold the batch and another axis folded together ([T·B, C]
  or [B·T, C]: the out-projection Gemm of ``nn.MultiheadAttention`` in a TorchScript export)
  is unfolded (:class:`Fold`) when one run of the unpruned model on the first calibration
  sample alone shows which rows are that sample's; otherwise it is left as it is.
* Guard: an output whose calibration error would grow keeps its current weights
  (:func:`~onnxprune.recover.grouped.keep_better`); layers whose channel map or shapes cannot
  be told, or wider than ``max_columns`` columns per group, are left as they are and named in
  the progress messages; so are layers with fewer than ``min_rows_per_column`` calibration
  rows per unknown (a classifier sees one row per image: with fewer images than inputs its
  refit matches the calibration images and generalizes worse).

Cost: one pass of the unpruned model (all targets exposed, small batches) and, in all, about
one pass of the pruned model while the frontier fits ``frontier_mb`` (else a prefix pass per
level); memory: the frontier, the sampled targets and one (d+1)² float64 Gram per group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import ModelProto

from onnxprune.analysis import ChannelAnalysis
from onnxprune.analysis.graph_view import GraphView
from onnxprune.calibrate import iter_feeds, sample_count
from onnxprune.calibrate.frontier import FrontierRunner
from onnxprune.calibrate.im2col import sample_positions
from onnxprune.calibrate.padding import real_positions
from onnxprune.calibrate.session import ExposedRunner
from onnxprune.errors import InputError
from onnxprune.graph.mask_input import mask_input
from onnxprune.recover.activation_fit import Monotone, fit_scale_shift, monotone_reader
from onnxprune.recover.edit import ModelEdits, RecoveryError
from onnxprune.recover.grouped import (
    GroupedNormal,
    correct_statistics,
    cross_validated_ridge,
    keep_better,
    merged,
    solve_grouped,
)
from onnxprune.recover.layers import WeightLayer, output_channels, weight_layers
from onnxprune.recover.registry import RecoverySettings

ORIGINAL_BATCH = 8  # the unpruned pass exposes every target: keep its batches small
ACTIVATION_ROWS = 8192  # rows kept per layer for the scale/shift fit through its activation


@dataclass
class LayerFit:
    """How one pruned layer is refitted (see module docstring)."""

    fit: WeightLayer
    kept_out: np.ndarray  # original output channels kept, in pruned order
    target: str  # tensor of the unpruned model matched
    other: str | None  # pruned-model tensor subtracted from the target (block output)
    level: int
    columns: int  # unknowns per group, without the intercept
    outputs: int  # outputs per group
    activation: Monotone | None = None  # the only reader, for ``activation_fit``


def _position_cap(columns: int, settings: RecoverySettings, samples: int | None) -> int | None:
    positions, per_column = settings.positions, settings.rows_per_column
    if per_column is None or not samples:
        return positions
    cap = max(1, -(-per_column * (columns + 1) // samples))
    return cap if positions is None else min(positions, cap)


def _depths(view: GraphView, fitted: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """(tensor depth, node level): refittable layers on the longest path before each."""
    depth: dict[str, int] = {}
    level_of: dict[str, int] = {}
    for node in view.nodes:
        level = max((depth.get(n, 0) for n in {*node.inputs, *node.subgraph_inputs}), default=0)
        level_of[node.name] = level
        if node.name in fitted:
            level += 1
        for name in node.outputs:
            depth[name] = level
    return depth, level_of


def _block_operand(view: GraphView, fit: WeightLayer, depth, level: int, original: GraphView):
    """(Add output, other operand) when the block-output target applies, else None: the
    layer's only reader is an Add of two equally shaped tensors (in the unpruned model), the
    other one not constant and computed from layers of lower levels only."""
    readers = view.consumers.get(fit.output, [])
    if len(readers) != 1 or fit.output in view.graph_outputs:
        return None
    add = readers[0]
    if add.op_type != "Add" or len(add.inputs) != 2 or add.inputs[0] == add.inputs[1]:
        return None
    other = add.inputs[1 - add.inputs.index(fit.output)]
    if view.is_constant(other) or depth.get(other, 0) > level:
        return None
    shapes = [original.shapes.get(name) for name in (fit.output, other, add.outputs[0])]
    if any(shape is None for shape in shapes) or not shapes[0] == shapes[1] == shapes[2]:
        return None
    return add.outputs[0], other


def plan_fits(
    analysis: ChannelAnalysis,
    removed,
    pruned: ModelProto,
    settings: RecoverySettings,
    say: Callable[[str], None],
) -> list[LayerFit]:
    """The layers of ``pruned`` to refit, with their targets and levels."""
    keep = analysis.keep_fn(removed)
    original_view = GraphView(analysis.model)
    originals = {layer.node: layer for layer in weight_layers(analysis.model)}
    view = GraphView(pruned)
    layers = [layer for layer in weight_layers(pruned) if layer.node in originals]
    depth, level_of = _depths(view, {layer.node for layer in layers})
    plans = []
    for fit in layers:
        original = originals[fit.node]
        out_axis = 0 if fit.layer.is_conv else 1 - fit.layer.in_axis
        count = view.constant_shape(fit.layer.weight)[out_axis]
        total = original_view.constant_shape(original.layer.weight)[out_axis]
        kept = output_channels(analysis, keep, original, total, count)
        matrix_columns = int(np.prod(view.constant_shape(fit.layer.weight))) // count
        if fit.layer.op_type != "Conv":
            matrix_columns = view.constant_shape(fit.layer.weight)[fit.layer.in_axis]
        if kept is None or original.output != fit.output or count % fit.groups:
            say(f"reconstruction: '{fit.node}' left as it is (output channels not mapped)")
            continue
        if matrix_columns > settings.max_columns:
            say(f"reconstruction: '{fit.node}' left as it is ({matrix_columns} columns)")
            continue
        level = level_of[fit.node]
        block = (
            _block_operand(view, fit, depth, level, original_view)
            if settings.block_output
            else None
        )
        target, other = block if block is not None else (fit.output, None)
        activation = (
            monotone_reader(view, fit.output) if settings.activation_fit and other is None else None
        )
        plans.append(
            LayerFit(
                fit, kept, target, other, level, matrix_columns, count // fit.groups, activation
            )
        )
    return plans


def _at_positions(tensor: np.ndarray, axis: int, chosen: np.ndarray, channels=None):
    """(N, P, C) values of ``tensor`` at flat positions ``chosen`` (N, P), channels on ``axis``."""
    moved = np.moveaxis(tensor, axis, -1)
    flat = moved.reshape(moved.shape[0], -1, moved.shape[-1])
    picked = np.take_along_axis(flat, chosen[:, :, None], axis=1)
    return picked if channels is None else picked[:, :, channels]


@dataclass(frozen=True)
class Fold:
    """How a layer's rows fold the batch with one other axis of ``rows_per_sample`` rows:
    ``batch_major`` rows b·T + t ([B, T, C] flattened), else t·B + b ([T, B, C] flattened).
    The same fold holds for the layer's input, its target and a block operand (a Gemm or
    MatMul maps row r of its input to row r of its output)."""

    batch_major: bool
    rows_per_sample: int

    def unfold(self, tensor: np.ndarray) -> np.ndarray:
        """``tensor`` (B·T, ...) as (B, T, ...): the batch on axis 0, the folded axis on 1."""
        rows, rest = tensor.shape[0], tensor.shape[1:]
        if rows % self.rows_per_sample:
            raise RecoveryError(
                f"{rows} rows do not split into samples of {self.rows_per_sample} rows"
            )
        size = rows // self.rows_per_sample
        if self.batch_major:
            return tensor.reshape(size, self.rows_per_sample, *rest)
        return np.moveaxis(tensor.reshape(self.rows_per_sample, size, *rest), 1, 0)


def find_fold(batch_tensor: np.ndarray, single: np.ndarray, size: int) -> Fold | None:
    """The :class:`Fold` under which ``single`` (the tensor computed for the batch's first
    sample alone) is that sample's rows of ``batch_tensor`` (computed for all ``size``
    samples), or None when no fold or both fit (rows that do not tell the samples apart)."""
    rows = batch_tensor.shape[0]
    if size < 2 or rows % size or single.shape != (rows // size, *batch_tensor.shape[1:]):
        return None
    per_sample = rows // size
    scale = max(float(np.abs(single).max()), 1e-12)

    def close(candidate: np.ndarray) -> bool:
        return bool(np.abs(candidate.astype(np.float64) - single).max() <= 1e-4 * scale)

    batch_major = close(batch_tensor[:per_sample])
    sample_major = close(batch_tensor[0::size])
    if batch_major == sample_major:
        return None
    return Fold(batch_major, per_sample)


@dataclass
class _Targets:
    """Sampled target rows of every plan: chosen positions (N, P) and values (N, P, m·G), the
    batch moved to axis 0; ``batch_axis[i]`` is the batch axis of plan i's target and input
    (1 for a sequence-first [T, B, C] MatMul; 0 after unfolding a folded one), None when it
    has none (its lists are empty); ``folds[i]``: plan i's :class:`Fold`, or None."""

    chosen: list[np.ndarray]
    values: list[np.ndarray]
    batch_axis: list[int | None]
    folds: list[Fold | None]


def _batch_axis(shape: tuple[int, ...], size: int, channel_axis: int) -> int | None:
    """Axis 0 when it has the batch's ``size``, else the one other axis (not the channels)
    that has it, else None ([T·B, C]: the batch is folded into the rows)."""
    if shape[0] == size:
        return 0
    channel_axis %= len(shape)
    axes = [a for a, dim in enumerate(shape) if dim == size and a != channel_axis]
    return axes[0] if len(axes) == 1 else None


def collect_targets(
    original: ModelProto,
    plans: list[LayerFit],
    calibration: Any,
    settings: RecoverySettings,
    samples: int | None,
) -> _Targets:
    """One pass of the unpruned model: each plan's target at its sampled output positions."""
    rng = np.random.default_rng(settings.seed)
    names = list(dict.fromkeys(plan.target for plan in plans))
    types = {plan.target: plan.fit.layer.elem_type for plan in plans}
    runner = ExposedRunner(original, names, types)
    chosen: list[list[np.ndarray]] = [[] for _ in plans]
    values: list[list[np.ndarray]] = [[] for _ in plans]
    caps = [_position_cap(plan.columns, settings, samples) for plan in plans]
    feeds = iter_feeds(
        calibration,
        original,
        batch_size=min(settings.batch_size, ORIGINAL_BATCH),
        max_samples=settings.max_samples,
    )
    mask_name = mask_input(original)  # padding rows are left out (calibrate/padding)
    batch_axis: list[int | None] = [None] * len(plans)
    folds: list[Fold | None] = [None] * len(plans)
    usable = [True] * len(plans)
    seen = [False] * len(plans)
    for batch in feeds:
        tensors = runner(batch)
        single: list = []  # the first sample's tensors, run once when a plan needs them
        mask = batch.get(mask_name) if mask_name else None
        size = len(next(iter(batch.values())))
        for index, plan in enumerate(plans):
            if not usable[index]:
                continue
            tensor = tensors[plan.target]
            channel_axis = plan.fit.output_axis
            if not seen[index]:
                seen[index] = True
                batch_axis[index] = _batch_axis(tensor.shape, size, channel_axis)
                if batch_axis[index] is None:
                    folds[index] = _probe_fold(runner, batch, single, plan.target, tensor, size)
                    batch_axis[index] = None if folds[index] is None else 0
            fold, axis = folds[index], batch_axis[index]
            if fold is not None and tensor.shape[0] != size * fold.rows_per_sample:
                usable[index] = False  # the fold guessed on the first batch failed
                continue
            if fold is None and (axis is None or tensor.shape[axis] != size):
                usable[index] = False  # no batch axis of its own, or a guess failed
                continue
            tensor, channel_axis = _batch_first(tensor, axis, fold, channel_axis)
            count = int(np.prod(np.moveaxis(tensor, channel_axis, -1).shape[1:-1]))
            valid = real_positions(mask, count)
            picked = sample_positions(tensor.shape[0], count, caps[index], rng, valid)
            chosen[index].append(np.array(picked))
            part = _at_positions(tensor, channel_axis, picked, plan.kept_out)
            values[index].append(part.astype(np.float32))
    return _Targets(
        [
            np.concatenate(c) if ok else np.zeros((0, 0), np.int64)
            for c, ok in zip(chosen, usable, strict=True)
        ],
        [
            np.concatenate(v) if ok else np.zeros((0, 0, 0), np.float32)
            for v, ok in zip(values, usable, strict=True)
        ],
        [axis if ok else None for axis, ok in zip(batch_axis, usable, strict=True)],
        [fold if ok else None for fold, ok in zip(folds, usable, strict=True)],
    )


def _batch_first(
    tensor: np.ndarray, axis: int, fold: Fold | None, channel_axis: int
) -> tuple[np.ndarray, int]:
    """``tensor`` with its batch on axis 0 (unfolded by ``fold``, else moved from ``axis``),
    and where its channel axis is then."""
    if fold is None:
        return np.moveaxis(tensor, axis, 0), channel_axis
    return fold.unfold(tensor), channel_axis % tensor.ndim + 1


def _probe_fold(
    runner, batch: dict, single: list, target: str, tensor: np.ndarray, size: int
) -> Fold | None:
    """:func:`find_fold` from one run of the unpruned model on the batch's first sample
    (``single`` caches that run's tensors, or None when it failed, for the batch's plans)."""
    if size < 2 or tensor.ndim < 2 or tensor.shape[0] % size:
        return None
    if not single:
        try:
            single.append(runner({name: value[:1] for name, value in batch.items()}))
        except InputError:  # the input model cannot run one sample (a fixed batch): no fold
            single.append(None)
    if single[0] is None:
        return None
    return find_fold(tensor, np.asarray(single[0][target]), size)


def _current(edits: ModelEdits, plan: LayerFit) -> tuple[np.ndarray, np.ndarray] | None:
    """θ₀ (G, d+1, m) of the layer as it is in the pruned model, or None (bias not constant)."""
    layer, node = plan.fit.layer, edits.node(plan.fit.node)
    matrix = layer.weight_matrix(edits.value(node.input[1]))
    bias = np.zeros(matrix.shape[0])
    if layer.op_type in ("Conv", "Gemm") and len(node.input) > 2 and node.input[2]:
        value = edits.value(node.input[2])
        if value is None or value.size not in (1, matrix.shape[0]):
            return None
        beta = 1.0
        if layer.op_type == "Gemm":
            beta = next((a.f for a in node.attribute if a.name == "beta"), 1.0)
        bias = beta * np.broadcast_to(value.astype(np.float64).reshape(-1), matrix.shape[:1])
    groups, m = plan.fit.groups, plan.outputs
    weights = matrix.reshape(groups, m, -1).transpose(0, 2, 1)
    prior = np.concatenate([weights, bias.reshape(groups, 1, m)], axis=1)
    return prior, bias


def _write(edits: ModelEdits, plan: LayerFit, theta: np.ndarray, bias: np.ndarray) -> None:
    layer, node = plan.fit.layer, edits.node(plan.fit.node)
    current = edits.value(node.input[1])
    matrix = theta[:, :-1, :].transpose(0, 2, 1).reshape(-1, plan.columns)
    weight = layer.weight_from_matrix(matrix, current.shape)
    edits.set_input(plan.fit.node, 1, weight.astype(current.dtype), "w")
    shift = theta[:, -1, :].reshape(-1) - bias
    if np.any(shift != 0):
        edits.shift_bias(plan.fit.node, shift, current.dtype)


def _refit_level(
    model: ModelProto,
    level: list[tuple[int, LayerFit]],
    targets: _Targets,
    calibration: Any,
    settings: RecoverySettings,
    runner: FrontierRunner,
) -> None:
    names = [plan.fit.layer.input for _, plan in level]
    names += [plan.other for _, plan in level if plan.other]
    names = list(dict.fromkeys(names))
    folds = [
        tuple(GroupedNormal.empty(plan.fit.groups, plan.columns, plan.outputs) for _ in range(2))
        for _, plan in level
    ]
    kept_rows: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {
        index: ([], []) for index, plan in level if plan.activation is not None
    }
    strides = {
        index: max(1, -(-int(np.prod(targets.values[index].shape[:2])) // ACTIVATION_ROWS))
        for index in kept_rows
    }
    offset = 0
    feeds = iter_feeds(
        calibration, model, batch_size=settings.batch_size, max_samples=settings.max_samples
    )
    for values in runner.run(model, names, feeds):
        size = 0
        for (index, plan), (even, odd) in zip(level, folds, strict=True):
            fold = targets.folds[index]
            axis = targets.batch_axis[index] or 0
            x, _ = _batch_first(values[plan.fit.layer.input], axis, fold, 0)
            size = x.shape[0]
            chosen = targets.chosen[index][offset : offset + size]
            y = targets.values[index][offset : offset + size].astype(np.float64)
            if plan.other:
                other_value, channel_axis = _batch_first(
                    values[plan.other], axis, fold, plan.fit.output_axis
                )
                other = _at_positions(other_value, channel_axis, chosen)
                if other.shape != y.shape:
                    raise RecoveryError(
                        f"'{plan.other}' has shape {values[plan.other].shape}; expected the "
                        f"shape of the output of '{plan.fit.node}'"
                    )
                y = y - other
            rows = np.concatenate(list(plan.fit.layer.rows(x, chosen)))
            y = y.reshape(rows.shape[0], -1)
            sample = offset + np.arange(rows.shape[0]) // chosen.shape[1]
            for fold, parity in ((even, 0), (odd, 1)):
                part = sample % 2 == parity
                if part.any():
                    fold.add(rows[part], y[part])
            if index in kept_rows:
                first = offset * chosen.shape[1]
                every = (first + np.arange(rows.shape[0])) % strides[index] == 0
                kept_rows[index][0].append(rows[every])
                kept_rows[index][1].append(y[every])
        offset += size
    edits = ModelEdits(model)
    for (index, plan), pair in zip(level, folds, strict=True):
        current = _current(edits, plan)
        normal = merged(*pair)
        if current is None or normal.rows < settings.min_rows_per_column * (plan.columns + 1):
            continue
        prior, bias = current
        ridge = settings.ridge
        if settings.ridge_grid:
            ridge = cross_validated_ridge(pair, prior, settings.ridge_grid)
            if ridge is None:
                continue
        theta = solve_grouped(normal, ridge, prior)
        theta = keep_better(normal, theta, prior)
        if settings.stats_correction:
            theta = correct_statistics(normal, theta)
        if index in kept_rows and kept_rows[index][0]:
            rows, y = (np.concatenate(part) for part in kept_rows[index])
            theta = _through_activation(plan, theta, rows, y, settings.ridge)
        _write(edits, plan, theta, bias)
    edits.drop_unused()


def _through_activation(
    plan: LayerFit, theta: np.ndarray, rows: np.ndarray, y: np.ndarray, ridge: float
) -> np.ndarray:
    """θ (G, d+1, m) with each output's scale and shift refitted through the layer's
    activation on the kept ``rows`` (R, G·d) and targets ``y`` (R, G·m)
    (:func:`~onnxprune.recover.activation_fit.fit_scale_shift`), folded into θ."""
    groups, width, outputs = theta.shape
    count = rows.shape[0]
    x = np.ones((groups, count, width))
    x[:, :, :-1] = rows.reshape(count, groups, width - 1).transpose(1, 0, 2)
    predicted = np.matmul(x, theta).transpose(1, 0, 2).reshape(count, groups * outputs)
    assert plan.activation is not None
    scale, shift = fit_scale_shift(predicted, y.astype(np.float64), plan.activation, ridge)
    folded = theta * scale.reshape(groups, 1, outputs)
    folded[:, -1, :] += shift.reshape(groups, outputs)
    return folded


def reconstruct(
    analysis: ChannelAnalysis,
    removed,
    pruned: ModelProto,
    calibration: Any,
    settings: RecoverySettings,
) -> ModelProto:
    """A copy of ``pruned`` with every refittable layer reconstructed (module docstring)."""
    say = settings.progress or (lambda message: None)
    model = ModelProto()
    model.CopyFrom(pruned)
    plans = plan_fits(analysis, removed, model, settings, say)
    if not plans:
        return model
    samples = sample_count(calibration, settings.max_samples)
    targets = collect_targets(analysis.model, plans, calibration, settings, samples)
    by_level: dict[int, list[tuple[int, LayerFit]]] = {}
    for index, plan in enumerate(plans):
        if targets.batch_axis[index] is None:
            say(f"reconstruction: '{plan.fit.node}' left as it is (no batch axis in its output)")
            continue
        by_level.setdefault(plan.level, []).append((index, plan))
    if not by_level:
        return model
    plans = [plan for _, level in by_level.items() for _, plan in level]
    blocks = sum(1 for plan in plans if plan.other)
    say(f"reconstruction: {len(plans)} layers ({blocks} to block outputs), {len(by_level)} levels")
    runner = FrontierRunner(samples, settings.frontier_mb * (1 << 20))
    for step, level in enumerate(sorted(by_level)):
        _refit_level(model, by_level[level], targets, calibration, settings, runner)
        say(f"reconstruction: level {step + 1}/{len(by_level)} ({len(by_level[level])} layers)")
    return model
