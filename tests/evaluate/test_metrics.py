"""Label metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate import get_metric
from onnxprune.evaluate.metrics import class_scores, f1, precision, recall, top1, top5

# predictions (argmax): [1, 0, 2, 2]; labels [1, 0, 1, 2]
SCORES = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
LABELS = np.array([1, 0, 1, 2])


def test_top1_is_share_of_correct_argmax():
    assert top1([SCORES], LABELS) == pytest.approx(75.0)


def test_macro_precision_recall_f1_by_hand():
    # class 0: TP 1, predicted 1, true 1 -> P 1, R 1
    # class 1: TP 1, predicted 1, true 2 -> P 1, R 1/2
    # class 2: TP 1, predicted 2, true 1 -> P 1/2, R 1
    assert precision([SCORES], LABELS) == pytest.approx(100 * (1 + 1 + 0.5) / 3)
    assert recall([SCORES], LABELS) == pytest.approx(100 * (1 + 0.5 + 1) / 3)
    f1_per_class = [1.0, 2 * 0.5 / 1.5, 2 * 0.5 / 1.5]
    assert f1([SCORES], LABELS) == pytest.approx(100 * sum(f1_per_class) / 3)


def test_class_only_predicted_counts_zero():
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])  # predictions [0, 1]
    labels = np.array([0, 0])
    # class 0: P 1, R 1/2; class 1 (never true): P 0, R 0
    assert precision([scores], labels) == pytest.approx(50.0)
    assert recall([scores], labels) == pytest.approx(25.0)
    assert f1([scores], labels) == pytest.approx(100 * (2 * 0.5 / 1.5) / 2)


def test_matches_scikit_learn_on_random_data():
    from sklearn.metrics import f1_score, precision_score, recall_score

    rng = np.random.default_rng(3)
    scores = rng.standard_normal((200, 7))
    labels = rng.integers(0, 7, 200)
    predictions = scores.argmax(1)
    for ours, theirs in ((precision, precision_score), (recall, recall_score), (f1, f1_score)):
        expected = 100 * theirs(labels, predictions, average="macro", zero_division=0)
        assert ours([scores], labels) == pytest.approx(expected)


def test_top5_counts_strictly_higher_classes():
    scores = np.tile(np.arange(7.0), (4, 1))  # class c has score c
    labels = np.array([1, 2, 6, 0])  # 5, 4, 0 and 6 classes score higher
    assert top5([scores], labels) == pytest.approx(50.0)


def test_top5_with_fewer_than_five_classes_is_100():
    assert top5([SCORES], LABELS) == pytest.approx(100.0)


def test_segmentation_maps_score_every_position_and_skip_negative_labels():
    scores = np.zeros((1, 2, 2, 2))
    scores[0, 1, 0, :] = 1.0  # top row predicts class 1, bottom row class 0
    labels = np.array([[[1, 0], [0, -1]]])  # 3 scored positions, 2 correct
    assert top1([scores], labels) == pytest.approx(100 * 2 / 3)


def test_trailing_unit_axes_and_one_hot_labels():
    scores = SCORES[:, :, None, None]
    assert top1([scores], LABELS) == pytest.approx(75.0)
    one_hot = np.eye(3)[LABELS]
    assert top1([SCORES], one_hot) == pytest.approx(75.0)


def test_bare_array_is_the_first_output():
    assert top1(SCORES, LABELS) == top1([SCORES, np.zeros(4)], LABELS)


def test_scores_are_the_first_float_output_of_rank_two_not_a_label_output():
    # skl2onnx classifiers: predicted label (N,) int64 first, probabilities (N, C) second
    predicted = SCORES.argmax(axis=1).astype(np.int64)
    assert top1([predicted, SCORES], LABELS) == top1([SCORES], LABELS)
    assert top5([predicted, SCORES], LABELS) == top5([SCORES], LABELS)
    maps = np.empty(4, dtype=object)
    maps[:] = [{0: 1.0}] * 4  # a ZipMap output: no tensor
    with pytest.raises(InputError, match=r"no output is a float tensor.*non-tensor values"):
        top1([predicted, maps], LABELS)


def test_errors_are_input_errors():
    with pytest.raises(InputError, match="needs labels"):
        top1([SCORES], None)
    with pytest.raises(InputError, match=r"3 classes$"):
        top1([SCORES], np.array([0, 1, 2, 3]))
    with pytest.raises(InputError, match=r"1 classes \(one output value: a regression\? give"):
        top1([np.zeros((4, 1))], np.array([0, 1, 2, 3]))
    with pytest.raises(InputError, match="shape"):
        top1([SCORES], np.array([0, 1]))
    with pytest.raises(InputError, match="class scores"):
        top1([np.zeros(4)], LABELS)


def test_aliases_and_unknown_names():
    assert get_metric("accuracy").name == "top1"
    assert get_metric("agreement").name == "top1_agreement"
    with pytest.raises(InputError, match="unknown metric 'nope'"):
        get_metric("nope")


def test_class_scores_flattens_positions():
    scores, labels = class_scores([np.zeros((2, 3, 4))], np.zeros((2, 4), dtype=np.int64))
    assert scores.shape == (8, 3) and labels.shape == (8,)
    assert not math.isnan(float(scores.sum()))
