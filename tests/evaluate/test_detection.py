"""Detection metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.evaluate import get_metric
from onnxprune.evaluate.detection import (
    Detections,
    average_precision,
    box_iou,
    match_image,
    mean_average_precision,
    nms,
    precision_recall_f1,
)

BOX_A = [0, 0, 10, 10]
BOX_B = [20, 20, 30, 40]


def det(boxes, scores, labels) -> Detections:
    return Detections(np.array(boxes, dtype=float), np.array(scores), np.array(labels))


def truth(boxes, labels) -> Detections:
    return Detections(np.array(boxes, dtype=float), None, np.array(labels))


def test_iou_by_hand():
    # [0,0,10,10] vs [5,0,15,10]: intersection 50, union 150
    assert box_iou([BOX_A], [[5, 0, 15, 10]])[0, 0] == pytest.approx(1 / 3)
    assert box_iou([BOX_A], [BOX_B])[0, 0] == 0.0
    assert box_iou([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 0.0  # empty union


def test_perfect_predictions_give_full_map_and_f1():
    gt = [truth([BOX_A, BOX_B], [0, 1])]
    pred = [det([BOX_A, BOX_B], [0.9, 0.8], [0, 1])]
    assert mean_average_precision(pred, gt) == pytest.approx(1.0)
    assert precision_recall_f1(pred, gt, 0.5) == pytest.approx((1.0, 1.0, 1.0))


def test_shifted_box_counts_only_at_low_thresholds():
    gt = [truth([BOX_A], [0])]
    # shifted right by 5: IoU 1/3 -> a miss at 0.5
    assert mean_average_precision([det([[5, 0, 15, 10]], [0.9], [0])], gt) == 0.0
    # shifted by 1: IoU 90/110 = 0.818 -> hit at 0.5..0.8, miss at 0.85..0.95 -> 7/10
    shifted = [det([[1, 0, 11, 10]], [0.9], [0])]
    assert mean_average_precision(shifted, gt) == pytest.approx(1.0)
    coco = mean_average_precision(shifted, gt, np.arange(0.5, 0.951, 0.05))
    assert coco == pytest.approx(0.7)


def test_missing_box_halves_recall_and_ap():
    gt = [truth([BOX_A, BOX_B], [0, 0])]
    pred = [det([BOX_A], [0.9], [0])]
    # precision 1 up to recall 0.5 -> AP 0.5
    assert mean_average_precision(pred, gt) == pytest.approx(0.5)
    p, r, f = precision_recall_f1(pred, gt, 0.5)
    assert (p, r) == pytest.approx((1.0, 0.5)) and f == pytest.approx(2 / 3)


def test_duplicate_box_is_a_false_positive():
    gt = [truth([BOX_A], [0])]
    pred = [det([BOX_A, BOX_A], [0.9, 0.8], [0, 0])]
    hits, count = match_image(pred[0], gt[0], 0.5)
    assert hits.tolist() == [True, False] and count == 1
    # AP: first prediction reaches recall 1 at precision 1 -> 1.0; P/R: 1/2, 1
    assert mean_average_precision(pred, gt) == pytest.approx(1.0)
    assert precision_recall_f1(pred, gt, 0.5)[:2] == pytest.approx((0.5, 1.0))


def test_ranking_matters_all_point_interpolation():
    gt = [truth([BOX_A, BOX_B], [0, 0])]
    # false positive ranked first: precisions 0, 1/2, 2/3 at recalls 0, 1/2, 1 -> envelope
    # 2/3 for both recall steps -> AP = 2/3
    pred = [det([[50, 50, 60, 60], BOX_A, BOX_B], [0.9, 0.8, 0.7], [0, 0, 0])]
    assert mean_average_precision(pred, gt) == pytest.approx(2 / 3)
    hits = np.array([False, True, True])
    assert average_precision(hits, np.array([0.9, 0.8, 0.7]), 2) == pytest.approx(2 / 3)


def test_empty_images_and_no_ground_truth():
    empty = truth(np.zeros((0, 4)), [])
    # an empty image among others changes nothing
    gt = [truth([BOX_A], [0]), empty]
    pred = [det([BOX_A], [0.9], [0]), det(np.zeros((0, 4)), [], [])]
    assert mean_average_precision(pred, gt) == pytest.approx(1.0)
    # a prediction on the empty image is a false positive ranked below the hit
    pred_fp = [det([BOX_A], [0.9], [0]), det([BOX_B], [0.5], [0])]
    assert mean_average_precision(pred_fp, gt) == pytest.approx(1.0)
    assert precision_recall_f1(pred_fp, gt, 0.3)[0] == pytest.approx(0.5)
    # nothing to find and nothing found: perfect; something found: 0
    assert mean_average_precision([det(np.zeros((0, 4)), [], [])], [empty]) == 1.0
    assert mean_average_precision([det([BOX_A], [0.9], [0])], [empty]) == 0.0


def test_class_without_ground_truth_is_left_out_of_the_mean():
    gt = [truth([BOX_A], [0])]
    # class 1 has no ground truth: its prediction does not lower class 0's AP and the
    # class is not averaged in
    pred = [det([BOX_A, BOX_B], [0.9, 0.95], [0, 1])]
    assert mean_average_precision(pred, gt) == pytest.approx(1.0)
    # but P/R/F1 count it as a false positive
    assert precision_recall_f1(pred, gt, 0.5)[0] == pytest.approx(0.5)
    # wrong class on the right box: a miss
    assert mean_average_precision([det([BOX_A], [0.9], [1])], gt) == 0.0


def test_score_threshold_filters_precision_recall_only():
    gt = [truth([BOX_A], [0])]
    pred = [det([BOX_A], [0.1], [0])]
    assert precision_recall_f1(pred, gt, 0.25) == (0.0, 0.0, 0.0)
    assert mean_average_precision(pred, gt) == pytest.approx(1.0)


def test_class_aware_nms():
    boxes = [BOX_A, [1, 0, 11, 10], BOX_A, BOX_B]
    kept = nms(det(boxes, [0.9, 0.8, 0.7, 0.6], [0, 0, 1, 0]), 0.5)
    # box 1 overlaps box 0 (IoU 0.82, same class): suppressed; box 2 is another class
    assert kept.scores.tolist() == [0.9, 0.7, 0.6]
    assert kept.labels.tolist() == [0, 1, 0]
    assert len(nms(det(boxes, [0.9, 0.8, 0.7, 0.6], [0, 0, 1, 0]), 0.5, 2)) == 2


def _greedy_one_at_a_time(detections: Detections, threshold: float, limit) -> Detections:
    """NMS from its definition: take boxes in score order, keep one unless a kept box of its
    class overlaps it with IoU > threshold, stop at ``limit`` kept."""
    order = np.argsort(-detections.scores, kind="stable")
    kept: list[int] = []
    for index in order:
        if limit is not None and len(kept) >= limit:
            break
        same = [k for k in kept if detections.labels[k] == detections.labels[index]]
        overlaps = box_iou(detections.boxes[index], detections.boxes[same])[0] if same else []
        if not np.any(np.asarray(overlaps) > threshold):
            kept.append(int(index))
    return detections.select(np.asarray(kept, dtype=np.int64))


@pytest.mark.parametrize("seed", range(12))
def test_blocked_nms_keeps_the_boxes_of_the_one_at_a_time_greedy(seed, monkeypatch):
    import onnxprune.evaluate.detection as detection

    monkeypatch.setattr(detection, "NMS_BLOCK", 16)  # several blocks and chunks per class
    monkeypatch.setattr(detection, "NMS_CHUNK_VALUES", 64)
    rng = np.random.default_rng(seed)
    count = int(rng.integers(0, 300))
    corners = rng.uniform(0, 100, (count, 2))
    sides = rng.uniform(0, 40, (count, 2))
    sides[: count // 5] *= rng.integers(0, 2, (count // 5, 1))  # some degenerate boxes
    detections = Detections(
        np.concatenate([corners, corners + sides], axis=1),
        np.round(rng.uniform(0, 1, count), 1),  # many ties: the order must stay stable
        rng.integers(0, int(rng.integers(1, 4)), count),
    )
    threshold = float(rng.choice([0.0, 0.3, 0.5, 0.9]))
    limit = None if seed % 3 else int(rng.integers(0, 40))
    fast, slow = (
        nms(detections, threshold, limit),
        _greedy_one_at_a_time(detections, threshold, limit),
    )
    assert fast.boxes.tolist() == slow.boxes.tolist()
    assert fast.scores.tolist() == slow.scores.tolist()
    assert fast.labels.tolist() == slow.labels.tolist()


def test_registered_names_and_vs_original_twins():
    for name in ("map50", "map50_95", "det_precision", "det_recall", "det_f1"):
        metric = get_metric(name)
        twin = get_metric(name + "_vs_original")
        assert metric.kind == twin.kind == "task"
        assert metric.task == "detect" and metric.unit == "%"
        assert metric.fn is twin.fn
    assert get_metric("map").name == "map50_95"
