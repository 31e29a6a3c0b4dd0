"""Decoders on hand-built outputs; wrong layouts give one-line errors naming the outputs."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate.decoders import get_decoder
from onnxprune.evaluate.tasks import TaskSpec

DETECT = TaskSpec("detect", "yolov8")


def yolov8_head() -> np.ndarray:
    """1 image, 2 classes, 3 anchors: a box at (10, 10, 20, 20) class 1 (0.9), a duplicate of
    it (0.6) and a low-score anchor (0.0005)."""
    rows = np.array(
        [
            [15, 15, 10, 10, 0.1, 0.9],
            [15.5, 15, 10, 10, 0.2, 0.6],
            [40, 40, 8, 8, 0.0005, 0.0001],
        ],
        dtype=np.float32,
    )
    return rows.T[None]  # [1, 4 + C, A]


def test_yolov8_decodes_centres_thresholds_and_nms():
    (image,) = get_decoder("yolov8")([yolov8_head()], ["output0"], DETECT)
    assert image.boxes.tolist() == [[10, 10, 20, 20]]
    assert image.labels.tolist() == [1] and image.scores == pytest.approx([0.9])


def test_yolov5_multiplies_objectness():
    rows = np.array([[[15, 15, 10, 10, 0.5, 0.2, 0.8]]], dtype=np.float32)
    (image,) = get_decoder("yolov5")([rows], None, DETECT)
    assert image.scores == pytest.approx([0.4]) and image.labels.tolist() == [1]
    assert image.boxes.tolist() == [[10, 10, 20, 20]]


def test_boxes_scores_two_outputs():
    boxes = np.array([[[0, 0, 4, 4], [10, 10, 12, 12]]], dtype=np.float32)
    scores = np.array([[[0.1, 0.7], [0.9, 0.05]]], dtype=np.float32)
    (image,) = get_decoder("boxes-scores")([boxes, scores], ["boxes", "scores"], DETECT)
    assert image.labels.tolist() == [0, 1] and image.scores == pytest.approx([0.9, 0.7])


def test_decoded_table_and_separate_outputs_with_count():
    table = np.array([[[1, 2, 3, 4, 0.8, 2], [0, 0, 0, 0, 0, -1]]], dtype=np.float32)
    (image,) = get_decoder("decoded")([table], ["dets"], DETECT)
    assert image.boxes.tolist() == [[1, 2, 3, 4]] and image.labels.tolist() == [2]
    count = np.array([[1]], dtype=np.int64)
    boxes = np.array([[[1, 2, 3, 4], [5, 6, 7, 8]]], dtype=np.float32)
    scores = np.array([[0.8, 0.7]], dtype=np.float32)
    labels = np.array([[0, 1]], dtype=np.int64)
    (image,) = get_decoder("decoded")([count, boxes, scores, labels], None, DETECT)
    assert len(image) == 1 and image.labels.tolist() == [0]


def test_segmentation_decoders():
    spec = TaskSpec("segment", "logits", mask_threshold=0.5)
    logits = np.zeros((1, 3, 2, 2), dtype=np.float32)
    logits[0, 2, 0, 0] = 1.0
    logits[0, 1, 1, 1] = 1.0
    assert get_decoder("logits")([logits], None, spec).tolist() == [[[2, 0], [0, 1]]]
    probability = np.array([[[[0.2, 0.7], [0.5, 0.1]]]], dtype=np.float32)
    assert get_decoder("probability")([probability], None, spec).tolist() == [[[0, 1], [1, 0]]]
    assert get_decoder("binary-logits")([np.array([[[-1.0, 2.0]]])], None, spec).tolist() == [
        [[0, 1]]
    ]


@pytest.mark.parametrize(
    ("decoder", "outputs"),
    [
        ("yolov8", [np.zeros((1, 84, 8400, 1))]),
        ("yolov5", [np.zeros((1, 10, 4))]),
        ("boxes-scores", [np.zeros((1, 10, 4))]),
        ("decoded", [np.zeros((1, 10, 5))]),
        ("logits", [np.zeros((1, 1, 8, 8))]),
        ("probability", [np.zeros((1, 3, 8, 8))]),
    ],
)
def test_wrong_decoder_names_outputs_and_shapes(decoder, outputs):
    task = "segment" if decoder in ("logits", "probability") else "detect"
    spec = TaskSpec(task, decoder)
    names = [f"out{i}" for i in range(len(outputs))]
    with pytest.raises(InputError) as error:
        get_decoder(decoder)(outputs, names, spec)
    message = str(error.value)
    assert "\n" not in message and f"decoder '{decoder}'" in message
    assert f"out0 {list(outputs[0].shape)}" in message


def test_probability_outside_unit_interval_points_to_binary_logits():
    spec = TaskSpec("segment", "probability")
    with pytest.raises(InputError, match="binary-logits"):
        get_decoder("probability")([np.full((1, 1, 2, 2), 3.0)], ["maps"], spec)


def test_unknown_decoder_and_task_mismatch():
    with pytest.raises(InputError, match="unknown detect decoder 'logits'"):
        TaskSpec("detect", "logits")
    with pytest.raises(InputError, match="unknown task"):
        TaskSpec("classify", "yolov8")


def test_signatures_recognize_yolo_and_ssd_heads_by_their_anchor_counts():
    from onnxprune.evaluate.decoders import recognized_decoders

    def names(arrays, size):
        return [decoder.name for decoder, _ in recognized_decoders(arrays, size)]

    cells = 40 * 40 + 20 * 20 + 10 * 10  # strides 8, 16, 32 at 320 × 320
    assert names([np.zeros((1, 4 + 80, cells))], (320, 320)) == ["yolov8"]
    (_, match), *_ = recognized_decoders([np.zeros((1, 22, cells))], (320, 320))
    assert "4 + 18" in match and "strides 8, 16, 32" in match
    p6 = cells + 5 * 5  # a P3–P6 head adds stride 64
    assert names([np.zeros((1, 84, p6))], (320, 320)) == ["yolov8"]
    assert names([np.zeros((1, 84, cells + 1))], (320, 320)) == []  # not a sum of cells
    assert names([np.zeros((1, 84, cells))], (640, 640)) == []  # other input size
    odd = 27 * 32 + 14 * 16 + 7 * 8  # ⌈H/s⌉·⌈W/s⌉ for 212 × 250
    assert names([np.zeros((2, 6, odd))], (212, 250)) == ["yolov8"]
    assert names([np.zeros((1, 3 * cells, 85)), np.zeros((1, 3, 40, 40, 85))], (320, 320)) == [
        "yolov5"
    ]
    assert names([np.zeros((1, 3000, 4)), np.zeros((1, 3000, 91))], (300, 300)) == ["boxes-scores"]
    assert names([np.zeros((1, 1000))], (224, 224)) == []  # class scores
    assert names([np.zeros((1, 84, cells))], None) == []  # no image input


def test_a_probability_map_at_the_input_size_is_recognized_and_other_maps_are_not():
    from onnxprune.evaluate.decoders import recognized_decoders

    def names(arrays, size):
        return [decoder.name for decoder, _ in recognized_decoders(arrays, size)]

    mask = np.random.default_rng(0).random((2, 1, 32, 48)).astype(np.float32)
    assert names([mask], (32, 48)) == ["probability"]
    assert names([mask[:, 0]], (32, 48)) == ["probability"]
    assert names([mask], (64, 96)) == []  # not at the input size
    assert names([mask * 4 - 2], (32, 48)) == []  # logits or depth, not probabilities
    assert names([np.full((2, 1, 32, 48), 0.5, np.float32)], (32, 48)) == []  # constant
    assert names([np.concatenate([mask] * 3, axis=1)], (32, 48)) == []  # an image out
