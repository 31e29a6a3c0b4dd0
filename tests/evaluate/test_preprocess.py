"""Image preprocessing: hand-computed pixel values for crop, scale, mean/std, BGR, layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from onnxprune.errors import InputError
from onnxprune.evaluate.preprocess import (
    Preprocess,
    image_geometry,
    infer_layout,
    read_preprocess,
    resolve_preprocess,
    transform,
)


def _image(height=4, width=6):
    """RGB pixel (r, c) = (10 r + c, 100 + c, 200 - r)."""
    rows, cols = np.mgrid[0:height, 0:width]
    array = np.stack([10 * rows + cols, 100 + cols, 200 - rows], axis=-1).astype(np.uint8)
    return Image.fromarray(array), array.astype(np.float32)


def test_center_crop_scale_mean_std_nchw():
    image, pixels = _image()
    spec = Preprocess(crop=2, mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.25])
    out = transform(image, spec, None, 3)
    # 4x6 -> rows 1..2, cols 2..3
    expected = (pixels[1:3, 2:4] / 255 - np.array([0.1, 0.2, 0.3])) / np.array([0.5, 0.5, 0.25])
    assert out.shape == (3, 2, 2)
    assert np.allclose(out, expected.transpose(2, 0, 1), atol=1e-6)


def test_bgr_and_nhwc():
    image, pixels = _image()
    out = transform(
        image, Preprocess(crop=[2, 4], channel_order="bgr", layout="nhwc", scale=1), None, 3
    )
    assert out.shape == (2, 4, 3)
    assert np.allclose(out, pixels[1:3, 1:5, ::-1])


def test_resize_shorter_side_and_exact_and_default_to_model_size():
    flat = Image.new("RGB", (8, 4), (10, 20, 30))  # width 8, height 4
    out = transform(flat, Preprocess(resize=2, scale=1), None, 3)
    assert out.shape == (3, 2, 4) and np.allclose(out[:, 0, 0], [10, 20, 30])
    assert transform(flat, Preprocess(resize=[3, 5]), None, 3).shape == (3, 3, 5)
    assert transform(flat, Preprocess(), (6, 6), 3).shape == (3, 6, 6)


def test_grayscale_for_one_channel_inputs():
    out = transform(Image.new("RGB", (4, 4), (10, 20, 30)), Preprocess(scale=1), (4, 4), 1)
    # ITU-R 601-2 luma: 10*0.299 + 20*0.587 + 30*0.114 = 18.15 -> 18
    assert out.shape == (1, 4, 4) and np.allclose(out, 18)


def test_spec_validation():
    with pytest.raises(InputError, match="RGB or BGR"):
        Preprocess(channel_order="RGBA")
    with pytest.raises(InputError, match="NCHW or NHWC"):
        Preprocess(layout="CHW")
    with pytest.raises(InputError, match="std must not contain 0"):
        Preprocess(std=[1, 0, 1])
    with pytest.raises(InputError, match="positive"):
        Preprocess(crop=0)
    with pytest.raises(InputError, match="unknown preprocess option 'zoom'"):
        Preprocess.from_mapping({"zoom": 2})
    assert Preprocess(resize="256", crop="224,200").crop == [224, 200]
    with pytest.raises(InputError, match="3 values for 1 channel"):
        transform(Image.new("L", (2, 2)), Preprocess(mean=[0, 0, 0]), (2, 2), 1)
    with pytest.raises(InputError, match="larger than the image"):
        transform(Image.new("RGB", (2, 2)), Preprocess(crop=3), None, 3)


def test_config_files(tmp_path):
    (tmp_path / "p.toml").write_text("resize = 8\ncrop = 6\nmean = [0.5]\nbgr = true\n")
    spec = read_preprocess(tmp_path / "p.toml")
    assert (spec.resize, spec.crop, spec.mean, spec.channel_order) == (8, 6, [0.5], "BGR")
    (tmp_path / "p.yaml").write_text("preprocess:\n  layout: NHWC\n  std: [0.2, 0.2, 0.2]\n")
    assert read_preprocess(tmp_path / "p.yaml").layout == "NHWC"
    (tmp_path / "p.json").write_text(json.dumps({"channel-order": "BGR"}))
    assert read_preprocess(tmp_path / "p.json").channel_order == "BGR"
    (tmp_path / "bad.toml").write_text("resize = [")
    with pytest.raises(InputError, match=r"bad\.toml"):
        read_preprocess(tmp_path / "bad.toml")
    (tmp_path / "p.txt").write_text("crop = 3")
    with pytest.raises(InputError, match=r"expected \.toml"):
        read_preprocess(tmp_path / "p.txt")
    (tmp_path / "preprocess.json").write_text(json.dumps({"crop": 3}))
    assert resolve_preprocess(None, tmp_path).crop == 3
    assert resolve_preprocess({"crop": 5}).crop == 5


def test_layout_inference():
    assert infer_layout([None, 3, 224, 224]) == "NCHW"
    assert infer_layout([None, 224, 224, 3]) == "NHWC"
    assert image_geometry([None, 224, 200, 1], "NHWC") == (224, 200, 1)
    with pytest.raises(InputError, match="rank-4"):
        infer_layout([None, 10])
    with pytest.raises(InputError, match="1 or 3 channels"):
        image_geometry([None, 4, 8, 8], "NCHW")


def test_describe_lists_the_set_options_briefly():
    from onnxprune.evaluate.preprocess import Preprocess

    text = Preprocess(
        resize=256, crop=224, scale=1 / 255, mean=[0.48500001430511475], layout="NHWC"
    ).describe()
    assert (
        text == "resize 256, crop 224, scale 0.003922, mean [0.485], channel_order RGB, layout NHWC"
    )
    # an unset scale is decided by the loader (settle_scale), which then describes it
    assert "scale" not in Preprocess(resize=256).describe()
