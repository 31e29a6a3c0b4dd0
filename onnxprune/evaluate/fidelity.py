"""Fidelity metrics: one output tensor of a candidate model against the same output of the
reference model, ``fn(candidate, reference) -> float``; computed in float64.

Generic over tensor ranks: for rank >= 2 the class (channel) axis is axis 1 and every other
position is one prediction, so ``(N, C)`` classifier scores, ``(N, C, H, W)`` segmentation
maps and ``(N, C, A)`` detection heads are handled alike; a rank-1 output is compared value by
value (agreement only). A metric that does not apply to a tensor (KL of an integer output)
raises :class:`NotApplicable`.

Distillation loss (``Metric.distill_loss``) and so the sensitivity table's drop metric: ``kl``
for the class-score metrics (agreement, containment, expected top-1, KL); ``mse`` — and
``rel_mse`` for the table — for ``cosine`` and the error metrics, which the guard uses for
outputs that are not class scores along axis 1 (feature maps, sequence scores [N, T, C],
raw detection heads), where a softmax along axis 1 means nothing.
"""

from __future__ import annotations

import numpy as np

from onnxprune.errors import InputError
from onnxprune.evaluate.registry import KIND_REFERENCE, builtin
from onnxprune.stats import probabilities
from onnxprune.stats.probabilities import is_distribution, log_probability_pair


class NotApplicable(ValueError):
    """The metric has no meaning for this output tensor (rank or dtype)."""


def _pair(candidate, reference) -> tuple[np.ndarray, np.ndarray]:
    candidate, reference = np.asarray(candidate), np.asarray(reference)
    if candidate.shape != reference.shape:
        raise InputError(
            f"output shapes differ: candidate {candidate.shape}, reference {reference.shape}"
        )
    return candidate, reference


def _float_pair(candidate, reference) -> tuple[np.ndarray, np.ndarray]:
    candidate, reference = _pair(candidate, reference)
    for array in (candidate, reference):
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise NotApplicable(f"needs numeric outputs, got {array.dtype}")
    return candidate.astype(np.float64), reference.astype(np.float64)


def _classes_last(array: np.ndarray) -> np.ndarray:
    """(M, C) rows of class scores: axis 1 moved last, the rest flattened."""
    if array.ndim < 2:
        raise NotApplicable("needs class scores (rank >= 2)")
    return np.moveaxis(array, 1, -1).reshape(-1, array.shape[1])


@builtin("top1_agreement", KIND_REFERENCE, unit="%", aliases=("agreement",), default_max_drop=1.0)
def top1_agreement(candidate, reference) -> float:
    """Top-1 agreement: 100 · mean over predictions of [argmax_c cand == argmax_c ref] (class
    axis 1, first index on ties); rank-1 outputs: 100 · mean [cand == ref]."""
    candidate, reference = _pair(candidate, reference)
    if candidate.ndim < 2:
        return float(100.0 * np.mean(candidate == reference))
    return float(100.0 * np.mean(candidate.argmax(axis=1) == reference.argmax(axis=1)))


@builtin("top5_containment", KIND_REFERENCE, unit="%", aliases=("top5_agreement",))
def top5_containment(candidate, reference) -> float:
    """Top-5 containment: 100 · mean over predictions of [the reference's top-1 class is among
    the candidate's 5 best], i.e. #{c : cand_c > cand_r} < 5 with r = argmax ref."""
    candidate, reference = _float_pair(candidate, reference)
    cand, ref = _classes_last(candidate), _classes_last(reference)
    target = ref.argmax(axis=1)
    target_scores = cand[np.arange(len(target)), target]
    higher = (cand > target_scores[:, None]).sum(axis=1)
    return float(100.0 * np.mean(higher < 5))


@builtin(
    "expected_top1", KIND_REFERENCE, unit="%", aliases=("expected_accuracy",), default_max_drop=1.0
)
def expected_top1(candidate, reference) -> float:
    """Top-1 accuracy the candidate would have if the reference's probabilities were the truth:
    100 · mean_n P_n[argmax_c Q_n], P_n the reference's class distribution of prediction n
    (softmax of its scores over axis 1, or the scores themselves when every row already is a
    distribution). For the reference itself it is 100 · mean_n max_c P_n, its expected
    accuracy; the difference is an unbiased estimate of the accuracy lost *if* the reference is
    calibrated. Unlike hard agreement, flipping a near-tie costs almost nothing and flipping a
    confident prediction costs almost a point per sample, so the measure is continuous and
    stable on low-confidence data (random crops, out-of-distribution photos)."""
    if not np.issubdtype(np.asarray(reference).dtype, np.floating):
        raise NotApplicable("needs float class scores")
    candidate, reference = _float_pair(candidate, reference)
    cand, ref = _classes_last(candidate), _classes_last(reference)
    probabilities = ref if is_distribution(ref, 1) else np.exp(log_softmax(ref))
    chosen = cand.argmax(axis=1)
    return float(100.0 * np.mean(probabilities[np.arange(len(chosen)), chosen]))


@builtin(
    "cosine",
    KIND_REFERENCE,
    aliases=("cosine_similarity",),
    default_max_drop=0.01,
    distill_loss="mse",
)
def cosine(candidate, reference) -> float:
    """Mean over samples n of cos(a_n, b_n) = a_n·b_n / (‖a_n‖ ‖b_n‖), a_n and b_n the
    flattened sample n of candidate and reference (1 when both are zero, 0 when one is)."""
    candidate, reference = _float_pair(candidate, reference)
    a = candidate.reshape(candidate.shape[0], -1) if candidate.ndim else candidate.reshape(1, 1)
    b = reference.reshape(a.shape)
    dot = (a * b).sum(axis=1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_zero = (np.linalg.norm(a, axis=1) == 0) & (np.linalg.norm(b, axis=1) == 0)
    values = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    values = np.where(both_zero, 1.0, values)
    return float(values.mean())


@builtin("max_abs_error", KIND_REFERENCE, higher_is_better=False, distill_loss="mse")
def max_abs_error(candidate, reference) -> float:
    """max_i |cand_i - ref_i| over every element."""
    candidate, reference = _float_pair(candidate, reference)
    return float(np.abs(candidate - reference).max()) if candidate.size else 0.0


@builtin("mean_abs_error", KIND_REFERENCE, higher_is_better=False, distill_loss="mse")
def mean_abs_error(candidate, reference) -> float:
    """mean_i |cand_i - ref_i| over every element."""
    candidate, reference = _float_pair(candidate, reference)
    return float(np.abs(candidate - reference).mean()) if candidate.size else 0.0


def _relative(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return 0.0 if numerator == 0 else float("inf")
    return numerator / denominator


@builtin("max_rel_error", KIND_REFERENCE, higher_is_better=False, distill_loss="mse")
def max_rel_error(candidate, reference) -> float:
    """max_i |cand_i - ref_i| / max_i |ref_i| (relative to the reference's largest magnitude,
    so near-zero elements do not explode it; 0/0 = 0)."""
    candidate, reference = _float_pair(candidate, reference)
    if not candidate.size:
        return 0.0
    return _relative(float(np.abs(candidate - reference).max()), float(np.abs(reference).max()))


@builtin("mean_rel_error", KIND_REFERENCE, higher_is_better=False, distill_loss="mse")
def mean_rel_error(candidate, reference) -> float:
    """mean_i |cand_i - ref_i| / mean_i |ref_i| (0/0 = 0)."""
    candidate, reference = _float_pair(candidate, reference)
    if not candidate.size:
        return 0.0
    return _relative(float(np.abs(candidate - reference).mean()), float(np.abs(reference).mean()))


def log_softmax(rows: np.ndarray) -> np.ndarray:
    """log softmax along the last axis (:func:`onnxprune.stats.probabilities.log_softmax`)."""
    return probabilities.log_softmax(rows, -1)


@builtin("kl", KIND_REFERENCE, higher_is_better=False, unit="nats", aliases=("kl_divergence",))
def kl_divergence(candidate, reference) -> float:
    """Mean over predictions of KL(P‖Q) = Σ_c P_c (log P_c − log Q_c) over the class axis 1
    (nats). Outputs are logits (P = softmax(ref), Q = softmax(cand)), unless every reference
    prediction is already a distribution (entries in [0, 1] summing to 1 within 1e-3, as in a
    model exported with its softmax): then P = ref and Q = cand, clipped to ≥ 1e-12."""
    if not np.issubdtype(np.asarray(reference).dtype, np.floating):
        raise NotApplicable("needs float outputs (logits)")
    candidate, reference = _float_pair(candidate, reference)
    cand, ref = _classes_last(candidate), _classes_last(reference)
    log_p, log_q = log_probability_pair(ref, cand, 1)
    return float(np.mean((np.exp(log_p) * (log_p - log_q)).sum(axis=1)))


def default_reference_metric(reference: np.ndarray) -> str:
    """The fidelity metric the guard uses without labels, from the reference output:
    ``expected_top1`` for float class scores of shape (N, C) with C >= 2 (a classifier's
    logits or probabilities); ``token_agreement`` (``onnxprune.evaluate.embedding``) for a
    rank-3 output whose last axis holds a probability distribution at every position and
    axis 1 does not (per-position class probabilities [N, T, C], e.g. a CTC text recognizer:
    its output is read as a string of argmaxes, so agreement per position is what changes
    it); ``cosine`` for any other float output (feature maps, detection heads, embeddings);
    ``top1_agreement`` for integer outputs (already decoded labels)."""
    array = np.asarray(reference)
    if not np.issubdtype(array.dtype, np.floating):
        return "top1_agreement"
    if array.ndim == 2 and array.shape[1] >= 2:
        return "expected_top1"
    if array.ndim == 3 and is_distribution(array, -1) and not is_distribution(array, 1):
        return "token_agreement"
    return "cosine"
