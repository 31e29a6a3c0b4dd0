"""Text-encoder metrics on hand-built arrays, and the default-metric rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxprune.evaluate.embedding import (
    attention_mask,
    default_metric_name,
    embedding_cosine,
    mean_pool,
    nearest_neighbours,
    retrieval_agreement,
    token_agreement,
)
from onnxprune.evaluate.fidelity import NotApplicable
from onnxprune.evaluate.registry import get_metric


def test_mean_pool_ignores_masked_tokens() -> None:
    hidden = np.array([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]])  # [1, 3, 2]
    assert mean_pool(hidden, np.array([[1, 1, 0]])).tolist() == [[2.0, 1.0]]
    assert mean_pool(hidden).tolist() == [[104 / 3, 34.0]]
    assert mean_pool(hidden[:, 0]).tolist() == [[1.0, 0.0]]  # [N, H] is already pooled


def test_embedding_cosine_of_pooled_tokens() -> None:
    reference = np.array([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 2.0], [0.0, 2.0]]])
    candidate = np.array([[[1.0, 1.0], [1.0, 1.0]], [[0.0, 5.0], [9.0, 9.0]]])
    mask = np.array([[1, 1], [1, 0]])  # sample 1's second token is padding
    expected = (1 / math.sqrt(2) + 1.0) / 2
    assert embedding_cosine(candidate, reference, mask) == pytest.approx(expected)
    assert embedding_cosine(reference, reference) == pytest.approx(1.0)
    assert get_metric("sentence_cosine").fn is get_metric("embedding_cosine").fn


def test_retrieval_agreement_counts_same_nearest_neighbours() -> None:
    reference = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert nearest_neighbours(reference).tolist() == [1, 0, 3, 2]
    candidate = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 0.9], [0.9, 0.1]])
    # candidate neighbours: 0->3, 1->2, 2->1, 3->0: none agree
    assert retrieval_agreement(candidate, reference) == 0.0
    assert retrieval_agreement(reference * 3.0, reference) == 100.0
    with pytest.raises(NotApplicable):
        retrieval_agreement(reference[:2], reference[:2])


def test_token_agreement_skips_padding() -> None:
    reference = np.array([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]]])
    candidate = np.array([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    assert token_agreement(candidate, reference) == pytest.approx(100 / 3)
    assert token_agreement(candidate, reference, np.array([[1, 0, 0]])) == 100.0


def test_attention_mask_is_the_one_rank2_mask_input() -> None:
    mask = np.ones((2, 3), np.int64)
    assert attention_mask({"input_ids": mask, "attention_mask": mask}) is mask
    assert attention_mask({"input": np.ones((2, 3, 4))}) is None


@pytest.mark.parametrize(
    ("inputs", "outputs", "labels", "expected"),
    [
        (
            [("ids", np.int64, [None, None])],
            [("hidden", np.float32, [None, None, 8])],
            False,
            "embedding_cosine",
        ),
        (
            [("ids", np.int64, [None, None])],
            [("pooled", np.float32, [None, 8])],
            False,
            "embedding_cosine",
        ),
        (
            [("ids", np.int64, [None, None])],
            [("logits", np.float32, [None, 3])],
            False,
            "agreement",
        ),
        (
            [("ids", np.int64, [None, None])],
            [("logits", np.float32, [None, None, 9])],
            False,
            "token_agreement",
        ),
        (
            [("image", np.float32, [None, 3, 8, 8])],
            [("out", np.float32, [None, 10])],
            False,
            "agreement",
        ),
        (  # an 8-bit image is not token ids: a classifier, whatever its output is named
            [("image", np.uint8, [None, 8, 8, 3])],
            [("predictions", np.float32, [None, 10])],
            False,
            "agreement",
        ),
        (  # a uint8 token mask beside the ids still makes a text model
            [("ids", np.int64, [None, None]), ("mask", np.uint8, [None, None])],
            [("hidden", np.float32, [None, None, 8])],
            False,
            "embedding_cosine",
        ),
        (
            [("ids", np.int64, [None, None])],
            [("hidden", np.float32, [None, None, 8])],
            True,
            "top1",
        ),
    ],
)
def test_default_metric_name(inputs, outputs, labels, expected) -> None:
    assert default_metric_name(inputs, outputs, labels) == expected
