"""Drop metrics of the sensitivity analysis, registered by name.

A drop metric compares the outputs of a pruned model with the original model's outputs on the
same calibration samples: ``metric(reference, outputs) -> float`` where both are lists of arrays
(one per graph output, samples on the first axis). Larger means more damage; identical outputs
give 0. Class scores are read along axis 1 (the last axis for rank-2 outputs, the channel axis
of NC... tensors such as segmentation maps).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from onnxprune.errors import InputError
from onnxprune.stats.probabilities import log_probability_pair

DropMetric = Callable[[Sequence[np.ndarray], Sequence[np.ndarray]], float]
DROP_METRICS: dict[str, DropMetric] = {}
#: names of the drop metrics that are smooth in the outputs (quadratic in small changes), so
#: that a drop over a small probe is a gain; the others (top-1, task metrics) step.
SMOOTH_DROP_METRICS: set[str] = set()


def register_drop_metric(name: str, *, smooth: bool = False) -> Callable[[DropMetric], DropMetric]:
    """Make ``fn(reference, outputs) -> float`` usable by name (API and CLI ``--metric``);
    ``smooth``: the drop is quadratic in small output changes (see ``SMOOTH_DROP_METRICS``)."""

    def decorate(fn: DropMetric) -> DropMetric:
        DROP_METRICS[name] = fn
        if smooth:
            SMOOTH_DROP_METRICS.add(name)
        else:
            SMOOTH_DROP_METRICS.discard(name)
        return fn

    return decorate


def _class_axis(array: np.ndarray) -> int:
    return 1 if array.ndim >= 2 else 0


def _float_pairs(reference, outputs):
    if len(reference) != len(outputs):
        raise InputError(f"expected {len(reference)} outputs, got {len(outputs)}")
    for ref, out in zip(reference, outputs, strict=True):
        ref, out = np.asarray(ref), np.asarray(out)
        if ref.shape != out.shape:
            raise InputError(f"output shape {out.shape} differs from the original {ref.shape}")
        if np.issubdtype(ref.dtype, np.floating):
            yield ref, out


@register_drop_metric("kl", smooth=True)
def kl_divergence(reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
    """Mean KL(p_ref ‖ p) = Σ_k p_ref,k (log p_ref,k − log p_k), p = softmax along the class
    axis — or the values themselves when the reference already is a distribution there (a
    model exported with its softmax: :func:`~onnxprune.stats.probabilities.log_probability_pair`) —
    averaged over samples (and spatial positions), then over float outputs; in nats."""
    values = []
    for ref, out in _float_pairs(reference, outputs):
        axis = _class_axis(ref)
        log_p, log_q = log_probability_pair(ref, out, axis)
        values.append(float((np.exp(log_p) * (log_p - log_q)).sum(axis=axis).mean()))
    return float(np.mean(values)) if values else 0.0


@register_drop_metric("kl_last_axis", smooth=True)
def kl_last_axis(reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
    """Token logits [N, T, C]: mean KL(p_ref ‖ p) with the softmax along the last axis,
    averaged over samples and positions, then over float outputs; in nats."""
    values = []
    for ref, out in _float_pairs(reference, outputs):
        log_p, log_q = log_probability_pair(ref, out, -1)
        values.append(float((np.exp(log_p) * (log_p - log_q)).sum(axis=-1).mean()))
    return float(np.mean(values)) if values else 0.0


@register_drop_metric("top1")
def top1_disagreement(reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
    """Drop of top-1 agreement in points: 100 × (1 − mean[argmax p_ref = argmax p]) along the
    class axis, averaged over float outputs."""
    values = []
    for ref, out in _float_pairs(reference, outputs):
        axis = _class_axis(ref)
        agree = np.argmax(ref, axis=axis) == np.argmax(out, axis=axis)
        values.append(100.0 * (1.0 - float(agree.mean())))
    return float(np.mean(values)) if values else 0.0


@register_drop_metric("rel_mse", smooth=True)
def relative_squared_error(reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
    """Σ‖y − y_ref‖² / Σ‖y_ref‖² per float output (0 when both are zero), averaged over
    outputs: for regression, detection or embedding outputs."""
    values = []
    for ref, out in _float_pairs(reference, outputs):
        ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
        energy = float((ref64**2).sum())
        error = float(((out64 - ref64) ** 2).sum())
        values.append(error / energy if energy > 0 else (0.0 if error == 0 else float("inf")))
    return float(np.mean(values)) if values else 0.0


@register_drop_metric("std_mse", smooth=True)
def standardized_squared_error(
    reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]
) -> float:
    """Each channel's squared error in units of its own spread, averaged over channels:

        drop = mean_o mean_c Σ(y_c − y_ref,c)² / Σ(y_ref,c − ȳ_ref,c)²

    with c the channels of axis 1 of float output o (a rank-1 output is one channel), the sums
    over samples and every other axis and ȳ_ref,c the channel's mean. A raw head that holds
    quantities of different scales side by side — a YOLO output [N, 4 + C, A], box
    coordinates in pixels beside class scores in [0, 1] — weighs each channel alike, where
    ``rel_mse`` sees only the largest. For a sigmoid score near 0 the error relative to its
    spread is about the change of its logit, so the channels of classes that never fire stay on
    the scale of the others. A channel constant in the reference is measured against the mean
    spread of the output's channels (and counts 0 while it stays constant). Smooth and
    quadratic in small changes, so it serves linearized gains where a task metric, a step
    function of the outputs, cannot."""
    values = []
    for ref, out in _float_pairs(reference, outputs):
        ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
        axis = 1 if ref64.ndim >= 2 else None
        keep = tuple(i for i in range(ref64.ndim) if i != axis)
        error = ((out64 - ref64) ** 2).sum(axis=keep)
        spread = ((ref64 - ref64.mean(axis=keep, keepdims=True)) ** 2).sum(axis=keep)
        error, spread = np.atleast_1d(error), np.atleast_1d(spread)
        floor = float(spread.mean()) if spread.size else 0.0
        spread = np.where(spread > 1e-12 * max(floor, 1e-300), spread, floor)
        if floor <= 0:
            values.append(0.0 if float(error.sum()) == 0 else float("inf"))
            continue
        values.append(float((error / spread).mean()))
    return float(np.mean(values)) if values else 0.0


def resolve_drop_metric(metric: str | DropMetric) -> tuple[str, DropMetric]:
    """(name, function) of a registered name or a callable; unknown names are an InputError."""
    if callable(metric):
        return getattr(metric, "__name__", "custom"), metric
    if metric not in DROP_METRICS:
        known = ", ".join(sorted(DROP_METRICS))
        raise InputError(f"unknown sensitivity metric '{metric}'; known: {known}")
    return metric, DROP_METRICS[metric]


def resolve_smooth_drop_metric(name: str) -> tuple[str, DropMetric]:
    """(name, function) of a registered drop metric that is smooth in the outputs (the measure
    of linearized gains: a step function reads 0 under a small probe); else an InputError."""
    name, function = resolve_drop_metric(name)
    if name not in SMOOTH_DROP_METRICS:
        smooth = ", ".join(sorted(SMOOTH_DROP_METRICS))
        raise InputError(
            f"gain metric '{name}' is not smooth in the outputs (a 1 % probe would read 0); "
            f"use one of: {smooth}"
        )
    return name, function
