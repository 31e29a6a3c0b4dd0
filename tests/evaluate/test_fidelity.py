"""Fidelity metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate.fidelity import (
    NotApplicable,
    cosine,
    kl_divergence,
    log_softmax,
    max_abs_error,
    max_rel_error,
    mean_abs_error,
    mean_rel_error,
    top1_agreement,
    top5_containment,
)


def test_top1_agreement_compares_argmax_over_axis_1():
    candidate = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])  # argmax 2, 0
    reference = np.array([[0.0, 1.0, 4.0], [1.0, 3.0, 2.0]])  # argmax 2, 1
    assert top1_agreement(candidate, reference) == pytest.approx(50.0)


def test_top1_agreement_on_maps_and_rank_1():
    reference = np.zeros((1, 2, 2, 2))
    reference[0, 1] = 1.0  # class 1 everywhere
    candidate = reference.copy()
    candidate[0, 0, 0, 0] = 5.0  # one of 4 positions flips to class 0
    assert top1_agreement(candidate, reference) == pytest.approx(75.0)
    assert top1_agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == pytest.approx(75.0)


def test_top5_containment():
    reference = np.zeros((3, 7))
    reference[:, 0] = 1.0  # reference top-1 is class 0 for every sample
    candidate = np.stack([np.arange(7.0), np.arange(7.0)[::-1], np.r_[2.0, 0, 0, 3, 4, 5, 6]])
    # class 0 has 6, 0 and 4 strictly higher classes -> contained in rows 2 and 3
    assert top5_containment(candidate, reference) == pytest.approx(100 * 2 / 3)


def test_cosine_per_sample_mean():
    candidate = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    reference = np.array([[1.0, 1.0], [0.0, -1.0], [0.0, 0.0]])
    # cos = 1/sqrt(2), -1, and 1 for two zero vectors
    assert cosine(candidate, reference) == pytest.approx((1 / math.sqrt(2) - 1 + 1) / 3)
    assert cosine(np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]])) == 0.0


def test_absolute_and_relative_errors():
    candidate = np.array([[1.0, 2.0], [3.0, 4.0]])
    reference = np.array([[1.0, 1.0], [1.0, -1.0]])
    # |diff| = 0, 1, 2, 5; |ref| = 1, 1, 1, 1
    assert max_abs_error(candidate, reference) == pytest.approx(5.0)
    assert mean_abs_error(candidate, reference) == pytest.approx(2.0)
    assert max_rel_error(candidate, reference) == pytest.approx(5.0)
    assert mean_rel_error(candidate, reference) == pytest.approx(2.0)
    reference2 = reference * 2  # |ref| max 2, mean 2; diffs 1, 0, 1, 6
    assert max_rel_error(candidate, reference2) == pytest.approx(6 / 2)
    assert mean_rel_error(candidate, reference2) == pytest.approx((1 + 0 + 1 + 6) / 4 / 2)
    zero = np.zeros((1, 2))
    assert max_rel_error(zero, zero) == 0.0
    assert max_rel_error(zero + 1, zero) == math.inf


def test_kl_divergence_of_softmax():
    reference = np.array([[0.0, math.log(3.0)]])  # P = [1/4, 3/4]
    candidate = np.array([[0.0, 0.0]])  # Q = [1/2, 1/2]
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert kl_divergence(candidate, reference) == pytest.approx(expected)
    assert kl_divergence(reference, reference) == pytest.approx(0.0, abs=1e-12)


def test_kl_over_channel_axis_of_maps_averages_positions():
    reference = np.zeros((1, 2, 1, 2))
    reference[0, 1, 0, 0] = math.log(3.0)  # position 0: P = [1/4, 3/4]; position 1: uniform
    candidate = np.zeros((1, 2, 1, 2))
    expected = (0.25 * math.log(0.5) + 0.75 * math.log(1.5) + 0.0) / 2
    assert kl_divergence(candidate, reference) == pytest.approx(expected)


def test_log_softmax_is_stable():
    rows = np.array([[1000.0, 1000.0]])
    assert np.allclose(log_softmax(rows), math.log(0.5))


def test_not_applicable_and_shape_mismatch():
    with pytest.raises(NotApplicable):
        kl_divergence(np.array([1, 2]), np.array([1, 2]))
    with pytest.raises(NotApplicable):
        top5_containment(np.zeros(3), np.zeros(3))
    with pytest.raises(InputError, match="shapes differ"):
        mean_abs_error(np.zeros((2, 3)), np.zeros((2, 4)))


def test_default_reference_metric_reads_what_the_output_holds():
    from onnxprune.evaluate.fidelity import default_reference_metric

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 6, 5))
    per_position = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)  # [N, T, C]
    assert default_reference_metric(per_position) == "token_agreement"
    assert default_reference_metric(logits) == "cosine"  # which axis is the class: unknown
    maps = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # distribution along axis 1
    assert default_reference_metric(maps) == "cosine"
    assert default_reference_metric(logits[:, 0]) == "expected_top1"
    assert default_reference_metric(np.arange(4)) == "top1_agreement"


def test_raw_per_position_logits_of_a_linear_head_are_compared_per_position():
    """A CTC recognizer exported without its softmax ([T, N, C] logits around an offset, which
    the variation rule alone reads as a regression): the graph's linear head says what the
    last axis is."""
    from onnxprune.evaluate.fidelity import TOKEN_CLASSES_MIN, default_reference_metric

    rng = np.random.default_rng(2)
    logits = 20.0 + rng.standard_normal((40, 1, 30))  # mostly offset: varying share < 0.1
    assert default_reference_metric(logits) == "r2"
    assert default_reference_metric(logits, linear_head=30) == "token_agreement"
    assert default_reference_metric(logits, linear_head=60) == "r2"  # last axis is not the head's
    boxes = 20.0 + rng.standard_normal((40, 1, 4))  # a regression head: too few "classes"
    assert TOKEN_CLASSES_MIN > 4
    assert default_reference_metric(boxes, linear_head=4) == "r2"
    scores = rng.standard_normal((40, 3, 30))
    maps = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)  # axis 1 a distribution
    assert default_reference_metric(maps, linear_head=30) != "token_agreement"


def test_r2_hand_computed():
    from onnxprune.evaluate.fidelity import explained_variance

    reference = np.array([[1.0, 10.0], [3.0, 14.0]])  # means 2, 12; spread 1+1+4+4 = 10
    candidate = reference + np.array([[1.0, 0.0], [0.0, -2.0]])  # error 1 + 4 = 5
    assert explained_variance(candidate, reference) == pytest.approx(100 * (1 - 5 / 10))
    assert explained_variance(reference, reference) == 100.0
    one = reference[:1]  # one sample: nothing varies, the denominator is the energy 101
    assert explained_variance(one + 1, one) == pytest.approx(100 * (1 - 2 / 101))


def test_r2_sees_an_error_that_cosine_does_not():
    """Landmarks around a common offset: a few pixels of error leave the cosine near 1."""
    from onnxprune.evaluate.fidelity import cosine, explained_variance

    rng = np.random.default_rng(1)
    layout = rng.uniform(60, 130, size=(1, 200))  # where the points sit in every sample
    reference = layout + rng.normal(0, 8, size=(32, 200))  # how they move between samples
    candidate = reference + rng.normal(0, 6, size=reference.shape)
    assert cosine(candidate, reference) > 0.99
    assert explained_variance(candidate, reference) < 60


def test_default_metric_of_offset_outputs_and_embeddings():
    from onnxprune.evaluate.fidelity import default_reference_metric, varying_share

    rng = np.random.default_rng(2)
    mesh = rng.uniform(60, 130, size=(1, 1, 1, 63)) + rng.normal(0, 8, size=(16, 1, 1, 63))
    assert varying_share(mesh) < 0.05
    assert default_reference_metric(mesh) == "r2"  # a face mesh [N, 1, 1, 3k]
    head = rng.uniform(0, 320, size=(1, 22, 50)) + rng.normal(0, 2, size=(16, 22, 50))
    assert default_reference_metric(head) == "r2"
    assert varying_share(mesh[:1]) is None  # one sample says nothing about variation
    assert default_reference_metric(mesh[:1]) == "cosine"
    # synthesized inputs: a model shown noise barely varies, which says nothing
    assert default_reference_metric(mesh, read_variation=False) == "cosine"
    # (N, C) stays class scores even when it varies little: a classifier shown one class
    one_class = np.array([8.0, -1, -2, 0, -3])[None] + rng.normal(0, 0.3, size=(16, 5))
    assert varying_share(one_class) < 0.25
    assert default_reference_metric(one_class) == "expected_top1"
    logits = rng.normal(size=(16, 1000))
    assert default_reference_metric(logits) == "expected_top1"
    unit = logits / np.linalg.norm(logits, axis=1, keepdims=True)  # a normalized embedding
    assert default_reference_metric(unit) == "cosine"


def test_an_embedding_head_is_guarded_by_cosine():
    from onnxprune.evaluate.fidelity import default_reference_metric

    features = np.random.default_rng(3).normal(size=(16, 128))  # not normalized: looks like logits
    assert default_reference_metric(features) == "expected_top1"
    assert default_reference_metric(features, embedding_head=True) == "cosine"
