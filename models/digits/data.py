"""Digits data: deterministic split and preprocessing, numpy only (no torch).

Raw data: scikit-learn's ``load_digits()`` (1797 grey 8x8 images, values 0..16, 10 classes;
shipped with scikit-learn, nothing is downloaded). Preprocessing of one image ``x``:
``(upscale_bilinear(x / 16, 32x32) - MEAN) / STD`` as float32, shape (1, 32, 32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SEED = 0
TEST_FRACTION = 0.25
CALIB_SIZE = 256
RAW_SIZE = 8
INPUT_SIZE = 32
RAW_MAX = 16.0
# Pixel mean / std of the upscaled training split (0.3052, 0.3235), rounded and fixed.
MEAN = 0.305
STD = 0.324
NUM_CLASSES = 10


@dataclass(frozen=True)
class DigitsSplits:
    """Preprocessed arrays (float32 [N, 1, 32, 32]) and labels (int64 [N]) of both splits,
    with the row indices into ``load_digits()`` they came from."""

    train_inputs: np.ndarray
    train_labels: np.ndarray
    train_indices: np.ndarray
    test_inputs: np.ndarray
    test_labels: np.ndarray
    test_indices: np.ndarray


def bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """Matrix ``M`` (size_out x size_in) of 1-D linear interpolation with half-pixel centres.

    Output sample ``o`` reads source coordinate ``s = max((o + 0.5) * size_in / size_out - 0.5, 0)``
    and mixes pixels ``floor(s)`` and ``min(floor(s) + 1, size_in - 1)`` with weights
    ``1 - frac(s)`` and ``frac(s)``. This is torch's ``interpolate(mode="bilinear",
    align_corners=False)`` (and ONNX Resize linear / half_pixel) for upscaling.
    """
    source = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5
    source = np.maximum(source, 0.0)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    frac = source - low
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    rows = np.arange(size_out)
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


def preprocess(images: np.ndarray) -> np.ndarray:
    """Raw digit images (N, 8, 8) with values 0..16 -> float32 model inputs (N, 1, 32, 32).

    Scales to 0..1, upscales bilinearly (``bilinear_matrix`` on rows and columns, separable),
    then normalizes with the fixed ``MEAN`` / ``STD``.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1:] != (RAW_SIZE, RAW_SIZE):
        raise ValueError(f"expected images of shape (N, 8, 8), got {images.shape}")
    resize = bilinear_matrix(RAW_SIZE, INPUT_SIZE)
    upscaled = np.einsum("oh,nhw,pw->nop", resize, images / RAW_MAX, resize)
    return ((upscaled - MEAN) / STD).astype(np.float32)[:, None, :, :]


def split_indices(labels: np.ndarray, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test row indices (sorted), ``TEST_FRACTION`` of rows in the test split.

    Uses scikit-learn's ``train_test_split(stratify=labels, random_state=seed)``.
    """
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    train, test = train_test_split(
        rows, test_size=TEST_FRACTION, stratify=labels, random_state=seed
    )
    return np.sort(train), np.sort(test)


def calibration_rows(n_train: int, size: int = CALIB_SIZE, seed: int = SEED) -> np.ndarray:
    """``size`` distinct positions into the training split, drawn without replacement with
    ``np.random.default_rng(seed)`` and sorted."""
    return np.sort(np.random.default_rng(seed).choice(n_train, size=size, replace=False))


def load_splits(seed: int = SEED) -> DigitsSplits:
    """Load ``load_digits()``, split it (``split_indices``) and preprocess both splits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    labels = digits.target.astype(np.int64)
    train, test = split_indices(labels, seed)
    return DigitsSplits(
        train_inputs=preprocess(digits.images[train]),
        train_labels=labels[train],
        train_indices=train,
        test_inputs=preprocess(digits.images[test]),
        test_labels=labels[test],
        test_indices=test,
    )


def preprocessing_spec() -> dict[str, Any]:
    """The preprocessing as data, for metrics.json and users feeding their own images."""
    return {
        "source": "sklearn.datasets.load_digits (8x8 grey, values 0..16)",
        "scale": f"x / {RAW_MAX:g} -> 0..1",
        "resize": {
            "size": [INPUT_SIZE, INPUT_SIZE],
            "mode": "bilinear",
            "align_corners": False,
            "antialias": False,
        },
        "mean": MEAN,
        "std": STD,
        "layout": "NCHW",
        "dtype": "float32",
        "input_shape": [1, INPUT_SIZE, INPUT_SIZE],
    }
