"""Segmentation metrics in numpy: confusion matrix, per-class IoU, mIoU, pixel accuracy, and
IoU / F1 of a binary (thresholded single-channel) map.

Predictions and truths are integer label maps of the same shape ``[N, H, W]`` (a decoder
turns logits into ``argmax`` maps and a probability map into 0/1). Truth pixels with a
negative label or the label ``IGNORE_LABEL`` (255, the usual "void" of mask files) are left
out of every metric. Counts are accumulated over the whole dataset (not averaged per image).

* confusion M[t, p] = #pixels with truth t and prediction p;
* IoU_c = M[c, c] / (Σ_p M[c, p] + Σ_t M[t, c] − M[c, c]), for classes with a non-empty
  union (present in the truth or the prediction);
* mIoU = mean of IoU_c over those classes; pixel accuracy = Σ_c M[c, c] / Σ M;
* binary maps (foreground = label ≠ 0): IoU = |P ∧ T| / |P ∨ T|, F1 (Dice) =
  2|P ∧ T| / (|P| + |T|); both 1 when prediction and truth are empty.

Registered ``task`` metrics (percent, 0-100), each ``fn(predictions, truths, spec)``, and each
also as ``NAME_vs_original`` (truth = the unpruned model's decoded map): ``miou``,
``pixel_accuracy``, ``mask_iou``, ``mask_f1``.
"""

from __future__ import annotations

import numpy as np

from onnxprune.errors import InputError
from onnxprune.evaluate.registry import KIND_TASK, builtin

IGNORE_LABEL = 255


def _valid_pairs(predictions: np.ndarray, truths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predictions, truths = np.asarray(predictions), np.asarray(truths)
    if predictions.shape != truths.shape:
        raise InputError(
            f"masks have shape {tuple(truths.shape)} but the model's decoded maps have shape "
            f"{tuple(predictions.shape)}; masks must be [N, H, W] at the output's resolution"
        )
    truth = truths.reshape(-1).astype(np.int64)
    keep = (truth >= 0) & (truth != IGNORE_LABEL)
    return predictions.reshape(-1).astype(np.int64)[keep], truth[keep]


def confusion_matrix(predictions: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """``M [K, K]`` (K = 1 + largest label seen) with M[t, p] = pixels of truth t predicted
    p, ignored pixels left out."""
    prediction, truth = _valid_pairs(predictions, truths)
    if prediction.size and prediction.min() < 0:
        raise InputError("decoded predictions hold negative labels")
    size = int(max(prediction.max(initial=0), truth.max(initial=0))) + 1
    return np.bincount(truth * size + prediction, minlength=size * size).reshape(size, size)


def per_class_iou(predictions: np.ndarray, truths: np.ndarray) -> dict[int, float]:
    """{class: IoU_c} for classes with a non-empty union (fractions 0-1)."""
    matrix = confusion_matrix(predictions, truths).astype(np.float64)
    diagonal = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - diagonal
    return {int(c): float(diagonal[c] / union[c]) for c in np.nonzero(union > 0)[0]}


def mean_iou(predictions: np.ndarray, truths: np.ndarray) -> float:
    """mIoU (fraction) over classes with a non-empty union; 1 when no pixel counts."""
    values = list(per_class_iou(predictions, truths).values())
    return float(np.mean(values)) if values else 1.0


def pixel_accuracy_fraction(predictions: np.ndarray, truths: np.ndarray) -> float:
    """Share of counted pixels whose prediction equals the truth (1 when none counts)."""
    prediction, truth = _valid_pairs(predictions, truths)
    return float(np.mean(prediction == truth)) if truth.size else 1.0


def binary_iou_f1(predictions: np.ndarray, truths: np.ndarray) -> tuple[float, float]:
    """(IoU, F1) of foreground (label ≠ 0) maps, fractions; (1, 1) when both are empty."""
    prediction, truth = _valid_pairs(predictions, truths)
    p, t = prediction != 0, truth != 0
    both = float(np.sum(p & t))
    either = float(np.sum(p | t))
    total = float(p.sum() + t.sum())
    iou = both / either if either else 1.0
    f1 = 2 * both / total if total else 1.0
    return iou, f1


def _register(name: str, distill_loss: str = "kl"):
    """Register ``fn`` as ``name`` and ``name_vs_original`` (a segment task metric, in %).
    ``distill_loss``: ``kl`` along the class axis for multi-class maps; the binary metrics
    read single-channel maps, where a softmax over one channel is 1 and the KL is 0 whatever
    the model does, so they distill by squared error (``mse``)."""

    def decorate(fn):
        builtin(name, KIND_TASK, unit="%", task="segment", distill_loss=distill_loss)(fn)
        builtin(
            f"{name}_vs_original", KIND_TASK, unit="%", task="segment", distill_loss=distill_loss
        )(fn)
        return fn

    return decorate


@_register("miou")
def miou(predictions: np.ndarray, truths: np.ndarray, spec=None) -> float:
    """100 · mIoU (mean of per-class IoU over classes in truth or prediction)."""
    return 100.0 * mean_iou(predictions, truths)


@_register("pixel_accuracy")
def pixel_accuracy(predictions: np.ndarray, truths: np.ndarray, spec=None) -> float:
    """100 · share of counted pixels predicted right."""
    return 100.0 * pixel_accuracy_fraction(predictions, truths)


@_register("mask_iou", distill_loss="mse")
def mask_iou(predictions: np.ndarray, truths: np.ndarray, spec=None) -> float:
    """100 · |P ∧ T| / |P ∨ T| of foreground maps (label ≠ 0)."""
    return 100.0 * binary_iou_f1(predictions, truths)[0]


@_register("mask_f1", distill_loss="mse")
def mask_f1(predictions: np.ndarray, truths: np.ndarray, spec=None) -> float:
    """100 · 2|P ∧ T| / (|P| + |T|) of foreground maps (Dice)."""
    return 100.0 * binary_iou_f1(predictions, truths)[1]
