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


def register_drop_metric(name: str) -> Callable[[DropMetric], DropMetric]:
    """Make ``fn(reference, outputs) -> float`` usable by name (API and CLI ``--metric``)."""

    def decorate(fn: DropMetric) -> DropMetric:
        DROP_METRICS[name] = fn
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


@register_drop_metric("kl")
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


@register_drop_metric("kl_last_axis")
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


@register_drop_metric("rel_mse")
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


def resolve_drop_metric(metric: str | DropMetric) -> tuple[str, DropMetric]:
    """(name, function) of a registered name or a callable; unknown names are an InputError."""
    if callable(metric):
        return getattr(metric, "__name__", "custom"), metric
    if metric not in DROP_METRICS:
        known = ", ".join(sorted(DROP_METRICS))
        raise InputError(f"unknown sensitivity metric '{metric}'; known: {known}")
    return metric, DROP_METRICS[metric]
