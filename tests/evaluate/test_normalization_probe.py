"""The normalization probe: mutual information of photo and predicted class under candidate
pixel normalizations, and the note an image folder gets when another one is clearly better."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from onnxprune.evaluate.data import calibration_data, load_data
from onnxprune.evaluate.normalization_probe import (
    CANDIDATES,
    FED,
    MIN_GAIN,
    ProbeResult,
    as_probabilities,
    mutual_information,
    normalization_note,
    photo_classifier,
    probe_normalizations,
    renormalized,
)

COLOURS = [
    (230, 30, 30),
    (30, 200, 40),
    (40, 60, 220),
    (240, 230, 50),
    (20, 20, 20),
    (200, 90, 210),
]
CAFFE = next(c for c in CANDIDATES if c.channel_order == "BGR")
IMAGENET = next(c for c in CANDIDATES if "ImageNet" in c.label)


def _expected_input(colour, normalization) -> np.ndarray:
    """What a model trained with ``normalization`` is fed for a flat image of ``colour``."""
    fed = np.asarray(colour, dtype=np.float64).reshape(1, 3, 1, 1) / 255
    return renormalized(fed, 1 / 255, "RGB", "NCHW", normalization).reshape(3)


def _centroid_classifier(normalization, batch: int | str = "N") -> onnx.ModelProto:
    """A nearest-centroid classifier over the mean colour, one class per colour of COLOURS, its
    centroids placed where ``normalization`` puts them, and a last "none of these" class whose
    logit stands for a distance of half the closest two centroids: confident and distinct only
    when fed that way (inputs scaled or shifted away land in "none")."""
    centroids = np.stack([_expected_input(c, normalization) for c in COLOURS]).astype(np.float32)
    spread = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    beta = np.float32(4.0 / np.square(spread[spread > 0].min()))
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "one"], ["rows"]),
        helper.make_node("Sub", ["rows", "centroids"], ["diff"]),
        helper.make_node("Mul", ["diff", "diff"], ["square"]),
        helper.make_node("ReduceSum", ["square", "two"], ["distance"], keepdims=0),
        helper.make_node("Mul", ["distance", "minus_beta"], ["known"]),
        helper.make_node("Shape", ["known"], ["known_shape"]),
        helper.make_node("Slice", ["known_shape", "zero", "one"], ["rows_count"]),
        helper.make_node("Concat", ["rows_count", "one"], ["none_shape"], axis=0),
        helper.make_node("Expand", ["none_logit", "none_shape"], ["none"]),
        helper.make_node("Concat", ["known", "none"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "centroids",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, len(COLOURS) + 1])],
        [
            numpy_helper.from_array(np.array([1], np.int64), "one"),
            numpy_helper.from_array(np.array([2], np.int64), "two"),
            numpy_helper.from_array(centroids[None], "centroids"),
            numpy_helper.from_array(np.array(-beta, np.float32), "minus_beta"),
            numpy_helper.from_array(np.array([0], np.int64), "zero"),
            numpy_helper.from_array(
                np.array([[-beta * np.square(spread[spread > 0].min() / 2)]], np.float32),
                "none_logit",
            ),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _photos(root):
    root.mkdir()
    for index, colour in enumerate(COLOURS):
        Image.new("RGB", (6, 6), colour).save(root / f"{index}.png")
    return root


SPECS = [("input", np.dtype(np.float32), ["N", 3, 4, 4])]


def _probe_notes(data) -> list[str]:
    return [note for note in data.notes if "informative" in note]


def test_mutual_information_of_distinct_constant_and_unsure_predictions():
    assert mutual_information(np.eye(4)) == pytest.approx(math.log(4))
    confident_same = np.tile([[0.97, 0.01, 0.01, 0.01]], (4, 1))
    assert mutual_information(confident_same) == pytest.approx(0.0, abs=1e-12)
    assert mutual_information(np.full((4, 4), 0.25)) == pytest.approx(0.0, abs=1e-12)


def test_scores_become_probabilities_only_for_one_vector_per_image():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]], np.float32)
    assert np.allclose(as_probabilities(logits).sum(axis=1), 1)
    assert as_probabilities(logits)[0, 0] == pytest.approx(1 / (1 + math.exp(-2)))
    simplex = np.array([[0.2, 0.8], [1.0, 0.0]], np.float32)
    assert np.array_equal(as_probabilities(simplex), simplex)
    assert as_probabilities(logits.reshape(2, 2, 1, 1)).shape == (2, 2)
    assert as_probabilities(np.zeros((2, 2, 3, 3), np.float32)) is None  # a dense map
    assert as_probabilities(np.zeros((2, 1), np.float32)) is None  # one value: no classes
    assert as_probabilities(np.zeros((2, 3), np.int64)) is None


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_renormalized_applies_each_candidate_to_the_raw_pixels(layout):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(2, 3, 4, 5)).astype(np.float64)  # RGB, NCHW
    fed = pixels / 255
    if layout == "NHWC":
        fed = fed.transpose(0, 2, 3, 1)
    imagenet = renormalized(fed, 1 / 255, "RGB", layout, IMAGENET)
    caffe = renormalized(fed, 1 / 255, "RGB", layout, CAFFE)
    if layout == "NHWC":
        imagenet, caffe = imagenet.transpose(0, 3, 1, 2), caffe.transpose(0, 3, 1, 2)
    mean = np.array(IMAGENET.mean).reshape(1, 3, 1, 1)
    std = np.array(IMAGENET.std).reshape(1, 3, 1, 1)
    assert np.allclose(imagenet, (pixels / 255 - mean) / std, atol=1e-5)
    expected = (pixels - np.array(CAFFE.mean).reshape(1, 3, 1, 1))[:, ::-1]  # BGR
    assert np.allclose(caffe, expected, atol=1e-3)
    # images fed in BGR order are turned back to RGB first
    bgr_fed = np.flip(fed, axis=1 if layout == "NCHW" else -1)
    again = renormalized(bgr_fed, 1 / 255, "BGR", layout, IMAGENET)
    assert np.allclose(again, renormalized(fed, 1 / 255, "RGB", layout, IMAGENET))


def test_the_note_needs_a_clear_gain_over_the_fed_normalization():
    def result(values):
        return ProbeResult(dict(zip([c.label for c in CANDIDATES], values, strict=True)), 6)

    assert normalization_note(None) == ""
    assert normalization_note(result([1.4, 1.0, 0.2, 0.1, 0.1])) == ""  # fed is best
    assert normalization_note(result([1.40, 1.45, 1.42, 0.8, 1.2])) == ""  # within tolerance
    small = result([0.05, 0.05 + MIN_GAIN * 0.9, 0.0, 0.0, 0.0])
    assert normalization_note(small) == ""  # ratio large, gain under MIN_GAIN
    note = normalization_note(result([0.11, 0.6, 0.2, 1.1, 1.46]))
    assert "Caffe" in note and 'channel_order = "BGR"' in note and "scale = 1," in note
    assert "std" not in note.split("put ")[1]  # a std of 1 is not written out
    assert "1.46 nats, against 0.11 as fed" in note and "not applied" in note


def test_probe_ranks_the_normalization_the_model_was_built_for():
    fed = np.stack(
        [np.full((3, 4, 4), 1.0) * np.reshape(c, (3, 1, 1)) / 255 for c in COLOURS]
    ).astype(np.float32)
    for expected in CANDIDATES:
        result = probe_normalizations(
            photo_classifier(_centroid_classifier(expected)), fed, 1 / 255, "RGB", "NCHW"
        )
        assert result.best() is expected, (expected.label, result.information)
        others = [v for label, v in result.information.items() if label != expected.label]
        assert result.information[expected.label] > max(others) + MIN_GAIN


def test_an_image_folder_gets_the_note_only_when_another_normalization_is_clearly_better(
    tmp_path,
):
    photos = _photos(tmp_path / "photos")
    caffe_model = _centroid_classifier(CAFFE)
    data = load_data(photos, SPECS, classify=photo_classifier(caffe_model))
    (note,) = _probe_notes(data)
    assert "Caffe normalization" in note and "6 of these photos" in note
    # the loader without a model, and a model fed as it expects, get no probe note
    assert _probe_notes(load_data(photos, SPECS)) == []
    assert (
        _probe_notes(load_data(photos, SPECS, classify=photo_classifier(_centroid_classifier(FED))))
        == []
    )
    # a spec that states a normalization is not second-guessed
    (photos / "preprocess.toml").write_text(
        'scale = 1.0\nmean = [123.68, 116.779, 103.939]\nchannel_order = "BGR"\n'
    )
    assert _probe_notes(load_data(photos, SPECS, classify=photo_classifier(caffe_model))) == []
    (photos / "preprocess.toml").write_text('channel_order = "BGR"\n')  # a choice made: no probe
    assert _probe_notes(load_data(photos, SPECS, classify=photo_classifier(caffe_model))) == []


def test_calibration_data_probes_with_the_model(tmp_path):
    photos = _photos(tmp_path / "photos")
    data = calibration_data(str(photos), _centroid_classifier(IMAGENET), batch_size=4)
    (note,) = _probe_notes(data)
    assert "ImageNet" in note and "mean = [0.485, 0.456, 0.406]" in note


def test_a_fixed_batch_runs_one_image_at_a_time_and_other_models_are_not_probed():
    model = _centroid_classifier(FED, batch=1)
    batch = np.zeros((3, 3, 4, 4), np.float32)
    assert photo_classifier(model)(batch).shape == (3, len(COLOURS) + 1)
    two_inputs = _centroid_classifier(FED)
    two_inputs.graph.input.append(helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1]))
    assert photo_classifier(two_inputs) is None


def test_a_model_that_refuses_the_batch_leaves_the_probe_silent():
    refusing = photo_classifier(_centroid_classifier(FED, batch=2))  # a batch of 2 only
    assert refusing(np.zeros((3, 3, 4, 4), np.float32)).shape == (2, len(COLOURS) + 1)
    assert refusing(np.zeros((1, 3, 4, 4), np.float32)).shape == (0, 0)  # tail left out
    wrong_size = np.zeros((6, 3, 5, 5), np.float32)  # the model takes 4 × 4
    assert photo_classifier(_centroid_classifier(FED))(wrong_size) is None
    assert (
        probe_normalizations(
            photo_classifier(_centroid_classifier(FED)), wrong_size, 1 / 255, "RGB", "NCHW"
        )
        is None
    )
