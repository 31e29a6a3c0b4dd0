"""Input perturbation of the guard's noise floor."""

from __future__ import annotations

import numpy as np

from onnxprune.evaluate.noise import perturb_inputs


def test_float_and_8bit_images_are_perturbed_ids_and_masks_are_not():
    rng = np.random.default_rng(0)
    inputs = {
        "pixels": rng.normal(size=(4, 3, 8, 8)).astype(np.float32),
        "image": rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8),
        "ids": rng.integers(0, 100, size=(4, 16), dtype=np.int64),
        "mask": np.ones((4, 16), dtype=np.uint8),  # rank 2: not an image
    }
    perturbed, names = perturb_inputs(inputs, sigma=0.05, seed=1)
    assert sorted(names) == ["image", "pixels"]
    assert perturbed["image"].dtype == np.uint8
    changed = perturbed["image"].astype(int) - inputs["image"].astype(int)
    assert np.count_nonzero(changed) > changed.size // 2  # σ·std ≈ 3.7 grey levels
    assert np.abs(changed).max() < 40
    np.testing.assert_array_equal(perturbed["ids"], inputs["ids"])
    np.testing.assert_array_equal(perturbed["mask"], inputs["mask"])
    assert perturbed["pixels"].dtype == np.float32
    assert not np.array_equal(perturbed["pixels"], inputs["pixels"])
