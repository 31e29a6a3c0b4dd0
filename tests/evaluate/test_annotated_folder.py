"""Image folders with COCO boxes and mask PNGs: targets follow the resize and crop."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from onnxprune.errors import InputError
from onnxprune.evaluate.data import load_data

SPECS = [("images", np.dtype(np.float32), ["batch", 3, 16, 16])]


@pytest.fixture
def folder(tmp_path):
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((20, 40, 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "masks").mkdir()
    mask = np.zeros((20, 40), dtype=np.uint8)
    mask[5:15, 10:30] = 2
    for name in ("a.png", "b.png"):
        Image.fromarray(mask).save(tmp_path / "masks" / name)
    document = {
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 7, "file_name": "b.png"}],
        "categories": [{"id": 3}, {"id": 9}],
        "annotations": [
            {"image_id": 1, "bbox": [10, 5, 20, 10], "category_id": 9},
            {"image_id": 7, "bbox": [0, 0, 4, 4], "category_id": 3, "iscrowd": 1},
        ],
    }
    (tmp_path / "annotations.json").write_text(json.dumps(document))
    return tmp_path


def test_exact_resize_scales_boxes_and_masks(folder):
    dataset = load_data(folder, SPECS)
    # 40x20 -> 16x16: sx = 0.4, sy = 0.8; box x 10..30, y 5..15 -> 4..12, 4..12
    assert dataset.targets["boxes"][0, 0].tolist() == pytest.approx([4, 4, 12, 12])
    assert dataset.targets["box_labels"].tolist() == [[1], [-1]]  # category 9 -> 1; crowd
    masks = dataset.targets["masks"]
    assert masks.shape == (2, 16, 16) and set(np.unique(masks)) == {0, 2}
    assert masks[0, 8, 8] == 2 and masks[0, 0, 0] == 0


def test_resize_and_crop_move_boxes(folder):
    (folder / "preprocess.json").write_text(json.dumps({"resize": 16, "crop": 16}))
    dataset = load_data(folder, SPECS)
    # shorter side 20 -> 16: 32x16, crop left 8: x 10..30 -> 8..24 -> 0..16; y 5..15 -> 4..12
    assert dataset.targets["boxes"][0, 0].tolist() == pytest.approx([0, 4, 16, 12])


def test_missing_image_and_missing_mask(folder):
    (folder / "b.png").unlink()
    with pytest.raises(InputError, match=r"missing image 'b\.png'"):
        load_data(folder, SPECS)
    (folder / "annotations.json").unlink()
    (folder / "masks" / "a.png").unlink()
    Image.fromarray(np.zeros((20, 40, 3), dtype=np.uint8)).save(folder / "b.png")
    with pytest.raises(InputError, match="has no mask"):
        load_data(folder, SPECS)
