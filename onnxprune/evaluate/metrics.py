"""Metrics against labels: top-1, top-5, macro precision, recall and F1 (in %, 0-100).

Each takes ``(outputs, labels)``: the model's output tensors (a list, or one array) and the
labels; the class scores are the first floating-point output of rank ≥ 2
(:func:`score_output_index`; output 0 when there is none). Scores and labels are aligned by
:func:`class_scores`:

* scores ``(N, C)`` with labels ``(N,)``: one prediction per sample;
* scores ``(N, C, d1, ...)`` with labels ``(N, d1, ...)`` (segmentation): the class axis is
  axis 1 and every position is one prediction; trailing size-1 axes (``(N, C, 1, 1)``) are
  dropped when labels are ``(N,)``;
* labels with the scores' shape (one-hot or soft): the label is their argmax over axis 1;
* negative labels (e.g. -1 "ignore") are left out.

The predicted class is the argmax of the scores (the first index on ties).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from onnxprune.errors import InputError
from onnxprune.evaluate.registry import KIND_LABELS, builtin


def score_output_index(outputs: Sequence[np.ndarray]) -> int:
    """Which output holds the class scores: the first floating-point array of rank ≥ 2, else
    output 0. A classifier may put its predicted labels first (skl2onnx: ``label`` (N,) int64,
    then ``probabilities`` (N, C)); a label is not a score."""
    for index, array in enumerate(outputs):
        if (
            isinstance(array, np.ndarray)
            and array.ndim >= 2
            and np.issubdtype(array.dtype, np.floating)
        ):
            return index
    return 0


def first_output(outputs: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """The class-score tensor: ``outputs`` itself when an array, else the output named by
    :func:`score_output_index`."""
    if isinstance(outputs, np.ndarray):
        return outputs
    if len(outputs) == 0:
        raise InputError("the model has no outputs to score")
    return np.asarray(outputs[score_output_index(outputs)])


def _describe(array) -> str:
    array = np.asarray(array)
    if array.dtype == object:
        return f"{tuple(array.shape)} of non-tensor values (a sequence or map, e.g. ZipMap's)"
    return f"{tuple(array.shape)} {array.dtype}"


def class_scores(
    outputs: Sequence[np.ndarray] | np.ndarray, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (M, C), labels (M,))`` with one row per prediction (see module doc)."""
    if labels is None:
        raise InputError("this metric needs labels, and the data has none")
    scores = first_output(outputs)
    labels = np.asarray(labels)
    if scores.ndim < 2:
        arrays = [outputs] if isinstance(outputs, np.ndarray) else list(outputs)
        raise InputError(
            "label metrics need class scores (N, C, ...) and no output is a float tensor of "
            f"rank >= 2 (outputs: {'; '.join(_describe(a) for a in arrays)}); export the class "
            "scores as a tensor output"
        )
    if labels.shape == scores.shape and scores.shape[1] > 1:
        labels = labels.argmax(axis=1)
    if labels.ndim == 1 and scores.ndim > 2:
        extra = scores.shape[2:]
        if all(d == 1 for d in extra):
            scores = scores.reshape(scores.shape[:2])
    expected = (scores.shape[0], *scores.shape[2:])
    if labels.shape != expected:
        raise InputError(
            f"labels have shape {labels.shape} but the output {scores.shape} needs labels of "
            f"shape {expected}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must be integer class indices, got dtype {labels.dtype}")
    classes = scores.shape[1]
    flat_scores = np.moveaxis(scores, 1, -1).reshape(-1, classes)
    flat_labels = labels.reshape(-1).astype(np.int64)
    keep = flat_labels >= 0
    if keep.any() and flat_labels[keep].max() >= classes:
        hint = (
            " (one output value: a regression? give --metric r2, which reads no labels)"
            if classes == 1
            else ""
        )
        raise InputError(
            f"labels go up to {int(flat_labels[keep].max())} but the output has {classes} "
            f"classes{hint}"
        )
    return flat_scores[keep], flat_labels[keep]


def _percent(hits: np.ndarray) -> float:
    if hits.size == 0:
        raise InputError("no labelled samples to score")
    return float(100.0 * np.mean(hits))


def topk_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean per row: the label's score is beaten by fewer than ``k`` classes (strictly
    greater scores), i.e. the label is within the top ``k``."""
    label_scores = scores[np.arange(len(labels)), labels]
    higher = (scores > label_scores[:, None]).sum(axis=1)
    return higher < k


@builtin("top1", KIND_LABELS, unit="%", aliases=("accuracy", "top-1"), sample_share=True)
def top1(outputs, labels) -> float:
    """Top-1 accuracy: 100 · mean over predictions of [argmax_c s_c == y]."""
    scores, labels = class_scores(outputs, labels)
    return _percent(scores.argmax(axis=1) == labels)


@builtin("top5", KIND_LABELS, unit="%", aliases=("top-5",), sample_share=True)
def top5(outputs, labels) -> float:
    """Top-5 accuracy: 100 · mean of [#{c : s_c > s_y} < 5] (label among the 5 best scores)."""
    scores, labels = class_scores(outputs, labels)
    return _percent(topk_hits(scores, labels, 5))


def confusion(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (true positives, predicted counts, true counts) over the classes that occur
    in the labels or the predictions (argmax)."""
    predictions = scores.argmax(axis=1)
    classes = np.union1d(labels, predictions)
    size = scores.shape[1]
    tp = np.bincount(labels[predictions == labels], minlength=size)[classes]
    predicted = np.bincount(predictions, minlength=size)[classes]
    actual = np.bincount(labels, minlength=size)[classes]
    tp, predicted, actual = (a.astype(np.float64) for a in (tp, predicted, actual))
    return tp, predicted, actual


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


@builtin("precision", KIND_LABELS, unit="%")
def precision(outputs, labels) -> float:
    """Macro precision: 100 · mean over classes c of TP_c / (TP_c + FP_c), classes being those
    present in labels or predictions; a class never predicted counts 0."""
    scores, labels = class_scores(outputs, labels)
    tp, predicted, _ = confusion(scores, labels)
    return float(100.0 * _ratio(tp, predicted).mean())


@builtin("recall", KIND_LABELS, unit="%")
def recall(outputs, labels) -> float:
    """Macro recall: 100 · mean over classes c of TP_c / (TP_c + FN_c) (same classes as
    precision; a class absent from the labels counts 0)."""
    scores, labels = class_scores(outputs, labels)
    tp, _, actual = confusion(scores, labels)
    return float(100.0 * _ratio(tp, actual).mean())


@builtin("f1", KIND_LABELS, unit="%")
def f1(outputs, labels) -> float:
    """Macro F1: 100 · mean over classes of 2·P_c·R_c / (P_c + R_c) (0 when P_c + R_c = 0),
    with P_c, R_c the per-class precision and recall above."""
    scores, labels = class_scores(outputs, labels)
    tp, predicted, actual = confusion(scores, labels)
    p, r = _ratio(tp, predicted), _ratio(tp, actual)
    return float(100.0 * _ratio(2 * p * r, p + r).mean())
