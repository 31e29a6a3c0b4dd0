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


@builtin(
    "top1_agreement",
    KIND_REFERENCE,
    unit="%",
    aliases=("agreement",),
    default_max_drop=1.0,
    sample_share=True,
)
def top1_agreement(candidate, reference) -> float:
    """Top-1 agreement: 100 · mean over predictions of [argmax_c cand == argmax_c ref] (class
    axis 1, first index on ties); rank-1 outputs: 100 · mean [cand == ref]."""
    candidate, reference = _pair(candidate, reference)
    if candidate.ndim < 2:
        return float(100.0 * np.mean(candidate == reference))
    return float(100.0 * np.mean(candidate.argmax(axis=1) == reference.argmax(axis=1)))


@builtin(
    "top5_containment", KIND_REFERENCE, unit="%", aliases=("top5_agreement",), sample_share=True
)
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


@builtin(
    "r2",
    KIND_REFERENCE,
    unit="%",
    aliases=("explained_variance",),
    default_max_drop=1.0,
    distill_loss="mse",
    drop_metric="std_mse",
    all_outputs=True,
)
def explained_variance(candidate, reference) -> float:
    """Share of the reference's variation across samples that the candidate reproduces, in %:

        r2 = 100 · (1 − Σ_{n,i} (cand_{n,i} − ref_{n,i})² / Σ_{n,i} (ref_{n,i} − r̄_i)²)

    with i every element of a sample (all axes but the first) and r̄_i its mean over the
    samples: the coefficient of determination of the candidate as a predictor of the
    reference. Unlike ``cosine`` it does not count what every sample shares: landmark or box
    coordinates around an offset (a 192-pixel face mesh, a detector's anchor grid) keep a
    cosine above 0.997 under an error of 6 pixels, and r2 reads that error against how much the
    coordinates move between inputs. 100 for identical outputs; may go below 0. With one
    sample, or a reference that never changes, the denominator is Σ ref² instead. As the
    guard, r2 reads every float output and keeps the worst (``all_outputs``): the models it is
    chosen for return coordinates beside scores (a face detector's regressors and
    classificators, a landmark model's points and face flag), and a guard that read the first
    output only would let the others go."""
    candidate, reference = _float_pair(candidate, reference)
    if not reference.size:
        return 100.0
    ref = reference.reshape(reference.shape[0], -1) if reference.ndim else reference.reshape(1, 1)
    error = float(((candidate.reshape(ref.shape) - ref) ** 2).sum())
    spread = float(((ref - ref.mean(axis=0)) ** 2).sum())
    if spread <= 0:
        spread = float((ref**2).sum())
    if spread <= 0:
        return 100.0 if error == 0 else float("-inf")
    return float(100.0 * (1.0 - error / spread))


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


#: below this share of its energy varying across samples, an output is mostly an offset that
#: every input shares, and cosine cannot see errors of the part that varies (module doc of
#: :func:`default_reference_metric`)
VARYING_SHARE_MIN = 0.25


def varying_share(reference: np.ndarray) -> float | None:
    """Σ_{n,i} (ref_{n,i} − r̄_i)² / Σ_{n,i} ref_{n,i}²: the share of the output's energy that
    changes between samples (r̄_i the mean over samples); None with fewer than 2 samples or an
    all-zero output."""
    array = np.asarray(reference, dtype=np.float64)
    if array.ndim == 0 or array.shape[0] < 2:
        return None
    rows = array.reshape(array.shape[0], -1)
    energy = float((rows**2).sum())
    if energy <= 0:
        return None
    return float(((rows - rows.mean(axis=0)) ** 2).sum() / energy)


def _unit_rows(array: np.ndarray) -> bool:
    """Every sample's output has the same L2 norm (within 0.1 %): a normalized embedding."""
    rows = np.asarray(array, dtype=np.float64).reshape(array.shape[0], -1)
    norms = np.linalg.norm(rows, axis=1)
    return bool(len(norms) >= 2 and norms.mean() > 0 and norms.std() <= 1e-3 * norms.mean())


#: a per-position linear head with fewer classes than this is read as a regression
#: (box offsets, keypoints), not as scores
TOKEN_CLASSES_MIN = 8


def default_reference_metric(
    reference: np.ndarray,
    *,
    read_variation: bool = True,
    embedding_head: bool = False,
    linear_head: int | None = None,
) -> str:
    """The fidelity metric the guard uses without labels, from the reference output on a few
    samples (``read_variation``: whether they are real inputs, whose variation says what the
    output holds; not for synthesized ones; ``embedding_head``: the graph computes the output
    by a feature normalization; ``linear_head``: the output features of the linear layer that
    computes it along its last axis, :mod:`onnxprune.graph.output_producer`):

    * ``top1_agreement`` for integer outputs (already decoded labels);
    * ``expected_top1`` for float class scores (N, C) with C >= 2 — a distribution along
      axis 1, or logits — unless they are an embedding (every row of the same L2 norm with
      C >= 8, or ``embedding_head``: ``cosine``). The offset rule below does not apply to
      (N, C): a classifier shown images of one class answers logits that vary little between
      them (the digits models 0.019–0.056 on one digit, EfficientNet-Lite2 0.223 on crops of
      one photo), so an (N, C) regression such as 21 hand landmarks × 3 keeps
      ``expected_top1`` and needs ``--metric r2`` from the user;
    * ``token_agreement`` (``onnxprune.evaluate.embedding``) for a rank-3 output whose last
      axis holds a probability distribution at every position and axis 1 does not
      (per-position class probabilities [N, T, C], e.g. a CTC text recognizer: its output is
      read as a string of argmaxes, so agreement per position is what changes it) — and for
      one whose last axis is the output of a linear layer (``linear_head``, at least
      ``TOKEN_CLASSES_MIN`` features) and axis 1 is no distribution: the same head before its
      softmax (a CTC recognizer exported with raw logits [T, N, C], ddddocr's; a token
      classifier's [N, T, labels]), which the offset rule below would otherwise send to
      ``r2``;
    * ``r2`` for any other float output of which less than ``VARYING_SHARE_MIN`` of the
      energy varies between samples (:func:`varying_share`; needs 2 samples): coordinates
      around an offset — a face mesh [N, 1, 1, 1404], a detector's raw head — where the cosine
      of two samples' outputs is already above 0.97 and an error of several pixels moves it by
      less than its default tolerance. Measured on real models: MediaPipe face landmarks
      0.008, BlazeFace regressors 0.066, a YOLOv8n head 0.012, PicoDet's scores 0.135;
    * ``cosine`` for any other float output (feature maps, embeddings)."""
    array = np.asarray(reference)
    if not np.issubdtype(array.dtype, np.floating):
        return "top1_agreement"
    if array.ndim == 2 and array.shape[1] >= 2 and is_distribution(array, 1):
        return "expected_top1"
    if array.ndim == 3 and not is_distribution(array, 1):
        logits = linear_head is not None and linear_head >= TOKEN_CLASSES_MIN
        if is_distribution(array, -1) or (logits and array.shape[-1] == linear_head):
            return "token_agreement"
    if array.ndim == 2 and array.shape[1] >= 2:
        embedding = embedding_head or (array.shape[1] >= 8 and _unit_rows(array))
        return "cosine" if embedding else "expected_top1"
    share = varying_share(array) if read_variation else None
    if share is not None and share < VARYING_SHARE_MIN:
        return "r2"
    return "cosine"
