"""Per-weight gradient scores for unstructured (mask) selection.

``weight_scores(model, calibration, criterion)`` returns, for every float weight of a Conv,
ConvTranspose, Gemm or MatMul (constant operand 1), an array of its shape (higher = more
important), from the gradient g_b = ∂L_b/∂W of each calibration mini-batch b (one ONNX
Runtime session of the gradient model, :mod:`onnxprune.autodiff`):

* ``gradient``: mean_b |g_b| (gradient magnitude);
* ``weight_taylor``: mean_b |w · g_b| (first-order Taylor estimate of removing w alone);
* ``weight_fisher``: mean_b (w · g_b)² / 2 (a mini-batch empirical Fisher estimate; per-sample
  gradients would need one backward run per sample).

Per mini-batch rather than over the whole set: at a trained model the mean gradient is near
zero, while its mini-batch fluctuations measure how much the loss leans on the weight. The
loss and targets follow the channel criteria (:mod:`onnxprune.importance.gradient`):
cross-entropy to the labels when the data has them, else to the unpruned model's own
predictions when every output is [N, classes], else random output probes (one draw per batch). Registered by
name in ``WEIGHT_CRITERIA`` (``register_weight_criterion``) for the sparsity kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import ModelProto, numpy_helper

from onnxprune.autodiff import (
    GradientSession,
    build_gradient_model,
    gradient_name,
    reachable,
)
from onnxprune.autodiff.precision import float32_feeds
from onnxprune.autodiff.prepare import gradient_ready
from onnxprune.calibrate.labelled import batch_starts, fixed_batch, load_samples
from onnxprune.calibrate.session import make_session
from onnxprune.errors import InputError
from onnxprune.graph.mask_input import mask_input
from onnxprune.graph.tensor_outputs import (
    differentiable_outputs,
    output_rank,
    tensor_output_model,
)
from onnxprune.importance.gradient import (
    PROBE_SEED,
    batch_targets,
    resolve_targets,
    target_loss,
)
from onnxprune.passes import preprocess

WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
SHAPE_PASSES = ("constants_to_initializers", "fold_constants", "reshape_copy_dims")
WeightCriterion = Callable[[np.ndarray, list[np.ndarray]], np.ndarray]
WEIGHT_CRITERIA: dict[str, WeightCriterion] = {}


def register_weight_criterion(name: str) -> Callable[[WeightCriterion], WeightCriterion]:
    """Make ``fn(weight, batch_gradients) -> scores`` usable by name."""

    def decorate(fn: WeightCriterion) -> WeightCriterion:
        WEIGHT_CRITERIA[name] = fn
        return fn

    return decorate


@register_weight_criterion("gradient")
def gradient_magnitude(weight: np.ndarray, grads: list[np.ndarray]) -> np.ndarray:
    """mean_b |g_b|."""
    return np.mean([np.abs(g) for g in grads], axis=0)


@register_weight_criterion("weight_taylor")
def weight_taylor(weight: np.ndarray, grads: list[np.ndarray]) -> np.ndarray:
    """mean_b |w · g_b|."""
    return np.mean([np.abs(weight * g) for g in grads], axis=0)


@register_weight_criterion("weight_fisher")
def weight_fisher(weight: np.ndarray, grads: list[np.ndarray]) -> np.ndarray:
    """mean_b (w · g_b)² / 2."""
    return np.mean([np.square(weight * g) for g in grads], axis=0) / 2


def layer_weights(model: ModelProto) -> list[str]:
    """Float initializers read as operand 1 of a Conv/ConvTranspose/Gemm/MatMul."""
    floats = {init.name for init in model.graph.initializer if init.data_type == 1}
    names = []
    for node in model.graph.node:
        if node.op_type in WEIGHT_OPS and len(node.input) > 1 and node.input[1] in floats:
            names.append(node.input[1])
    return list(dict.fromkeys(names))


def weight_scores(
    model: ModelProto,
    calibration: Any,
    criterion: str = "weight_taylor",
    *,
    targets: str = "auto",
    smoothing: float = 0.0,
    max_samples: int | None = 256,
    batch_size: int = 32,
) -> dict[str, np.ndarray]:
    """Scores per weight element of every layer weight (see the module docstring)."""
    if criterion not in WEIGHT_CRITERIA:
        known = ", ".join(sorted(WEIGHT_CRITERIA))
        raise InputError(f"unknown weight criterion '{criterion}'; known: {known}")
    if calibration is None:
        raise InputError(f"weight criterion '{criterion}' needs calibration data (give --data)")
    samples = load_samples(calibration, model, max_samples=max_samples)
    # Shape computations folded (weights untouched: they keep their names and values), so
    # every rank is known to the gradient rules: nn.MultiheadAttention's TorchScript export
    # builds a Reshape target from Shape, Slice and Mod of constants.
    folded = preprocess(model, passes=SHAPE_PASSES).model
    model = gradient_ready(tensor_output_model(folded), samples.feeds)
    outputs = differentiable_outputs(model, f"weight criterion '{criterion}'")
    mode = resolve_targets(targets, samples, [output_rank(model, name) for name in outputs])
    loss = target_loss(model, outputs, mode)
    weights = reachable(model, loss, layer_weights(model))
    session = GradientSession(build_gradient_model(model, loss, weights))
    forward = make_session(model)
    mask_name = mask_input(model)
    rng = np.random.default_rng(PROBE_SEED)
    grads: dict[str, list[np.ndarray]] = {name: [] for name in weights}
    for start, stop in batch_starts(len(samples), batch_size, fixed_batch(model)):
        index = np.arange(start, stop)
        feeds = float32_feeds(samples.take(index))
        predicted = dict(zip(outputs, forward.run(outputs, feeds), strict=True))
        feeds.update(
            batch_targets(
                mode,
                predicted,
                labels=None if samples.labels is None else samples.labels[index],
                smoothing=smoothing,
                mask=feeds.get(mask_name) if mask_name else None,
                rng=rng,
            )
        )
        result = session.run(feeds)
        for name in weights:
            grads[name].append(result[gradient_name(name)].astype(np.float64))
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    score = WEIGHT_CRITERIA[criterion]
    return {name: score(values[name].astype(np.float64), grads[name]) for name in weights}
