"""Calibration augmentation: random resized crops and horizontal flips of the given images.

``augment_images(images, count)`` returns ``count`` images (N, C, H, W, same size and dtype as
the input) cut from the given ones in turn: a box of area share s ~ U(scale) and aspect ratio
a (log-uniform in ``aspect``) at a uniform position, resized back to H×W by bilinear
interpolation (pixel centres aligned, edges clamped), flipped left–right with probability 1/2.
The first ``len(images)`` outputs are the images themselves, so augmentation only adds.
"""

from __future__ import annotations

import math

import numpy as np

from onnxprune.errors import InputError


def random_box(
    rng: np.random.Generator,
    height: int,
    width: int,
    scale: tuple[float, float],
    aspect: tuple[float, float],
) -> tuple[int, int, int, int]:
    """A box (top, left, h, w) inside height×width: area share s ~ U(scale), aspect ratio w/h
    log-uniform in ``aspect``, uniform position; the whole image after 10 misses."""
    for _ in range(10):
        share = rng.uniform(*scale)
        ratio = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
        h = round(math.sqrt(height * width * share / ratio))
        w = round(math.sqrt(height * width * share * ratio))
        if 0 < h <= height and 0 < w <= width:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    return 0, 0, height, width


def _axis_weights(start: int, length: int, size: int):
    """Source indices (lo, hi) and weights of ``size`` output pixels over [start, start+length)."""
    centres = start + (np.arange(size) + 0.5) * length / size - 0.5
    centres = np.clip(centres, start, start + length - 1)
    lo = np.floor(centres).astype(np.int64)
    hi = np.minimum(lo + 1, start + length - 1)
    return lo, hi, centres - lo


def resized_crop(image: np.ndarray, top: int, left: int, h: int, w: int) -> np.ndarray:
    """``image[:, top:top+h, left:left+w]`` resized bilinearly to the image's own size."""
    _, height, width = image.shape
    y0, y1, fy = _axis_weights(top, h, height)
    x0, x1, fx = _axis_weights(left, w, width)
    rows = image[:, y0, :] * (1 - fy)[None, :, None] + image[:, y1, :] * fy[None, :, None]
    out = rows[:, :, x0] * (1 - fx)[None, None, :] + rows[:, :, x1] * fx[None, None, :]
    return out.astype(image.dtype, copy=False)


def augment_images(
    images: np.ndarray,
    count: int,
    *,
    seed: int = 0,
    scale: tuple[float, float] = (0.25, 1.0),
    aspect: tuple[float, float] = (3 / 4, 4 / 3),
) -> np.ndarray:
    """``count`` images: the given ones, then random resized crops + flips of them."""
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise InputError(f"augmentation needs images of shape (N, C, H, W), got {images.shape}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise InputError(f"augmentation scale must satisfy 0 < low <= high <= 1, got {scale}")
    rng = np.random.default_rng(seed)
    out = np.empty((count, *images.shape[1:]), dtype=images.dtype)
    given = min(count, len(images))
    out[:given] = images[:given]
    _, _, height, width = images.shape
    for index in range(given, count):
        source = images[index % len(images)]
        crop = resized_crop(source, *random_box(rng, height, width, scale, aspect))
        out[index] = crop[:, :, ::-1] if rng.random() < 0.5 else crop
    return out
