"""Boxes and masks carried by datasets, checked against the images."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.evaluate.data import load_data
from onnxprune.evaluate.targets import truth_detections

SPECS = [("images", np.dtype(np.float32), ["batch", 3, 16, 16])]


def arrays(**extra):
    data = {"images": np.zeros((2, 3, 16, 16), dtype=np.float32)}
    data["boxes"] = np.array([[[0, 0, 8, 8], [0, 0, 0, 0]], [[4, 4, 16, 12], [1, 1, 3, 3]]])
    data["box_labels"] = np.array([[0, -1], [1, 2]])
    data["masks"] = np.zeros((2, 16, 16), dtype=np.uint8)
    data.update(extra)
    return data


def test_npz_targets_are_kept_and_follow_splits(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays())
    dataset = load_data(path, SPECS)
    assert set(dataset.targets) == {"boxes", "box_labels", "masks"}
    assert not any("not used" in note for note in dataset.notes)
    calibration, held = dataset.split(0.5, seed=0)
    assert len(held.targets["boxes"]) == 1 and len(calibration.targets["masks"]) == 1
    truths = truth_detections(dataset.targets)
    assert [len(t) for t in truths] == [1, 2]
    assert truths[1].labels.tolist() == [1, 2]


def test_box_outside_the_image_is_one_line_error():
    data = arrays(boxes=np.array([[[0, 0, 8, 8], [0, 0, 0, 0]], [[4, 4, 20, 12], [1, 1, 3, 3]]]))
    with pytest.raises(InputError, match=r"sample 1 box 0 .* outside the 16x16 input"):
        load_data(data, SPECS)


def test_padding_rows_are_not_checked_but_inverted_boxes_are():
    data = arrays(boxes=np.array([[[0, 0, 8, 8], [99, 99, -5, 0]], [[4, 4, 16, 12], [1, 1, 3, 3]]]))
    load_data(data, SPECS)  # row 1 of sample 0 is padding
    bad = arrays(boxes=np.array([[[8, 0, 2, 8], [0, 0, 0, 0]], [[4, 4, 16, 12], [1, 1, 3, 3]]]))
    with pytest.raises(InputError, match="not x1 < x2"):
        load_data(bad, SPECS)


def test_masks_of_wrong_size_and_labels_without_boxes():
    with pytest.raises(InputError, match="masks must have the input's height and width"):
        load_data(arrays(masks=np.zeros((2, 8, 8), dtype=np.int64)), SPECS)
    data = arrays()
    del data["box_labels"]
    with pytest.raises(InputError, match="needs both 'boxes'"):
        load_data(data, SPECS)
