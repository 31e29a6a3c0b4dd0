"""Synthetic inputs by *model inversion*: calibration data for a classifier when none is given.

Random Gaussian inputs are far from anything a classifier was trained on, so statistics and
refits computed on them describe the wrong distribution. Inversion asks the model itself what
its classes look like: starting from noise, each sample ``x_i`` is moved by gradient steps to
minimise

    J(x_i) = CE(f(x_i), y_i) + λ_tv · mean_p ‖∇_s x_i(p)‖²

where ``y_i`` cycles over the classes (``i mod C``), ``CE`` is the cross-entropy of the first
output (class scores, rank 2) to the one-hot class, and the second term is a smoothness prior:
the mean over positions ``p`` of the squared differences between neighbours along every spatial
axis ``s``. Each step jitters ``x`` by a random circular shift (at most ``jitter`` of each
spatial size) before the forward pass and shifts the gradient back, so that no single pixel
pattern is learned, and follows Adam; after each step every sample is projected back to zero
mean and unit variance per channel (the statistics of normalised inputs, the same prior as the
Gaussian synthetic data). The gradient of the cross-entropy comes from an ONNX backward graph
(:mod:`onnxprune.autodiff`) run by ONNX Runtime; no training framework is involved.

This is the classic "dreaming" family of data-free methods (model inversion with an image
prior) without batch-norm statistics: exported models usually have their BatchNorms folded,
so those statistics are gone.

Eligible models: exactly one floating input with at least one spatial axis (non-batch axes of
size > 4 are spatial, the others channels) and a first output of rank 2 with at least two
classes. :func:`inversion_plan` says why another model is not eligible. The work is bounded
twice unless the caller forces the inversion: :func:`estimated_cost` (forward MACs × 3 for the
backward pass × samples × steps) must fit ``budget_macs`` before anything is built, and the
time of the first steps, extrapolated to the whole run, must fit ``budget_seconds``
(:class:`InversionTooSlow` otherwise; MACs alone do not predict the time of graphs of many small
ops: a 16 M-MAC Paddle classifier took 0.8 s per step where the 29 M-MAC digits VGG took 0.1 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from onnx import ModelProto

from onnxprune.errors import InputError

#: MAC budget (forward MACs × 3 × samples × steps) of an inversion run automatically.
DEFAULT_BUDGET_MACS = 1.0e13
#: Wall-time budget (seconds, extrapolated from the first steps) of an automatic inversion.
DEFAULT_BUDGET_SECONDS = 120.0


class InversionTooSlow(Exception):
    """The extrapolated time of an inversion exceeds its budget (``estimate`` seconds)."""

    def __init__(self, estimate: float, budget: float) -> None:
        super().__init__(f"estimated {estimate:.0f} s, over the budget of {budget:.0f} s")
        self.estimate = estimate


@dataclass(frozen=True)
class InversionSettings:
    """How inputs are synthesized (see the module docstring for the objective).

    Attributes:
        steps: Adam steps per sample.
        lr: Adam learning rate (inputs are unit-variance, so this is a step in σ units).
        tv_weight: λ_tv, weight of the smoothness prior (per-position mean).
        jitter: largest circular shift per step, as a fraction of each spatial size.
        batch_size: samples per gradient run (a model with a fixed batch uses its own).
        budget_macs: largest estimated cost run without being forced.
        budget_seconds: largest extrapolated wall time (None: no limit).
        project: standardize every sample after each step (off only to measure its effect:
            the digits MobileNetV2 calibrated on unprojected inputs, std 0.24, kept 94.89 %
            real accuracy instead of 97.78 %; docs/benchmarks.md).
    """

    steps: int = 150
    lr: float = 0.05
    tv_weight: float = 50.0
    jitter: float = 1.0 / 16.0
    batch_size: int = 64
    budget_macs: float = DEFAULT_BUDGET_MACS
    budget_seconds: float | None = DEFAULT_BUDGET_SECONDS
    project: bool = True


@dataclass(frozen=True)
class InversionPlan:
    """An eligible model's input and output: ``input`` (name), ``sample_shape`` (without the
    batch axis), ``spatial`` (axes of the sample that are spatial), ``output`` (class scores)
    and ``classes``."""

    input: str
    sample_shape: tuple[int, ...]
    spatial: tuple[int, ...]
    output: str
    classes: int


def inversion_plan(
    model: ModelProto,
    input_specs: Sequence[tuple[str, np.dtype, list]],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> InversionPlan | str:
    """The :class:`InversionPlan` of ``model``, or a one-line reason why it cannot be inverted.

    ``input_specs``: (name, dtype, dims) of the model's inputs as a runner reports them;
    ``input_shapes`` fills dynamic non-batch dimensions (as for the Gaussian synthetic data)."""
    from onnxprune.evaluate.data import expected_shape

    if len(input_specs) != 1:
        return f"the model has {len(input_specs)} inputs (inversion needs exactly one)"
    spec = input_specs[0]
    name, dtype, _ = spec
    if not np.issubdtype(np.dtype(dtype), np.floating):
        return f"input '{name}' is not floating point ({np.dtype(dtype)})"
    dims = expected_shape(spec, input_shapes)
    sample = tuple(dims[1:]) if dims else ()
    if not sample or any(d is None for d in sample):
        return f"input '{name}' has no fixed sample shape (give --input-shape)"
    spatial = tuple(axis for axis, size in enumerate(sample) if size > 4)
    if not spatial:
        return f"input '{name}' {list(sample)} has no spatial axis (a non-batch axis over 4)"
    output = model.graph.output[0]
    out_dims = output.type.tensor_type.shape.dim
    if len(out_dims) != 2 or not out_dims[1].HasField("dim_value") or out_dims[1].dim_value < 2:
        return f"the first output '{output.name}' is not class scores of shape [N, classes]"
    return InversionPlan(name, sample, spatial, output.name, int(out_dims[1].dim_value))


def estimated_cost(forward_macs: float, samples: int, settings: InversionSettings) -> float:
    """Forward MACs per sample × 3 (forward + backward to the input) × samples × steps."""
    return float(forward_macs) * 3.0 * samples * settings.steps


def smoothness_prior(x: np.ndarray, spatial: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample mean over positions of squared neighbour differences along the ``spatial``
    axes of ``x`` (axes of one sample: axis a of a sample is axis a + 1 of ``x``), and its
    gradient with respect to ``x``."""
    value = np.zeros(len(x), dtype=np.float64)
    grad = np.zeros_like(x)
    positions = float(np.prod(x.shape[1:]))
    for axis in spatial:
        diff = np.diff(x, axis=axis + 1)
        value += (diff.astype(np.float64) ** 2).sum(axis=tuple(range(1, x.ndim))) / positions
        lead = [slice(None)] * x.ndim
        tail = [slice(None)] * x.ndim
        lead[axis + 1] = slice(1, None)
        tail[axis + 1] = slice(None, -1)
        grad[tuple(lead)] += 2.0 * diff / positions
        grad[tuple(tail)] -= 2.0 * diff / positions
    return value, grad


def standardize(x: np.ndarray, spatial: Sequence[int]) -> np.ndarray:
    """Each sample and channel shifted and scaled to zero mean and unit variance over the
    spatial axes (a constant channel becomes zeros)."""
    axes = tuple(axis + 1 for axis in spatial)
    centred = x - x.mean(axis=axes, keepdims=True)
    scale = centred.std(axis=axes, keepdims=True)
    return centred / np.where(scale > 1e-12, scale, 1.0)


def invert(
    model: ModelProto,
    plan: InversionPlan,
    count: int,
    *,
    seed: int = 0,
    settings: InversionSettings | None = None,
    fixed_batch: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` synthesized inputs (float32, shape (count, *plan.sample_shape)) and the class
    each was pulled toward (int64). Runs in batches of ``fixed_batch`` (a model whose batch is
    fixed) or ``settings.batch_size``, the last one padded by repeating its samples.
    Deterministic for a seed and a machine."""
    from onnxprune.autodiff import (
        GradientSession,
        build_gradient_model,
        cross_entropy,
        gradient_name,
        one_hot,
        target_name,
    )
    from onnxprune.autodiff.prepare import gradient_ready
    from onnxprune.graph.shapes import fix_input_shapes
    from onnxprune.passes.pipeline import preprocess

    settings = settings or InversionSettings()
    if count < 1:
        raise InputError(f"inversion needs at least one sample, got {count}")
    batch = fixed_batch or max(1, min(settings.batch_size, count))
    # Concrete shapes (batch included) so that every tensor of the backward graph has a
    # known rank, whatever the exporter left dynamic; the last batch is padded.
    fixed = fix_input_shapes(gradient_ready(model), {plan.input: [batch, *plan.sample_shape]})
    # Exporters' shape subgraphs (Shape -> Gather -> Concat -> Reshape) fold to constants at
    # these shapes, so shape inference sees through them (the model's function is unchanged).
    fixed = _outputs_inferred(preprocess(fixed).model)
    loss = cross_entropy(fixed, outputs=[plan.output])
    session = GradientSession(build_gradient_model(fixed, loss, [plan.input]))
    rng = np.random.default_rng(seed)
    classes = np.arange(count) % plan.classes
    inputs = standardize(
        rng.standard_normal((count, *plan.sample_shape)).astype(np.float32), plan.spatial
    )
    grad_key = gradient_name(plan.input)
    target_key = target_name(plan.output)
    done = 0
    batches = -(-count // batch)
    clock = time.perf_counter()
    for start in range(0, count, batch):
        index = np.arange(start, min(start + batch, count))
        padded = _pad(index, batch)
        x = inputs[padded].astype(np.float32)
        targets = one_hot(classes[padded], plan.classes)
        first = np.zeros_like(x)
        second = np.zeros_like(x)
        for step in range(1, settings.steps + 1):
            shifts = _shifts(rng, plan, settings.jitter)
            axes = tuple(axis + 1 for axis in plan.spatial)
            moved = np.roll(x, shifts, axis=axes) if any(shifts) else x
            result = session.run({plan.input: moved, target_key: targets}, [grad_key])
            grad = result[grad_key] * batch  # the loss is a batch mean: per-sample gradients
            if any(shifts):
                grad = np.roll(grad, tuple(-s for s in shifts), axis=axes)
            grad = grad + settings.tv_weight * smoothness_prior(x, plan.spatial)[1]
            first = 0.9 * first + 0.1 * grad
            second = 0.999 * second + 0.001 * grad * grad
            update = (first / (1 - 0.9**step)) / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
            x = x - settings.lr * update
            if settings.project:
                x = standardize(x, plan.spatial)
            x = x.astype(np.float32)
            if start == 0 and step == 1:
                clock = time.perf_counter()  # the first run includes session warm-up
            elif start == 0 and step == min(3, settings.steps) and settings.budget_seconds:
                per_step = (time.perf_counter() - clock) / (step - 1)
                estimate = per_step * settings.steps * batches
                if estimate > settings.budget_seconds:
                    raise InversionTooSlow(estimate, settings.budget_seconds)
        inputs[index] = x[: len(index)]
        done += len(index)
        if progress is not None:
            progress(done, count)
    return inputs.astype(np.float32), classes.astype(np.int64)


def _outputs_inferred(model: ModelProto) -> ModelProto:
    """``model`` with the graph outputs' declared shapes dropped and shapes re-inferred:
    some exporters declare a dynamic dimension as -1, which shape inference keeps and which
    then hides the rank of everything the loss computes from it."""
    from onnxprune.graph.shapes import infer_shapes

    cleared = ModelProto()
    cleared.CopyFrom(model)
    for output in cleared.graph.output:
        output.type.tensor_type.ClearField("shape")
    return infer_shapes(cleared)


def _pad(index: np.ndarray, batch: int) -> np.ndarray:
    """``index`` repeated cyclically to ``batch`` entries (a model with a fixed batch size)."""
    return np.resize(index, batch)


def _shifts(rng: np.random.Generator, plan: InversionPlan, jitter: float) -> tuple[int, ...]:
    shifts = []
    for axis in plan.spatial:
        limit = int(plan.sample_shape[axis] * jitter)
        shifts.append(int(rng.integers(-limit, limit + 1)) if limit > 0 else 0)
    return tuple(shifts)
