"""Image folders with few photos: random resized crops per photo, grouped by photo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from onnxprune.errors import InputError
from onnxprune.evaluate.data import load_data
from onnxprune.evaluate.preprocess import Preprocess, transform, transform_crop

SPECS = [("input", np.dtype(np.float32), ["batch", 3, 8, 8])]


def _photos(root, count=3, labelled=False, same_size=False):
    """``count`` distinct random photos, of different sizes unless ``same_size`` (a class
    folder each if ``labelled``)."""
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(
            0, 256, size=(20 + (0 if same_size else 4 * index), 30, 3), dtype=np.uint8
        )
        folder = root / f"class{index}" if labelled else root
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"photo{index}.png")
    return root


def test_few_photos_become_round_robin_crops_grouped_by_photo(tmp_path):
    root = _photos(tmp_path / "photos")
    plain = load_data(root, SPECS)
    assert len(plain) == 3 and plain.groups is None
    data = load_data(root, SPECS, augment_to=10, seed=4)
    assert len(data) == 12  # ceil(10 / 3) = 4 views per photo
    assert data.groups.tolist() == [0, 1, 2] * 4
    # the first view of every photo is the photo itself, preprocessed as without crops
    np.testing.assert_array_equal(data.inputs["input"][:3], plain.inputs["input"])
    # the crops differ from the photo and from each other
    views = data.inputs["input"][data.groups == 0]
    assert len({view.tobytes() for view in views}) == 4
    assert any("4 samples per image" in note for note in data.notes)
    again = load_data(root, SPECS, augment_to=10, seed=4)
    np.testing.assert_array_equal(again.inputs["input"], data.inputs["input"])
    other = load_data(root, SPECS, augment_to=10, seed=5)
    assert not np.array_equal(other.inputs["input"][3:], data.inputs["input"][3:])


def test_enough_photos_or_crops_1_leave_the_folder_as_is(tmp_path):
    root = _photos(tmp_path / "photos")
    assert len(load_data(root, SPECS, augment_to=3)) == 3
    (root / "preprocess.toml").write_text("crops = 1\n")
    data = load_data(root, SPECS, augment_to=100)
    assert len(data) == 3 and data.groups is None


def test_explicit_crops_apply_without_augment_to_and_keep_labels(tmp_path):
    root = _photos(tmp_path / "photos", labelled=True)
    data = load_data(root, SPECS, preprocess={"crops": 2})
    assert len(data) == 6
    assert data.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert data.groups.tolist() == data.labels.tolist()


def test_split_holds_out_whole_photos(tmp_path):
    root = _photos(tmp_path / "photos", count=5)
    data = load_data(root, SPECS, augment_to=50)
    calibration, held_out = data.split(0.3, seed=0)
    assert set(calibration.groups.tolist()).isdisjoint(held_out.groups.tolist())
    assert len(held_out) >= 10  # whole photos of 10 views each


def test_no_crops_when_the_output_size_is_not_fixed(tmp_path):
    root = _photos(tmp_path / "photos", same_size=True)
    dynamic = [("input", np.dtype(np.float32), ["n", 3, "h", "w"])]
    data = load_data(root, dynamic, preprocess={"resize": 16}, augment_to=10)
    assert data.groups is None and len(data) == 3
    assert any("no random crops" in note for note in data.notes)
    fixed = load_data(root, dynamic, preprocess={"resize": 16, "crop": 8}, augment_to=10)
    assert fixed.inputs["input"].shape == (12, 3, 8, 8)


def test_whole_box_without_flip_is_the_plain_resize_and_flip_mirrors(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    spec = Preprocess(mean=[0.5], std=[0.25], layout="NCHW")
    whole = transform_crop(image, spec, (0, 0, 12, 16), False, (8, 8), 3)
    np.testing.assert_allclose(whole, transform(image, spec, (8, 8), 3), atol=1e-6)
    mirrored = transform_crop(image, spec, (0, 0, 12, 16), True, (8, 8), 3)
    np.testing.assert_allclose(mirrored, whole[:, :, ::-1], atol=1e-6)


@pytest.mark.parametrize("value", [0, -2, "many"])
def test_bad_crops_value_is_one_line_error(value):
    with pytest.raises(InputError, match="crops"):
        Preprocess(crops=value)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((8, 16, 3), dtype=np.uint8)
    pixels[:, :8] = 255  # left half white: stored landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise: portrait, white on top
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    specs = [("input", np.dtype(np.float32), ["batch", 3, 16, 8])]
    image = load_data(tmp_path, specs).inputs["input"][0, 0]
    assert image[:4].mean() > 0.8 and image[-4:].mean() < 0.2


def test_a_spec_without_normalization_says_so(tmp_path):
    root = _photos(tmp_path / "photos")
    assert any("not normalized" in note for note in load_data(root, SPECS).notes)
    normalized = load_data(root, SPECS, preprocess={"mean": [0.5], "std": [0.5]})
    assert not any("not normalized" in note for note in normalized.notes)


def test_crop_scale_bounds_the_crop_area(tmp_path):
    root = _photos(tmp_path / "photos", count=1)
    whole = load_data(root, SPECS, preprocess={"crops": 3, "crop_scale": [1, 1]})
    # area share 1 with aspect w/h <= 4/3 does not fit a 20x30 photo: every box is the whole
    # photo, so each crop is the plain view or its mirror
    plain, *crops = whole.inputs["input"]
    for crop in crops:
        assert np.allclose(crop, plain, atol=1e-5) or np.allclose(
            crop, plain[:, :, ::-1], atol=1e-5
        )
    half = load_data(root, SPECS, preprocess={"crops": 3, "crop_scale": [0.2, 0.3]})
    assert not np.allclose(half.inputs["input"][1], plain, atol=1e-2)
    with pytest.raises(InputError, match="crop_scale"):
        Preprocess(crop_scale=[0.5, 0.2])
    with pytest.raises(InputError, match="crop_scale"):
        Preprocess(crop_scale=[0.5])


def test_crops_follow_an_nhwc_layout(tmp_path):
    root = _photos(tmp_path / "photos")
    specs = [("input", np.dtype(np.float32), ["batch", 8, 8, 3])]
    data = load_data(root, specs, augment_to=6)
    assert data.inputs["input"].shape == (6, 8, 8, 3)
    nchw = load_data(root, SPECS, augment_to=6)
    np.testing.assert_array_equal(data.inputs["input"], nchw.inputs["input"].transpose(0, 2, 3, 1))
