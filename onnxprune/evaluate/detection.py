"""Detection metrics in numpy: IoU, class-aware NMS, COCO-style mAP, precision/recall/F1.

Every function works on per-image :class:`Detections` (boxes ``[K, 4]`` x1, y1, x2, y2 in
input pixels, ``scores [K]``, integer ``labels [K]``); ground truth is the same with scores
ignored. Conventions:

* IoU(a, b) = |a ∩ b| / |a ∪ b| with box area (x2 - x1)·(y2 - y1) (continuous coordinates,
  no +1); a degenerate union gives IoU 0.
* Matching (COCO): within one image and class, predictions are taken in decreasing score
  order (stable on ties); each is matched to the unmatched ground truth box of highest IoU,
  and is a true positive when that IoU ≥ t; every ground truth box is matched at most once.
* AP of a class at threshold t (all-point interpolation): with the class's predictions over
  all images sorted by score, precision p_k and recall r_k after the k-th, and the
  precision envelope P(r) = max_{k: r_k ≥ r} p_k, AP = Σ_k (r_k − r_{k−1}) · P(r_k)
  (r_0 = 0), i.e. the area under the monotone envelope.
* mAP = mean of AP over the classes with at least one ground-truth box (a class with no
  ground truth has no defined recall and is left out, as in COCO; its predictions still
  never count for another class). mAP@0.5:0.95 averages mAP over t = 0.50, 0.55, …, 0.95.
  No ground truth at all: mAP is 100 when there are also no predictions, else 0.
* Precision / recall / F1 (micro, over every class and image) at IoU 0.5, counting only
  predictions with score ≥ the score threshold: P = TP / (TP + FP), R = TP / (TP + FN),
  F1 = 2PR / (P + R). Nothing predicted: P = 1 when there is also nothing to find, else 0;
  nothing to find: R = 1.

Registered ``task`` metrics (in percent, 0-100, like the label metrics), each
``fn(predictions, truths, spec)`` on decoded per-image detections; ``spec`` is the bound
:class:`~onnxprune.evaluate.tasks.TaskSpec` (its ``score_threshold`` is used by P/R/F1).
Every name also exists as ``NAME_vs_original``: same formula, with the unpruned model's own
decoded detections of score ≥ ``score_threshold`` as the ground truth (for data without
boxes). ``map50``, ``map50_95`` (alias ``map``), ``det_precision``, ``det_recall``,
``det_f1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from onnxprune.evaluate.registry import KIND_TASK, builtin

COCO_IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())


@dataclass
class Detections:
    """Boxes of one image: ``boxes [K, 4]`` xyxy, ``scores [K]``, ``labels [K]`` (int)."""

    boxes: np.ndarray
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        count = len(self.boxes)
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.scores = scores if scores.size == count else np.ones(count)
        self.labels = np.asarray(self.labels).reshape(-1).astype(np.int64)
        if self.labels.size != count:
            raise ValueError(f"{count} boxes but {self.labels.size} labels")

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, keep: np.ndarray) -> Detections:
        """The detections at ``keep`` (indices or a boolean mask)."""
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep])

    def above(self, threshold: float) -> Detections:
        """Detections with score ≥ ``threshold``."""
        return self.select(self.scores >= threshold)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """(x2 - x1)·(y2 - y1), negative sides clipped to 0."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def _iou_with_areas(a: np.ndarray, b: np.ndarray, area_a: np.ndarray, area_b: np.ndarray):
    """IoU matrix of float64 xyxy boxes ``a`` [K, 4] and ``b`` [L, 4] with their areas given;
    0 where the union is not positive."""
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)  # [K, L] planes, no [K, L, 2]
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``[len(a), len(b)]`` of two sets of xyxy boxes (0 where the union is 0)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return _iou_with_areas(a, b, box_area(a), box_area(b))


#: boxes compared with each other at once by :func:`nms` (a ``BLOCK x BLOCK`` IoU matrix)
NMS_BLOCK = 256
#: at most this many IoU values in one matrix of kept boxes against later boxes
NMS_CHUNK_VALUES = 1 << 20


def _pair_iou(boxes: np.ndarray, areas: np.ndarray, rows: np.ndarray, cols: np.ndarray):
    """IoU ``[len(rows), len(cols)]`` of ``boxes[rows]`` with ``boxes[cols]`` (float64 xyxy,
    ``areas`` precomputed by :func:`box_area`)."""
    return _iou_with_areas(boxes[rows], boxes[cols], areas[rows], areas[cols])


def _greedy_kept(boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Positions kept by greedy suppression of ``boxes`` (one class, float64 xyxy, already in
    decreasing score order): a box is kept unless an earlier kept box overlaps it with IoU
    > ``iou_threshold``. Block by block: the boxes of a block of :data:`NMS_BLOCK` still in
    play get one IoU matrix and a pass over the rows that suppress a later box of the block;
    the block's kept boxes then suppress every later box, in chunks of at most
    :data:`NMS_CHUNK_VALUES` IoU values (memory O(block² + chunk), never K x K)."""
    count = len(boxes)
    areas = box_area(boxes)
    alive = np.ones(count, dtype=bool)
    kept: list[np.ndarray] = []
    for start in range(0, count, NMS_BLOCK):
        stop = min(start + NMS_BLOCK, count)
        block = np.flatnonzero(alive[start:stop]) + start
        if not block.size:
            continue
        suppresses = np.triu(_pair_iou(boxes, areas, block, block) > iou_threshold, 1)
        removed = np.zeros(block.size, dtype=bool)
        for row in np.flatnonzero(suppresses.any(axis=1)):  # rows that suppress nothing: kept
            if not removed[row]:
                removed |= suppresses[row]
        winners = block[~removed]
        kept.append(winners)
        later = np.flatnonzero(alive[stop:]) + stop
        step = max(NMS_CHUNK_VALUES // winners.size, 1)
        for first in range(0, later.size, step):
            chunk = later[first : first + step]
            hit = (_pair_iou(boxes, areas, winners, chunk) > iou_threshold).any(axis=0)
            alive[chunk[hit]] = False
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)


def nms(
    detections: Detections, iou_threshold: float, max_detections: int | None = None
) -> Detections:
    """Class-aware greedy non-maximum suppression: in decreasing score order (stable), keep a
    box unless a kept box of the same class overlaps it with IoU > ``iou_threshold``; at most
    ``max_detections`` kept (highest scores).

    Classes never suppress each other, so each runs alone (:func:`_greedy_kept`) and the kept
    boxes of all classes, merged back in score order, are cut to ``max_detections``: the same
    boxes as one greedy loop over every class that stops at ``max_detections``."""
    if len(detections) == 0:
        return detections
    order = np.argsort(-detections.scores, kind="stable")
    boxes, labels = detections.boxes[order], detections.labels[order]
    kept = [
        members[_greedy_kept(boxes[members], iou_threshold)]
        for members in (np.flatnonzero(labels == label) for label in np.unique(labels))
    ]
    chosen = np.sort(np.concatenate(kept))
    if max_detections is not None:
        chosen = chosen[: max(int(max_detections), 0)]
    return detections.select(order[chosen])


def match_image(
    predictions: Detections, truth: Detections, iou_threshold: float
) -> tuple[np.ndarray, int]:
    """(true-positive flags of ``predictions`` in their given order, number of ground-truth
    boxes), matching per class as in the module doc."""
    hits = np.zeros(len(predictions), dtype=bool)
    if len(predictions) == 0 or len(truth) == 0:
        return hits, len(truth)
    iou = box_iou(predictions.boxes, truth.boxes)
    iou[predictions.labels[:, None] != truth.labels[None, :]] = -1.0
    taken = np.zeros(len(truth), dtype=bool)
    for index in np.argsort(-predictions.scores, kind="stable"):
        row = np.where(taken, -1.0, iou[index])
        best = int(row.argmax())
        if row[best] >= iou_threshold:
            taken[best] = True
            hits[index] = True
    return hits, len(truth)


def average_precision(hits: np.ndarray, scores: np.ndarray, positives: int) -> float:
    """All-point interpolated AP (fraction 0-1) of one class from the true-positive flags and
    scores of its predictions over all images and its number of ground-truth boxes."""
    if positives == 0:
        raise ValueError("AP is undefined without ground truth")
    if len(hits) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = tp / positives
    precision = tp / (tp + fp)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope))


def mean_average_precision(
    predictions: Sequence[Detections],
    truths: Sequence[Detections],
    iou_thresholds: Sequence[float] = (0.5,),
) -> float:
    """mAP (fraction 0-1) averaged over classes with ground truth and over ``iou_thresholds``
    (module doc)."""
    _same_length(predictions, truths)
    classes = np.unique(np.concatenate([t.labels for t in truths] or [np.zeros(0, np.int64)]))
    if classes.size == 0:
        any_prediction = any(len(p) for p in predictions)
        return 0.0 if any_prediction else 1.0
    per_threshold = []
    for threshold in iou_thresholds:
        aps = []
        for label in classes:
            hits, scores, positives = [], [], 0
            for prediction, truth in zip(predictions, truths, strict=True):
                mine = prediction.select(prediction.labels == label)
                flags, count = match_image(mine, truth.select(truth.labels == label), threshold)
                hits.append(flags)
                scores.append(mine.scores)
                positives += count
            aps.append(average_precision(np.concatenate(hits), np.concatenate(scores), positives))
        per_threshold.append(float(np.mean(aps)))
    return float(np.mean(per_threshold))


def precision_recall_f1(
    predictions: Sequence[Detections],
    truths: Sequence[Detections],
    score_threshold: float,
    iou_threshold: float = 0.5,
) -> tuple[float, float, float]:
    """Micro (precision, recall, F1) as fractions 0-1 (module doc)."""
    _same_length(predictions, truths)
    tp = fp = fn = 0
    for prediction, truth in zip(predictions, truths, strict=True):
        hits, count = match_image(prediction.above(score_threshold), truth, iou_threshold)
        tp += int(hits.sum())
        fp += int((~hits).sum())
        fn += count - int(hits.sum())
    precision = tp / (tp + fp) if tp + fp else 1.0 if fn == 0 else 0.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def _same_length(predictions: Sequence, truths: Sequence) -> None:
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predicted images but {len(truths)} ground truths")


def _register(name: str, aliases: tuple[str, ...] = ()):
    """Register ``fn`` as ``name`` and ``name_vs_original`` (a detect task metric, in %). No
    distillation loss serves detection metrics (``distill_loss=""``): a raw head holds box
    coordinates in pixels beside class scores in [0, 1], so a KL along axis 1 reads the
    coordinates only and a squared error is dominated by them."""

    def decorate(fn):
        builtin(name, KIND_TASK, unit="%", aliases=aliases, task="detect", distill_loss="")(fn)
        vs_aliases = tuple(f"{a}_vs_original" for a in aliases)
        builtin(
            f"{name}_vs_original",
            KIND_TASK,
            unit="%",
            aliases=vs_aliases,
            task="detect",
            distill_loss="",
        )(fn)
        return fn

    return decorate


@_register("map50", aliases=("mAP50", "map@0.5"))
def map50(predictions: Sequence[Detections], truths: Sequence[Detections], spec=None) -> float:
    """100 · mAP at IoU 0.5 (all-point AP per class with ground truth, averaged)."""
    return 100.0 * mean_average_precision(predictions, truths, (0.5,))


@_register("map50_95", aliases=("map", "mAP50-95", "map@0.5:0.95"))
def map50_95(predictions: Sequence[Detections], truths: Sequence[Detections], spec=None) -> float:
    """100 · mean of mAP over IoU thresholds 0.50, 0.55, …, 0.95 (COCO)."""
    return 100.0 * mean_average_precision(predictions, truths, COCO_IOU_THRESHOLDS)


def _score_threshold(spec) -> float:
    return float(getattr(spec, "score_threshold", 0.25))


@_register("det_precision")
def det_precision(predictions, truths, spec=None) -> float:
    """100 · TP / (TP + FP) at IoU 0.5 over predictions with score ≥ spec.score_threshold."""
    return 100.0 * precision_recall_f1(predictions, truths, _score_threshold(spec))[0]


@_register("det_recall")
def det_recall(predictions, truths, spec=None) -> float:
    """100 · TP / (TP + FN) at IoU 0.5 over predictions with score ≥ spec.score_threshold."""
    return 100.0 * precision_recall_f1(predictions, truths, _score_threshold(spec))[1]


@_register("det_f1")
def det_f1(predictions, truths, spec=None) -> float:
    """100 · 2PR / (P + R) with P, R of det_precision and det_recall."""
    return 100.0 * precision_recall_f1(predictions, truths, _score_threshold(spec))[2]
