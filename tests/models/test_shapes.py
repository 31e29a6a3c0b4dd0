"""The shipped shapes detector and segmenter: task metrics re-measured with onnxruntime and
onnxprune's numpy metrics (no torch), and the generator's boxes and masks."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from models.shapes import ARTIFACT_DIR, data
from onnxprune.evaluate.tasks import TaskSpec, task_values

METRICS = json.loads((ARTIFACT_DIR / "metrics.json").read_text())
TEST = ARTIFACT_DIR / "shapes_test.npz"
CALIB = ARTIFACT_DIR / "shapes_calib.npz"


def outputs(name: str, images: np.ndarray) -> list[np.ndarray]:
    path = ARTIFACT_DIR / f"{name}.onnx"
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images})


def test_detector_map50_at_least_80_and_matches_metrics():
    entry = METRICS["models"]["shapes_detector"]
    test = np.load(TEST)
    spec = TaskSpec(
        "detect",
        "yolov8",
        score_threshold=entry["score_threshold"],
        nms_iou=entry["iou_threshold"],
    )
    targets = {"boxes": test["boxes"], "box_labels": test["box_labels"]}
    values = task_values(spec, outputs("shapes_detector", test["images"]), targets)
    assert values["map50"] >= 80.0
    assert values["map50"] == pytest.approx(entry["test"]["map50"], abs=1e-6)


def test_segmenter_miou_at_least_80_and_matches_metrics():
    entry = METRICS["models"]["shapes_segmenter"]
    test = np.load(TEST)
    values = task_values(
        TaskSpec("segment", "logits"),
        outputs("shapes_segmenter", test["images"]),
        {"masks": test["masks"]},
    )
    assert values["miou"] >= 80.0
    assert values["miou"] == pytest.approx(entry["test"]["miou"], abs=1e-6)


def test_splits_are_small_disjoint_and_consistent():
    for path in (TEST, CALIB, *ARTIFACT_DIR.glob("*.onnx")):
        assert path.stat().st_size < 2 * 1024 * 1024, path.name
    test, calib = np.load(TEST), np.load(CALIB)
    seen = {row.tobytes() for row in test["images"]}
    assert not any(row.tobytes() in seen for row in calib["images"])
    assert test["boxes"].shape[1:] == (data.MAX_OBJECTS, 4)
    assert test["masks"].shape[1:] == (data.SIZE, data.SIZE)


def test_generator_is_deterministic_and_boxes_are_tight_around_masks():
    first, second = data.generate(4, 123), data.generate(4, 123)
    assert np.array_equal(first.images, second.images)
    for index in range(4):
        for box, label in zip(first.boxes[index], first.box_labels[index], strict=True):
            if label < 0:
                continue
            x1, y1, x2, y2 = box.astype(int)
            region = first.masks[index, y1:y2, x1:x2] == label + 1
            assert region[0].any() and region[-1].any()  # touches top and bottom rows
            assert region[:, 0].any() and region[:, -1].any()  # and left and right columns
            outside = first.masks[index].copy()
            outside[y1:y2, x1:x2] = 0
            assert not (outside == label + 1).any() or (first.box_labels[index] == label).sum() > 1
