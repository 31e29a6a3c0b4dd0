"""Calibration augmentation: originals first, crops of the right size, identity crop exact."""

from __future__ import annotations

import numpy as np
import pytest

from onnxprune.calibrate.augment import augment_images, resized_crop
from onnxprune.errors import InputError


def test_full_box_is_the_identity_and_a_half_box_upsamples():
    image = np.random.default_rng(0).normal(size=(3, 6, 8)).astype(np.float32)
    np.testing.assert_allclose(resized_crop(image, 0, 0, 6, 8), image, atol=1e-6)
    ramp = np.tile(np.arange(8, dtype=np.float64), (1, 4, 1))  # value = column index
    left = resized_crop(ramp, 0, 0, 4, 4)
    assert left.shape == ramp.shape
    assert left.min() >= 0 and left.max() <= 3  # only columns 0..3 are read
    assert np.all(np.diff(left[0, 0]) >= 0)


def test_augment_keeps_the_originals_and_makes_new_images():
    images = np.random.default_rng(1).normal(size=(4, 3, 16, 16)).astype(np.float32)
    out = augment_images(images, 12, seed=3)
    assert out.shape == (12, 3, 16, 16) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:4], images)
    assert not any(np.allclose(out[i], images[i % 4]) for i in range(4, 12))
    np.testing.assert_array_equal(out, augment_images(images, 12, seed=3))


def test_bad_input_is_an_input_error():
    with pytest.raises(InputError):
        augment_images(np.zeros((3, 8, 8)), 4)
