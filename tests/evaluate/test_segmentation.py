"""Segmentation metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate import get_metric
from onnxprune.evaluate.segmentation import (
    binary_iou_f1,
    confusion_matrix,
    mean_iou,
    miou,
    per_class_iou,
    pixel_accuracy,
)

TRUTH = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]]])
PRED = np.array([[[0, 0, 1, 0], [0, 1, 1, 1], [2, 2, 2, 0]]])


def test_per_class_iou_by_hand():
    # class 0: TP 3, pred 5, true 4 -> union 6 -> 1/2
    # class 1: TP 3, pred 4, true 4 -> union 5 -> 3/5
    # class 2: TP 3, pred 3, true 4 -> union 4 -> 3/4
    assert per_class_iou(PRED, TRUTH) == pytest.approx({0: 1 / 2, 1: 3 / 5, 2: 3 / 4})
    assert mean_iou(PRED, TRUTH) == pytest.approx((1 / 2 + 3 / 5 + 3 / 4) / 3)
    assert miou(PRED, TRUTH) == pytest.approx(100 * (1 / 2 + 3 / 5 + 3 / 4) / 3)
    assert pixel_accuracy(PRED, TRUTH) == pytest.approx(100 * 9 / 12)
    assert confusion_matrix(PRED, TRUTH).sum() == 12


def test_perfect_and_ignored_pixels():
    assert miou(TRUTH, TRUTH) == pytest.approx(100.0)
    ignored = TRUTH.copy()
    ignored[0, 2] = 255  # the whole class-2 row ignored; class 2 only predicted nowhere else
    pred = PRED.copy()
    pred[0, 2] = 1  # wrong, but ignored
    # rows 0-1 only: class 0 TP 3, pred 4, true 4 -> 3/5; class 1 TP 3, pred 4, true 4 -> 3/5
    assert per_class_iou(pred, ignored) == pytest.approx({0: 3 / 5, 1: 3 / 5})
    assert pixel_accuracy(pred, np.where(ignored == 255, -1, ignored)) == pytest.approx(75.0)


def test_class_absent_everywhere_is_not_averaged():
    truth = np.zeros((1, 2, 2), dtype=int)
    pred = np.array([[[0, 0], [0, 3]]])
    # class 0: TP 3, union 4; class 3: TP 0, union 1 -> (3/4 + 0) / 2; classes 1, 2 absent
    assert mean_iou(pred, truth) == pytest.approx(3 / 8)


def test_binary_iou_and_f1():
    truth = np.array([[[1, 1, 0, 0]]])
    pred = np.array([[[1, 0, 1, 0]]])
    iou, f1 = binary_iou_f1(pred, truth)
    assert iou == pytest.approx(1 / 3) and f1 == pytest.approx(0.5)
    assert binary_iou_f1(np.zeros((1, 2, 2)), np.zeros((1, 2, 2))) == (1.0, 1.0)


def test_shape_mismatch_is_one_line_input_error():
    with pytest.raises(InputError, match=r"masks have shape \(1, 3, 3\)"):
        miou(PRED, np.zeros((1, 3, 3), dtype=int))


def test_registered():
    for name in ("miou", "pixel_accuracy", "mask_iou", "mask_f1"):
        assert get_metric(name).task == "segment"
        assert get_metric(name + "_vs_original").fn is get_metric(name).fn
