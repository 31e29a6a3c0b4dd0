"""Task specs, binding task metrics, scoring against ground truth and the original model."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate.tasks import (
    TaskSpec,
    bind_task_metric,
    make_task_spec,
    resize_nearest,
    score_task,
    task_values,
)

DETECT = TaskSpec("detect", "yolov8")
SEGMENT = TaskSpec("segment", "logits")


def head(rows) -> list[np.ndarray]:
    """yolov8 output [1, 4 + 2, A] from rows (cx, cy, w, h, s0, s1)."""
    return [np.array(rows, dtype=np.float32).T[None]]


GOOD = head([[15, 15, 10, 10, 0.9, 0.0], [45, 45, 10, 10, 0.0, 0.8]])
HALF = head([[15, 15, 10, 10, 0.9, 0.0], [45, 45, 10, 10, 0.0, 0.1]])  # 2nd below 0.25
TARGETS = {
    "boxes": np.array([[[10, 10, 20, 20], [40, 40, 50, 50]]], dtype=np.float32),
    "box_labels": np.array([[0, 1]]),
}


def test_map_against_ground_truth_and_against_the_original():
    map50 = bind_task_metric("map50", DETECT)
    assert score_task(map50, GOOD, None, TARGETS) == pytest.approx(100.0)
    f1 = bind_task_metric("det_f1", DETECT)
    # the second box scores 0.1 < 0.25: TP 1, FN 1 -> P 1, R 1/2
    assert score_task(f1, HALF, None, TARGETS) == pytest.approx(100 * 2 / 3)
    # against the original: the original's boxes of score >= 0.25 are the truth
    vs = bind_task_metric("det_f1_vs_original", DETECT)
    assert score_task(vs, GOOD, GOOD, {}) == pytest.approx(100.0)
    assert score_task(vs, HALF, GOOD, {}) == pytest.approx(100 * 2 / 3)


def test_default_metric_depends_on_ground_truth():
    assert bind_task_metric(None, DETECT, TARGETS).name == "map50"
    assert bind_task_metric(None, DETECT, {}).name == "map50_vs_original"
    assert bind_task_metric(None, SEGMENT, {"masks": np.zeros((1, 2, 2))}).name == "miou"
    binary = TaskSpec("segment", "probability")
    assert bind_task_metric(None, binary, {}).name == "mask_iou_vs_original"


def test_errors_are_one_line_and_actionable():
    with pytest.raises(InputError, match="needs ground-truth boxes"):
        score_task(bind_task_metric("map50", DETECT), GOOD, GOOD, {})
    with pytest.raises(InputError, match="is a segment metric but --task is detect"):
        bind_task_metric("miou", DETECT)
    from onnxprune.evaluate import get_metric

    with pytest.raises(InputError, match="give --task detect"):
        score_task(get_metric("map50"), GOOD, GOOD, TARGETS)
    with pytest.raises(InputError, match="needs --decoder"):
        make_task_spec("detect", None)
    with pytest.raises(InputError, match="score-threshold must be in"):
        make_task_spec("detect", "yolov8", score_threshold=1.5)
    assert make_task_spec(None, None) is None


def test_segmentation_values_with_per_class_iou_and_resize():
    logits = np.zeros((1, 3, 2, 2), dtype=np.float32)
    logits[0, 1, 0, :] = 1.0  # top row class 1, bottom row class 0
    masks = np.zeros((1, 4, 4), dtype=np.int64)
    masks[0, :2] = 1
    # predictions are 2x2, masks 4x4: nearest resize makes them equal
    values = task_values(SEGMENT, [logits], {"masks": masks}, reference=[logits])
    assert values["miou"] == pytest.approx(100.0)
    assert values["miou_vs_original"] == pytest.approx(100.0)
    assert values["iou_class_1"] == pytest.approx(100.0)
    assert "mask_iou" not in values
    assert resize_nearest(np.array([[[1, 2], [3, 4]]]), (4, 4))[0, 3].tolist() == [3, 3, 4, 4]


def test_detection_values_names():
    values = task_values(DETECT, GOOD, TARGETS, reference=HALF)
    assert values["map50"] == pytest.approx(100.0)
    assert set(values) >= {"map50_95", "det_f1", "map50_vs_original"}


def images(*outputs) -> list[np.ndarray]:
    """One yolov8 output for several images (each from :func:`head`)."""
    return [np.concatenate([output[0] for output in outputs])]


# a detector shown photos without its classes: no box reaches the 0.25 score threshold
QUIET = images(
    head([[15, 15, 10, 10, 0.05, 0.0], [45, 45, 10, 10, 0.0, 0.04]]),
    head([[30, 30, 8, 8, 0.0, 0.06], [5, 5, 4, 4, 0.02, 0.0]]),
)


def test_pseudo_truth_threshold_is_lowered_when_the_original_finds_too_few_boxes():
    from onnxprune.evaluate.tasks import decode, reference_threshold

    # 2 images want 2 boxes: the second best score (0.05) becomes the threshold
    assert reference_threshold(DETECT, decode(DETECT, QUIET)) == pytest.approx(0.05)
    # enough confident boxes: the declared threshold stays
    assert reference_threshold(DETECT, decode(DETECT, GOOD)) == pytest.approx(0.25)


def test_the_original_against_itself_scores_100_even_without_confident_boxes():
    values = task_values(DETECT, QUIET, reference=QUIET)
    names = ["map50", "map50_95", "det_precision", "det_recall", "det_f1"]
    for name in names:
        assert values[name + "_vs_original"] == pytest.approx(100.0), name
        metric = bind_task_metric(name + "_vs_original", DETECT)
        assert score_task(metric, QUIET, QUIET, {}) == pytest.approx(100.0), name


def test_a_candidate_that_loses_the_originals_best_boxes_scores_lower():
    swapped = images(  # the confident boxes of the original now score lowest
        head([[15, 15, 10, 10, 0.01, 0.0], [45, 45, 10, 10, 0.0, 0.04]]),
        head([[30, 30, 8, 8, 0.0, 0.01], [5, 5, 4, 4, 0.06, 0.0]]),
    )
    values = task_values(DETECT, swapped, reference=QUIET)
    assert values["det_recall_vs_original"] == pytest.approx(0.0)
    # each class: a false positive ranks above its one true positive -> AP 1/2
    assert values["map50_vs_original"] == pytest.approx(50.0)


def test_check_reference_notes_the_lowered_threshold_and_refuses_an_empty_original():
    from onnxprune.evaluate.tasks import check_reference

    assert check_reference(DETECT, GOOD, "d.npz") is None
    note = check_reference(DETECT, QUIET, "d.npz")
    assert "0 box(es) of score >= 0.25 on d.npz (2 images)" in note and ">= 0.05" in note
    silent = images(head([[15, 15, 10, 10, 0.0001, 0.0]]))
    with pytest.raises(InputError, match=r"detects no box of score >= 0\.001 on d\.npz"):
        check_reference(DETECT, silent, "d.npz")
    assert check_reference(SEGMENT, [np.zeros((1, 2, 2, 2), np.float32)], "d.npz") is None
    binary = TaskSpec("segment", "probability")
    with pytest.raises(InputError, match=r"marks no foreground pixel on d\.npz"):
        check_reference(binary, [np.zeros((1, 1, 4, 4), np.float32)], "d.npz")
    assert check_reference(binary, [np.full((1, 1, 4, 4), 0.9, np.float32)], "d.npz") is None
